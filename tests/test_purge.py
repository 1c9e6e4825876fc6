"""The purge of what no pool owns: its choices (pure), and the purge on the simulator."""

from __future__ import annotations

import dataclasses

import yaml

from twisted.internet import reactor
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager.purge import purging
from vmpoolerd.manager.purge_plan import PURGE_LIMIT, base_folders, victims
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.vsphere.types import Entry

from .logs import captured_events
from .manager_case import FOLDERS
from .redis_server import fresh_redis, redis_server
from .vcsim_server import DEFAULT_INVENTORY, inventory, start_vcsim
from .waiting import until

POOL_FOLDERS = ["Pools/debian-7", "Pools/nested/centos-7"]
TEMPLATES = ["Templates/debian/debian-7-x86_64", "Pools/golden/base"]


def vm(path: str, template: bool = False) -> Entry:
    return Entry(path, folder=False, template=template)


def folder(path: str) -> Entry:
    return Entry(path, folder=True)


#: What lies under Pools, at any depth (Note [What the purge destroys]).
UNDER_POOLS = [
    folder("Pools/debian-7"), vm("Pools/debian-7/t-pooled"),
    folder("Pools/debian-7/sub"), vm("Pools/debian-7/sub/deep"),
    folder("Pools/nested"), folder("Pools/nested/centos-7"), vm("Pools/nested/centos-7/t-c"),
    folder("Pools/nested/old"), vm("Pools/nested/old/stray"), vm("Pools/nested/loose"),
    vm("Pools/loose"), vm("Pools/marked", template=True),
    folder("Pools/golden"), vm("Pools/golden/base"), vm("Pools/golden/other"),
    folder("Pools/keep"), vm("Pools/keep/k1"), folder("Pools/keep/inner"),
    folder("Pools/old"), vm("Pools/old/s1"), folder("Pools/old/deeper"),
    vm("Pools/old/deeper/s2"), folder("Pools/old/deeper/deepest"),
    folder("Pools/mixed"), vm("Pools/mixed/precious"), vm("Pools/mixed/junk"),
    folder("Pools/mixed/by-path"), vm("Pools/mixed/by-path/p1"),
    folder("Pools/marks"), vm("Pools/marks/tmpl", template=True),
    folder("Pools/empty"),
]


def under(base: str) -> list[Entry]:
    return [e for e in UNDER_POOLS if e.path.startswith(f"{base}/")]


class ChoiceTests(SynchronousTestCase):
    def test_base_folders_are_the_pool_folders_parents_never_the_top(self) -> None:
        self.assertEqual(base_folders(["Pools/a", "/Pools/b/", "Pools/nested/c", "top"]),
                         ["Pools", "Pools/nested"])
        self.assertEqual(base_folders(["A/x/y", "B/z"]), ["A/x", "B"])
        self.assertEqual(base_folders(["top"]), [])

    def test_only_unconfigured_folders_in_a_base_with_what_is_in_them(self) -> None:
        chosen = victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES,
                         ["keep", "precious", "Pools/mixed/by-path"])
        self.assertEqual([e.path for e in chosen], [
            "Pools/golden/other", "Pools/mixed/junk", "Pools/old/deeper/s2", "Pools/old/s1",
            "Pools/old/deeper/deepest", "Pools/old/deeper", "Pools/empty", "Pools/old"])

    def test_vms_beside_the_pool_folders_are_never_touched(self) -> None:
        chosen = {e.path for e in victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES, [])}
        self.assertNotIn("Pools/loose", chosen)
        self.assertNotIn("Pools/marked", chosen)
        self.assertFalse(chosen & {e.path for e in under("Pools/debian-7")})
        # On the way to a pool folder: spared whole here, a base of its own.
        self.assertFalse(chosen & ({e.path for e in under("Pools/nested")} | {"Pools/nested"}))

    def test_a_nested_base_is_looked_at_on_its_own(self) -> None:
        chosen = victims("Pools/nested", under("Pools/nested"), POOL_FOLDERS, TEMPLATES, [])
        self.assertEqual([e.path for e in chosen],
                         ["Pools/nested/old/stray", "Pools/nested/old"])

    def test_nothing_the_allowlist_names_at_any_level(self) -> None:
        everything = victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES, [])
        for name in ("old", "deeper", "s2", "Pools/old/deeper/deepest", "Pools"):
            chosen = {e.path for e in victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES,
                                              [name])}
            named = {e.path for e in everything if name in (e.name, e.path)}
            self.assertFalse(chosen & named, name)
            self.assertFalse({p for p in chosen if any(p.startswith(f"{n}/") for n in named)})
        self.assertEqual(victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES, ["Pools"]),
                         [])
        # Kept, so kept too: the folders on the way to what it names.
        chosen = {e.path for e in victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES,
                                          ["s2"])}
        self.assertEqual(chosen & {"Pools/old", "Pools/old/deeper"}, set())
        self.assertIn("Pools/old/s1", chosen)

    def test_templates_are_never_destroyed(self) -> None:
        chosen = {e.path for e in victims("Pools", under("Pools"), POOL_FOLDERS, TEMPLATES, [])}
        self.assertFalse(chosen & {"Pools/golden", "Pools/golden/base", "Pools/marks",
                                   "Pools/marks/tmpl"})

    def test_which_providers_purge(self) -> None:
        """The provider's key, else the global one; never a dummy provider."""
        text = yaml.safe_dump({
            ":providers": {
                ":vc1": {"provider_class": "vsphere", "server": "a", "username": "u",
                         "password": "p"},
                ":vc2": {"provider_class": "vsphere", "server": "b", "username": "u",
                         "password": "p", "purge_unconfigured_resources": False},
                ":fake": {"provider_class": "dummy"}},
            ":redis": {"server": "127.0.0.1"},
            ":config": {"purge_unconfigured_resources": True},
            ":pools": [{"name": f"p{i}", "template": "T/t", "folder": f"Pools/p{i}",
                        "datastore": "ds", "size": 1, "provider": provider}
                       for i, provider in enumerate(("vc1", "vc2", "fake"))]})
        config = parse_config(text, {})
        self.assertEqual(purging(config), ["vc1"])
        self.assertTrue(config.purge_for("fake").enabled)

    def test_nothing_to_purge(self) -> None:
        self.assertEqual(victims("Pools", [folder("Pools/debian-7")], POOL_FOLDERS, [], []),
                         [])


