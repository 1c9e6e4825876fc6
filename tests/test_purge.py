"""The purge of what no pool owns: its choices (pure), and the purge on the simulator."""

from __future__ import annotations

import dataclasses

from twisted.internet import reactor
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.manager.purge_plan import PURGE_LIMIT, purge_roots, victims
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.vsphere.types import Entry

from .logs import captured_events
from .manager_case import FOLDERS, manager_config
from .redis_server import fresh_redis
from .vcsim_server import DEFAULT_INVENTORY, inventory, start_vcsim
from .waiting import until

POOL_FOLDERS = ["Pools/debian-7", "Pools/nested/centos-7"]
TEMPLATES = ["Templates/debian/debian-7-x86_64", "Pools/golden/base"]


def vm(path: str, template: bool = False) -> Entry:
    return Entry(path, folder=False, template=template)


def folder(path: str) -> Entry:
    return Entry(path, folder=True)


class ChoiceTests(SynchronousTestCase):
    def test_roots_are_the_pool_folders_parents_never_the_top(self) -> None:
        self.assertEqual(purge_roots(["Pools/a", "/Pools/b/", "Pools/nested/c", "top"]),
                         ["Pools"])
        self.assertEqual(purge_roots(["A/x/y", "B/z"]), ["A/x", "B"])

    def test_what_no_pool_owns(self) -> None:
        entries = [
            folder("Pools/debian-7"), vm("Pools/debian-7/t-pooled"),
            folder("Pools/debian-7/sub"), vm("Pools/debian-7/sub/deep"),
            folder("Pools/nested"), folder("Pools/nested/centos-7"),
            folder("Pools/nested/old"), vm("Pools/nested/old/stray"),
            vm("Pools/loose"), vm("Pools/marked", template=True),
            folder("Pools/golden"), vm("Pools/golden/base"), vm("Pools/golden/other"),
            folder("Pools/keep"), vm("Pools/keep/k1"), vm("Pools/keep-by-path"),
            folder("Pools/empty"),
        ]
        chosen = victims(entries, POOL_FOLDERS, TEMPLATES, ["keep", "Pools/keep-by-path"])
        self.assertEqual([e.path for e in chosen], [
            "Pools/golden/other", "Pools/loose", "Pools/nested/old/stray",
            "Pools/nested/old", "Pools/empty"])

    def test_nothing_to_purge(self) -> None:
        self.assertEqual(victims([folder("Pools/debian-7")], POOL_FOLDERS, [], []), [])


STRAYS = [
    {"folder": "Pools", "names": ["loose"], "power_on": True},
    {"folder": "Pools/old", "names": ["s1", "s2"]},
    {"folder": "Pools/nested/older/deeper", "names": ["s3"]},
    {"folder": "Pools/keep", "names": ["k1"]},
    {"folder": FOLDERS["debian-7"], "names": ["t-pooled"]},
]
TEMPLATE_IN_POOLS = {"path": "Pools/golden/tmpl", "template": True}


class PurgeTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.sim = start_vcsim(inventory(
            vms=STRAYS, folders=[*DEFAULT_INVENTORY["folders"], "Pools/empty"],
            templates=[*DEFAULT_INVENTORY["templates"], TEMPLATE_IN_POOLS]), self)
        self.vsphere = self.sim.client()
        self.addCleanup(self.vsphere.close)
        self.provider = Provider(self.sim.client(), reactor, call_timeout=20)
        self.provider.startService()
        self.addCleanup(self.provider.stopService)

    def paths(self) -> set[str]:
        return {e.path for e in self.vsphere.contents("Pools")}

    async def run_manager(self, purging: bool) -> list[str]:
        config = manager_config(self.sim.port, 1, ready_check_port=1)
        service = dataclasses.replace(config.service, purge_unconfigured_resources=purging,
                                      resources_allowlist=("keep",), check_loop_delay_min=60)
        config = dataclasses.replace(
            config, service=service,
            pools=tuple(dataclasses.replace(p, size=0) for p in config.pools))
        manager = Manager(config, PoolStore(self.redis, reactor), self.provider, reactor)
        events = captured_events(self)
        manager.startService()
        self.addCleanup(manager.stopService)
        if purging:
            await until("the purge", lambda: manager._purge is not None
                        and manager._purge.called)
        else:
            await until("a first cycle", lambda: all(
                m.cycles for m in manager.maintainers.values()))
        return [line for line in map(formatEvent, events) if "purge" in line]

    async def test_purge_destroys_what_no_pool_owns(self) -> None:
        before = self.paths()
        logged = await self.run_manager(purging=True)
        gone = {"Pools/loose", "Pools/old", "Pools/old/s1", "Pools/old/s2", "Pools/empty",
                "Pools/nested/older", "Pools/nested/older/deeper",
                "Pools/nested/older/deeper/s3"}
        self.assertEqual(self.paths(), before - gone)
        self.assertIn("Pools/debian-7/t-pooled", self.paths())
        self.assertIn("Pools/golden/tmpl", self.paths())
        self.assertIn("Pools/keep/k1", self.paths())
        for path in gone:
            self.assertEqual(len([line for line in logged if repr(path) in line]), 1, path)
        self.assertEqual(len(logged), len(gone), logged)

    async def test_no_purge_without_the_key(self) -> None:
        before = self.paths()
        await self.run_manager(purging=False)
        self.assertEqual(self.paths(), before)

    async def test_too_much_to_purge_is_taken_for_a_mistake(self) -> None:
        for i in range(PURGE_LIMIT):
            self.vsphere.clone("Templates/centos-7-plain", "Pools/old", "LocalDS_0", f"m{i}")
        before = self.paths()
        logged = await self.run_manager(purging=True)
        self.assertEqual(self.paths(), before)
        self.assertEqual(len(logged), 1, logged)
        self.assertIn(f"'Pools': {PURGE_LIMIT + 8} VMs and folders", logged[0])
        self.assertIn("nothing destroyed", logged[0])
