"""What clients send, checked before anything touches Redis (api/validate.py)."""

from __future__ import annotations

import dataclasses
import json

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.api import validate
from vmpoolerd.api.errors import ApiError
from vmpoolerd.config import Config, parse_config

CONFIG = """
:vsphere: {server: vc, username: u, password: p}
:pools: [{name: p, template: T/p, folder: F/p, datastore: d, size: 1}]
"""


class ValidateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.config: Config = parse_config(CONFIG)

    def refused(self, call: object, *args: object) -> str:
        with self.assertRaises(ApiError) as raised:
            call(*args)  # type: ignore[operator]
        self.assertEqual(raised.exception.status, 400)
        return raised.exception.error

    def test_names_end_where_the_string_ends(self) -> None:
        for value in ("abc\n", "abc\r\n", "abc\n\n", "\nabc"):
            self.refused(validate.hostname, self.config, value)
            self.refused(validate.token, value)
            self.refused(validate.snapshot_name, value)
        self.refused(validate.day, "2026-11-28\n", "from")
        self.assertEqual(validate.hostname(self.config, "abc"), "abc")
        self.assertEqual(validate.positive_integer(" 5\n", "count"), 5)  # spaces trimmed

    def test_a_lifetime_is_bounded(self) -> None:
        body = json.dumps({"lifetime": 336}).encode()
        self.assertEqual(validate.vm_changes(self.config, body), (336, {}))
        message = self.refused(validate.vm_changes, self.config,
                               json.dumps({"lifetime": 337}).encode())
        self.assertEqual(message, "lifetime must be at most 336 hours")
        config = dataclasses.replace(self.config, service=dataclasses.replace(
            self.config.service, max_lifetime_upper_limit_hours=999))
        self.assertEqual(validate.vm_changes(config, json.dumps({"lifetime": 999}).encode()),
                         (999, {}))

    def test_tags_are_bounded_in_number(self) -> None:
        tags = {f"t{i}": "v" for i in range(validate.MAX_TAGS)}
        self.assertEqual(validate.vm_changes(self.config, json.dumps({"tags": tags}).encode()),
                         (None, tags))
        tags["one-more"] = "v"
        message = self.refused(validate.vm_changes, self.config,
                               json.dumps({"tags": tags}).encode())
        self.assertEqual(message, f"at most {validate.MAX_TAGS} tags may be given at once")
