"""
On-demand requests end to end, against a real Redis and the vSphere
simulator: the API stores and answers, the manager provisions (Note
[On-demand requests]).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from twisted.internet import reactor

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.api_store import ApiStore

from .fixtures import PASSWORD, USER, StubDirectory, make_config
from .http import Client
from .manager_case import CENTOS, DEBIAN, ManagerCase
from .waiting import until


class OndemandCase(ManagerCase):
    service: dict[str, Any] = {"ondemand_request_ttl": 5}

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        auth = make_config(auth={"host": "127.0.0.1", "base": ["dc=example,dc=com"]}).auth
        self.api_config = dataclasses.replace(self.config, auth=auth)
        self.api_store = ApiStore(self.redis, reactor)
        self.addCleanup(self.api_store.stop)
        api = VmpoolerApi(self.api_config, self.api_store, reactor, StubDirectory(),
                          random.Random(3))
        self.client = Client(api.resource())
        self.token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))
                      ).body["token"]
        self.headers = {"X-AUTH-TOKEN": self.token}

    async def ask(self, body: Any, prefix: str = "/api/v3") -> str:
        answer = await self.client.post(f"{prefix}/ondemandvm", body, headers=self.headers)
        self.assertEqual(answer.code, 201, answer.body)
        rid: str = answer.body["request_id"]
        return rid

    async def poll(self, rid: str) -> Any:
        return await self.client.get(f"/api/v3/ondemandvm/{rid}")

    async def ready(self, rid: str) -> Any:
        answer = await self.poll(rid)
        self.assertIn(answer.code, (200, 202), answer.body)
        self.assertNotIn("message", answer.body)
        return answer if answer.code == 200 else None

    async def request_vms(self, rid: str) -> set[str]:
        """Every VM Redis ever gave this request."""
        found = set()
        for key in await self.redis.keys("vmpooler__vm__*"):
            if await self.redis.hget(key, "request_id") == rid:
                found.add(key[len("vmpooler__vm__"):])
        return found

    def in_vsphere(self, names: set[str]) -> set[str]:
        return names & (self.names_in(DEBIAN) | self.names_in(CENTOS))


class OndemandTests(OndemandCase):
    async def test_202_until_200_every_vm_running_and_the_requesters(self) -> None:
        self.start()
        rid = await self.ask({DEBIAN: 2, CENTOS: 1})
        answer = await self.poll(rid)
        self.assertEqual(answer.code, 202, answer.body)
        self.assertEqual(answer.body[DEBIAN]["pending"], "2")
        answer = await until("the request ready", lambda: self.ready(rid))
        hosts = {h.partition(".")[0] for pool in (DEBIAN, CENTOS)
                 for h in answer.body[pool]["hostname"]}
        self.assertEqual(len(answer.body[DEBIAN]["hostname"]), 2)
        self.assertEqual(hosts, await self.request_vms(rid))
        running = await self.members("running", DEBIAN) | await self.members("running", CENTOS)
        self.assertEqual(hosts, running)
        self.assertEqual(self.in_vsphere(hosts), hosts)
        for host in hosts:
            fields = await self.redis.hgetall(f"vmpooler__vm__{host}")
            self.assertEqual((fields["token:token"], fields["token:user"]), (self.token, USER))
        # Never in a ready set; the pools still full beside it.
        await until("full pools", self.full)
        ready = await self.members("ready", DEBIAN) | await self.members("ready", CENTOS)
        self.assertFalse(ready & hosts)
        self.assertEqual(await self.redis.zcard("vmpooler__provisioning__request"), 0)
        # The VMs are the requester's as checkouts are: deleting one works.
        host = sorted(hosts)[0]
        answer = await self.client.delete(f"/api/v3/vm/{host}", headers=self.headers)
        self.assertEqual(answer.code, 200, answer.body)

    async def test_two_managers_one_request(self) -> None:
        self.start()
        second = Manager(self.config, self.store, self.provider, reactor, grace=10)
        second.startService()
        self.addCleanup(second.stopService)
        rid = await self.ask({DEBIAN: 3})
        await until("the request ready", lambda: self.ready(rid))
        self.assertEqual(len(await self.request_vms(rid)), 3)
        self.assertEqual(len(self.in_vsphere(await self.request_vms(rid))), 3)

    async def test_a_refused_clone_fails_the_request_and_no_other_pool(self) -> None:
        self.config = dataclasses.replace(self.config, pools=tuple(
            dataclasses.replace(p, template="Templates/missing") if p.name == CENTOS else p
            for p in self.config.pools))
        self.manager = Manager(self.config, self.store, self.provider, reactor, grace=10)
        self.start()
        rid = await self.ask({CENTOS: 1})

        async def ended() -> Any:
            answer = await self.poll(rid)
            return answer if "message" in answer.body else None
        answer = await until("the request failed", ended)
        self.assertEqual(answer.code, 200)
        self.assertIs(answer.body["ready"], False)
        # Why, by kind only: the reason names vCenter's paths (Note [Public failures]).
        self.assertIn("of its VMs failed", answer.body["message"])
        self.assertNotIn("missing", answer.body["message"])
        # The other pool fills all the same.
        await until("debian-7 full", lambda: self.ready_in(DEBIAN, 3))

    async def ready_in(self, pool: str, count: int) -> bool:
        return len(await self.members("ready", pool)) == count

    async def test_delete_mid_clone_leaves_nothing_behind(self) -> None:
        self.start()
        await until("full pools", self.full)
        rid = await self.ask({DEBIAN: 2})
        await until("clones started", lambda: self.redis.scard(f"vmpooler__odpending__{rid}"))
        answer = await self.client.delete(f"/api/v3/ondemandvm/{rid}", headers=self.headers)
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        vms = await self.request_vms(rid)
        self.assertTrue(vms)
        await until("no VM of the request in vSphere", lambda: not self.in_vsphere(vms),
                    seconds=60)
        answer = await self.poll(rid)
        self.assertEqual(answer.code, 200)
        self.assertIs(answer.body["ready"], False)
        self.assertIn("deleted", answer.body["message"])
        self.assertEqual(await self.redis.smembers(f"vmpooler__ondemand__{DEBIAN}"), set())


class SlowCloneTests(OndemandCase):
    vcsim = {"boot_delay_ms": 200, "clone_delay_ms": 1500}
    service = {"ondemand_request_ttl": 0.02, "timeout": 5}

    async def test_past_its_ttl_a_request_fails_and_gives_its_vms_back(self) -> None:
        self.start()
        rid = await self.ask({DEBIAN: 2})

        async def ended() -> Any:
            answer = await self.poll(rid)
            return answer if "message" in answer.body else None
        answer = await until("the request past its TTL", ended)
        self.assertIn("ondemand_request_ttl", answer.body["message"])
        vms = await self.request_vms(rid)
        await until("its VMs destroyed", lambda: not self.in_vsphere(vms), seconds=60)


class RestartTests(OndemandCase):
    vcsim = {"boot_delay_ms": 200, "clone_delay_ms": 800}

    async def test_a_restarted_manager_finishes_the_request(self) -> None:
        self.start()
        rid = await self.ask({CENTOS: 2})
        await until("clones started", lambda: self.redis.scard(f"vmpooler__odpending__{rid}"))
        await self.manager.stopService()
        second = Manager(self.config, self.store, self.provider, reactor, grace=10)
        second.startService()
        self.addCleanup(second.stopService)
        answer = await until("the request ready", lambda: self.ready(rid))
        self.assertEqual(len(answer.body[CENTOS]["hostname"]), 2)
        self.assertEqual(len(self.in_vsphere(await self.request_vms(rid))), 2)
