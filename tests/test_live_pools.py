"""
What the manager makes of a pool's live config (Note [Live pool config]),
against a real Redis and the vSphere simulator: sizes up and down, a
template swapped, a pool reset, overrides obeyed by another manager and
after a restart.
"""

from __future__ import annotations

import dataclasses
import json

from twisted.internet import reactor

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.api_store import ApiStore

from .http import Client
from .manager_case import CENTOS, DEBIAN, ManagerCase
from .waiting import until

GOOD, OTHER = "Templates/debian/debian-7-x86_64", "Templates/centos-7-plain"


class LivePoolTests(ManagerCase):
    async def ready_in_vsphere(self, pool: str, count: int) -> bool:
        """``count`` ready VMs, and no other of the pool's VMs in vSphere
        but the checked-out ones."""
        ready = await self.members("ready", pool)
        running = await self.members("running", pool)
        return len(ready) == count and self.names_in(pool) == ready | running

    async def test_size_up_and_down_never_touching_a_checked_out_vm(self) -> None:
        self.start()
        await until("full pools", self.full)
        out = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        await self.store.overrides.set("poolsize", {DEBIAN: ("6", "3")})
        await until("6 ready debian VMs", lambda: self.ready_in_vsphere(DEBIAN, 6))
        await self.store.overrides.set("poolsize", {DEBIAN: ("1", "3")})
        await until("1 ready debian VM", lambda: self.ready_in_vsphere(DEBIAN, 1))
        self.assertIn(out, self.names_in(DEBIAN))
        self.assertEqual(await self.members("running", DEBIAN), {out})
        self.assertEqual(len(await self.members("ready", CENTOS)), 2)
        await self.assert_one_set_each()

    async def test_template_swap_replaces_ready_and_pending_vms(self) -> None:
        self.start()
        await until("full pools", self.full)
        before = await self.members("ready", DEBIAN)
        # A template that does not exist: the pool drains, and every clone
        # fails, saying why.
        await self.store.overrides.set("template", {DEBIAN: ("Templates/missing", GOOD)})
        await until("the old VMs gone",
                    lambda: not (before & self.names_in(DEBIAN)))
        failures = await until("a clone failure recorded", lambda: self.redis.lrange(
            f"vmpooler__failures__{DEBIAN}", 0, -1))
        self.assertIn("clone", failures[0])
        self.assertIn("missing", failures[0])
        # A plain VM, not a template: refused, saying why (Note [Template
        # overrides] in vmpoolerd/api/config_routes.py); nothing is cloned from it.
        await self.store.overrides.set("template", {DEBIAN: (OTHER, GOOD)})

        async def refused() -> bool:
            recent = await self.redis.lrange(f"vmpooler__failures__{DEBIAN}", 0, 0)
            return bool(recent) and json.loads(recent[0])["kind"] == "not_a_template"
        await until("a plain VM refused as a template", refused)
        self.assertEqual(self.names_in(DEBIAN), set())
        # A real template as another pool's override is cloned from.
        centos = await self.members("ready", CENTOS)
        await self.store.overrides.set("template", {CENTOS: (GOOD, OTHER)})

        async def swapped() -> bool:
            now = await self.members("ready", CENTOS)
            return await self.ready_in_vsphere(CENTOS, 2) and not now & centos
        await until("2 new ready centos VMs", swapped)
        self.assertEqual(await self.redis.hget("vmpooler__pool__template_cloned", CENTOS), GOOD)
        await self.store.overrides.unset("template", DEBIAN)
        await until("3 new ready VMs", lambda: self.ready_in_vsphere(DEBIAN, 3))
        self.assertFalse(before & await self.members("ready", DEBIAN))
        # The pause the failures caused ended with the template back.
        self.assertNotIn("clones_paused",
                         (await self.client.get("/api/v1/status")).body["pools"][DEBIAN])

    async def test_pool_reset(self) -> None:
        self.start()
        await until("full pools", self.full)
        centos, debian = await self.members("ready", CENTOS), await self.members("ready", DEBIAN)
        await self.store.overrides.ask_reset([CENTOS])

        async def replaced() -> bool:
            now = await self.members("ready", CENTOS)
            return len(now) == 2 and not now & centos and self.names_in(CENTOS) == now
        await until("centos-7's VMs replaced", replaced)
        self.assertEqual(await self.redis.smembers("vmpooler__poolreset"), set())
        self.assertEqual(await self.members("ready", DEBIAN), debian)

    async def test_another_manager_obeys_after_a_restart(self) -> None:
        self.start()
        await until("full pools", self.full)
        await self.manager.stopService()
        # Set while no manager runs (by another daemon's API, say): the
        # next manager to start obeys it.
        await self.store.overrides.set("poolsize", {CENTOS: ("1", "2")})
        second = Manager(self.config, self.store, self.provider, reactor, grace=10)
        second.startService()
        self.addCleanup(second.stopService)
        await until("1 ready centos VM", lambda: self.ready_in_vsphere(CENTOS, 1))
        self.assertEqual(len(await self.members("ready", DEBIAN)), 3)


class DemandSizedTests(ManagerCase):
    async def test_a_pool_without_demand_sits_at_its_floor_and_says_why(self) -> None:
        self.config = dataclasses.replace(self.config, pools=tuple(
            dataclasses.replace(p, size_policy="demand", min_size=1) if p.name == DEBIAN
            else p for p in self.config.pools))
        self.manager = Manager(self.config, self.store, self.provider, reactor, grace=10,
                               metrics=self.metrics)
        self.client = Client(VmpoolerApi(self.config, ApiStore(self.redis, reactor),
                                         reactor).resource())
        self.start()
        await until("debian-7 at its floor, centos-7 full",
                    lambda: self.at(DEBIAN, 1, CENTOS, 2))
        pool = (await self.client.get("/api/v1/status")).body["pools"][DEBIAN]
        self.assertEqual(pool["max"], 1)
        self.assertEqual((pool["demand"]["policy"], pool["demand"]["size"],
                          pool["demand"]["max_size"]), ("demand", 1, 3))
        self.assertIsNone(pool["demand"]["achieved_hit_rate"])
        metrics = self.metrics.render().decode()
        self.assertIn(f'vmpooler_pool_size{{pool="{DEBIAN}"}} 1.0', metrics)
        self.assertIn(f'vmpooler_pool_size{{pool="{CENTOS}"}} 2.0', metrics)

    async def at(self, pool: str, count: int, other: str, other_count: int) -> bool:
        return (len(await self.members("ready", pool)) == count
                and len(await self.members("ready", other)) == other_count)
