"""
What the manager's tests share: a configuration of two pools, a case
running the manager against a real Redis and the vSphere simulator, and a
scripted provider whose vSphere calls a test answers by hand.
"""

from __future__ import annotations

from typing import Any

import yaml
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.telemetry.metrics import GraphiteSink, Metrics
from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.vsphere.types import Entry, VmState

from .fixtures import sets_of
from .http import Client
from .net import listen, port_of
from .redis_server import fresh_redis, redis_server
from .vcsim_server import VcsimServer, start_vcsim

DEBIAN, CENTOS = "debian-7", "centos-7"
FOLDERS = {DEBIAN: "Pools/debian-7", CENTOS: "Pools/nested/centos-7"}


def manager_config(port: int, ready_port: int, **service: Any) -> Config:
    redis = redis_server()
    raw = {
        ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
        ":redis": {"server": "127.0.0.1", "port": redis.port},
        ":config": {"check_loop_delay_min": 0.05, "check_loop_delay_max": 0.5,
                    "vm_checktime": 0.005, "timeout": 0.5, "task_limit": 10,
                    "ready_check_port": ready_port, "ready_check_address": "ip",
                    "prefix": "t-", **service},
        ":pools": [
            {"name": DEBIAN, "template": "Templates/debian/debian-7-x86_64",
             "folder": FOLDERS[DEBIAN], "datastore": "LocalDS_0", "size": 3},
            {"name": CENTOS, "template": "Templates/centos-7-plain",
             "folder": FOLDERS[CENTOS], "datastore": "LocalDS_0", "size": 2},
        ],
    }
    return parse_config(yaml.safe_dump(raw), {})


class ManagerCase(TestCase):
    timeout = 120
    service: dict[str, Any] = {}
    vcsim: dict[str, Any] = {"boot_delay_ms": 200}
    client_timeout = 10.0

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        listener = listen(Factory.forProtocol(Protocol))
        self.addCleanup(listener.stopListening)
        self.server: VcsimServer = start_vcsim(None, self, **self.vcsim)
        self.config = manager_config(self.server.port, port_of(listener), **self.service)
        self.vsphere = self.server.client()
        self.metrics = Metrics(await self.graphite())
        self.daemon_vsphere = self.server.client(timeout=self.client_timeout)
        self.provider = Provider(self.daemon_vsphere, reactor, call_timeout=20,
                                 metrics=self.metrics)
        self.provider.startService()
        self.addCleanup(self.provider.stopService)
        self.store = PoolStore(self.redis, reactor, metrics=self.metrics)
        self.manager = Manager(self.config, self.store, self.provider, reactor, grace=10,
                               metrics=self.metrics)
        api = VmpoolerApi(self.config, ApiStore(self.redis, reactor), reactor,
                          metrics=self.metrics, health={
                              "redis": self.store.ping,
                              "vsphere": lambda: self.provider.ping(timeout=1)})
        self.client = Client(api.resource())

    async def graphite(self) -> GraphiteSink | None:
        """Where the metrics go besides Prometheus (a subclass's choice)."""
        return None

    def start(self) -> None:
        self.manager.startService()
        self.addCleanup(self.manager.stopService)

    async def members(self, state: str, pool: str) -> set[str]:
        return set(await self.redis.smembers(f"vmpooler__{state}__{pool}"))

    async def full(self) -> bool:
        return (len(await self.members("ready", DEBIAN)) == 3
                and len(await self.members("ready", CENTOS)) == 2)

    def names_in(self, pool: str) -> set[str]:
        return {vm.name for vm in self.vsphere.inventory(FOLDERS[pool])}

    async def assert_one_set_each(self) -> None:
        """Every VM in exactly one set, and every VM in vSphere known to Redis."""
        sets = await sets_of(self.redis, self.config)
        for pool in (DEBIAN, CENTOS):
            held = [h for key, m in sets.items() if key.endswith(f"__{pool}") for h in m]
            self.assertEqual(len(held), len(set(held)), held)
            self.assertLessEqual(self.names_in(pool), set(held))


class ScriptedProvider:
    """
    A provider whose calls the test answers by hand: each call waits in
    ``calls[method]`` with its positional arguments until :meth:`answer`
    (or :meth:`fail`).  It has the methods of
    :class:`~vmpoolerd.vsphere.provider.Provider` (tests/test_vsphere_contract.py
    checks them); what they answer is the test's to say.
    """

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[tuple[Any, ...], Deferred[Any]]]] = {}

    def _call(self, method: str, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.setdefault(method, []).append((args, d))
        return d

    def inventory(self, folder: str) -> Deferred[list[VmState]]:
        return self._call("inventory", folder)

    def clone(self, template: str, folder: str, datastore: str, name: str,
              resource_pool: str | None = None,
              clone_target: str | None = None, linked: bool = False) -> Deferred[float]:
        return self._call("clone", template, folder, datastore, name, linked)

    def destroy(self, folder: str, name: str) -> Deferred[bool]:
        return self._call("destroy", folder, name)

    def add_disk(self, folder: str, name: str, size_gb: int) -> Deferred[None]:
        return self._call("add_disk", folder, name, size_gb)

    def create_snapshot(self, folder: str, name: str, snapshot: str) -> Deferred[None]:
        return self._call("create_snapshot", folder, name, snapshot)

    def revert_snapshot(self, folder: str, name: str, snapshot: str) -> Deferred[None]:
        return self._call("revert_snapshot", folder, name, snapshot)

    def contents(self, folder: str) -> Deferred[list[Entry]]:
        return self._call("contents", folder)

    def remove_folder(self, folder: str) -> Deferred[bool]:
        return self._call("remove_folder", folder)

    def answer(self, method: str, result: Any) -> tuple[Any, ...]:
        """Answer the oldest waiting ``method`` call; its arguments."""
        args, d = self.calls[method].pop(0)
        d.callback(result)
        return args

    def fail(self, method: str, error: Exception) -> tuple[Any, ...]:
        """Fail the oldest waiting ``method`` call with ``error``; its arguments."""
        args, d = self.calls[method].pop(0)
        d.errback(error)
        return args
