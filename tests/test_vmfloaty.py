"""
The daemon as vmfloaty, the command-line client most vmpooler users have,
speaks to it: over HTTP, with ``X-AUTH-TOKEN``, at an ``/api/v1`` or an
``/api/v3`` URL.  :func:`floaty_hostnames` is vmfloaty's reading of a
checkout's answer: every key but ``ok`` and ``domain`` is a pool, and its
hostnames get ``.<domain>`` appended when the answer has a ``domain`` (v1),
or are taken as they come (v3: FQDNs).
"""

from __future__ import annotations

import json
import random
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.site import ApiSite
from vmpoolerd.store.api_store import ApiStore

from .fixtures import PASSWORD, USER, StubDirectory, fill_ready, make_config, sets_of
from .net import listen, port_of
from .redis_server import fresh_redis

D32, D64 = "debian-7-i386", "debian-7-x86_64"


def floaty_hostnames(body: dict[str, Any]) -> dict[str, list[str]]:
    """vmfloaty's ``standardize_hostnames``."""
    domain = body.get("domain")
    return {pool: [f"{host}.{domain}" if domain else host
                   for host in (value["hostname"] if isinstance(value["hostname"], list)
                                else [value["hostname"]])]
            for pool, value in body.items() if pool not in ("ok", "domain")}


class VmfloatyTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = make_config(auth={"host": "127.0.0.1", "base": ["dc=example,dc=com"]})
        api = VmpoolerApi(self.config, ApiStore(self.redis, reactor), reactor, StubDirectory(),
                          random.Random(1))
        port = listen(ApiSite(api.resource(), reactor))
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port_of(port)}"
        for pool in (D32, D64):
            await fill_ready(self.redis, pool, 6)

    async def floaty(self, method: str, url: str, body: Any = None,
                     token: str | None = None) -> tuple[int, Any]:
        headers = Headers({"X-AUTH-TOKEN": [token]} if token else {})
        response = await treq.request(method, url, headers=headers, persistent=False,
                                      data=None if body is None else json.dumps(body).encode())
        return response.code, json.loads(await response.content())

    async def test_get_modify_query_delete_on_v1_and_v3_urls(self) -> None:
        response = await treq.post(f"{self.base}/api/v1/token", auth=(USER, PASSWORD),
                                   persistent=False)
        token = json.loads(await response.content())["token"]
        handed: list[str] = []
        for url in (f"{self.base}/api/v1", f"{self.base}/api/v3"):
            code, body = await self.floaty("POST", f"{url}/vm/{D32}+{D32}+{D64}", token=token)
            self.assertEqual(code, 200, body)
            hosts = floaty_hostnames(body)
            self.assertEqual({pool: len(names) for pool, names in hosts.items()},
                             {D32: 2, D64: 1})
            for name in (n for names in hosts.values() for n in names):
                self.assertTrue(name.endswith(".example.com"), name)  # alike in both
                handed.append(name)
                code, _ = await self.floaty("PUT", f"{url}/vm/{name}", {"lifetime": 2},
                                            token=token)
                self.assertEqual(code, 200)
                code, info = await self.floaty("GET", f"{url}/vm/{name}", token=token)
                short = name.split(".", 1)[0]
                self.assertEqual((code, info[short]["lifetime"], info[short]["state"]),
                                 (200, 2, "running"))
                fields = await self.redis.hgetall(f"vmpooler__vm__{short}")
                self.assertEqual((fields["token:token"], fields["token:user"]), (token, "jdoe"))
        self.assertEqual(len(handed), len(set(handed)))  # nothing handed out twice
        for name in handed[:3]:
            self.assertEqual((await self.floaty("DELETE", f"{self.base}/api/v3/vm/{name}",
                                                token=token))[0], 200)
        for name in handed[3:]:
            self.assertEqual((await self.floaty("DELETE", f"{self.base}/api/v1/vm/{name}",
                                                token=token))[0], 200)
        sets = await sets_of(self.redis, self.config)
        completed = sets[f"vmpooler__completed__{D32}"] | sets[f"vmpooler__completed__{D64}"]
        self.assertEqual(completed, {name.split(".", 1)[0] for name in handed})

    async def test_a_checkout_without_a_valid_token_is_refused_at_either_url(self) -> None:
        for url in (f"{self.base}/api/v1", f"{self.base}/api/v3"):
            code, body = await self.floaty("POST", f"{url}/vm/{D32}", token="nosuchtoken")
            self.assertEqual((code, body["ok"]), (401, False))