STRAYS = [
    {"folder": "Pools", "names": ["loose"], "power_on": True},
    {"folder": "Pools/old", "names": ["s1", "s2"]},
    {"folder": "Pools/nested/older/deeper", "names": ["s3"]},
    {"folder": "Pools/keep", "names": ["k1"]},
    {"folder": "Pools/mixed", "names": ["precious", "junk"]},
    {"folder": "Elsewhere/stray", "names": ["e1"]},
    {"folder": FOLDERS["debian-7"], "names": ["t-pooled"]},
]
TEMPLATE_IN_POOLS = {"path": "Pools/golden/tmpl", "template": True}
GONE = {"Pools/old", "Pools/old/s1", "Pools/old/s2", "Pools/empty", "Pools/mixed/junk",
        "Pools/nested/older", "Pools/nested/older/deeper", "Pools/nested/older/deeper/s3"}


def purge_config(purge: bool, allowlist: list[str], global_purge: bool = False) -> Config:
    """The manager's test config in 3.x's layout: the purge set on the provider (the
    global key saying otherwise), pools of size 0, no cycle soon."""
    raw = {
        ":providers": {":vsphere": {
            "provider_class": "vsphere", "server": "127.0.0.1", "username": "u",
            "password": "p", "purge_unconfigured_resources": purge,
            **({"resources_allowlist": allowlist} if allowlist else {})}},
        ":redis": {"server": "127.0.0.1", "port": redis_server().port},
        ":config": {"check_loop_delay_min": 60, "ready_check_port": 1,
                    "purge_unconfigured_resources": global_purge, "prefix": "t-"},
        ":pools": [{"name": name, "template": template, "folder": FOLDERS[name],
                    "datastore": "LocalDS_0", "size": 1, "provider": "vsphere"}
                   for name, template in (("debian-7", "Templates/debian/debian-7-x86_64"),
                                          ("centos-7", "Templates/centos-7-plain"))],
    }
    config = parse_config(yaml.safe_dump(raw), {})
    return dataclasses.replace(config, pools=tuple(dataclasses.replace(p, size=0)
                                                   for p in config.pools))


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
        return {e.path for e in self.vsphere.contents("Pools")
                } | {e.path for e in self.vsphere.contents("Elsewhere")}

    async def run_manager(self, config: Config) -> list[str]:
        manager = Manager(config, PoolStore(self.redis, reactor), self.provider, reactor)
        events = captured_events(self)
        manager.startService()
        self.addCleanup(manager.stopService)
        if config.purge_for("vsphere").enabled:
            await until("the purge", lambda: manager._purge is not None
                        and manager._purge.called)
        else:
            await until("a first cycle", lambda: all(
                m.cycles for m in manager.maintainers.values()))
        return [line for line in map(formatEvent, events) if "purge" in line]

    async def test_purge_destroys_unconfigured_folders_only(self) -> None:
        before = self.paths()
        logged = await self.run_manager(purge_config(True, ["keep", "precious"]))
        self.assertEqual(self.paths(), before - GONE)
        for kept in ("Pools/loose", "Pools/debian-7/t-pooled", "Pools/golden/tmpl",
                     "Pools/keep/k1", "Pools/mixed/precious", "Elsewhere/stray/e1"):
            self.assertIn(kept, self.paths())
        for path in GONE:
            self.assertEqual(len([line for line in logged if repr(path) in line]), 1, path)
        self.assertEqual(len(logged), len(GONE), logged)

    async def test_the_provider_allowlist_is_honoured(self) -> None:
        before = self.paths()
        await self.run_manager(purge_config(True, ["keep", "old", "older", "mixed", "empty"]))
        self.assertEqual(self.paths(), before)

    async def test_no_purge_without_the_key(self) -> None:
        before = self.paths()
        await self.run_manager(purge_config(False, [], global_purge=True))
        self.assertEqual(self.paths(), before)

    async def test_too_much_to_purge_is_taken_for_a_mistake(self) -> None:
        for i in range(PURGE_LIMIT):
            self.vsphere.clone("Templates/centos-7-plain", "Pools/old", "LocalDS_0", f"m{i}")
        before = self.paths()
        logged = await self.run_manager(purge_config(True, ["keep", "precious"]))
        self.assertEqual(self.paths(), before)
        self.assertEqual(len(logged), 1, logged)
        self.assertIn(f"'Pools', 'Pools/nested': {PURGE_LIMIT + len(GONE)} VMs and folders",
                      logged[0])
        self.assertIn("nothing destroyed", logged[0])
