"""The API on a real Redis, through StubTreq: the base of the API's test cases."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.store.api_store import ApiStore

from .fixtures import fill_ready, make_config, sets_of
from .http import Client
from .redis_server import fresh_redis

T0 = 1_700_000_000.0  # 2023-11-14
D32, D64, C7 = "debian-7-i386", "debian-7-x86_64", "centos-7-x86_64"


class ApiCase(TestCase):
    """An API on an empty Redis: D32 and D64 have 5 ready VMs, C7 has 3."""

    service: dict[str, Any] = {}

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = make_config(**self.service)
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = ApiStore(self.redis, reactor)
        self.api = VmpoolerApi(self.config, self.store, self.clock, rng=random.Random(7))
        self.client = Client(self.api.resource())
        self.ready = {D32: await fill_ready(self.redis, D32, 5),
                      D64: await fill_ready(self.redis, D64, 5),
                      C7: await fill_ready(self.redis, C7, 3)}

    async def assert_untouched(self) -> None:
        """Every VM is still ready, and nothing was checked out."""
        sets = await sets_of(self.redis, self.config)
        for pool, hosts in self.ready.items():
            self.assertEqual(sets[f"vmpooler__ready__{pool}"], set(hosts))
            self.assertEqual(sets[f"vmpooler__running__{pool}"], set())
            self.assertEqual(await self.redis.hgetall(f"vmpooler__active__{pool}"), {})

    def assert_error(self, answer: Any, code: int) -> None:
        self.assertEqual(answer.code, code, answer.body)
        self.assertIs(answer.body["ok"], False)
        self.assertIsInstance(answer.body.get("error"), str)
