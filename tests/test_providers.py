"""Several vCenters at once: two simulators, a pool on each, as the daemon wires them."""

from __future__ import annotations

import dataclasses

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.config import Config, VsphereConfig
from vmpoolerd.manager.service import Manager, provider_threads
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.tap import make_providers, pool_vspheres, provider_health
from vmpoolerd.vsphere.provider import FOLDER_READS_IN_FLIGHT
from vmpoolerd.telemetry.metrics import Metrics

from .http import Client
from .manager_case import CENTOS, DEBIAN, FOLDERS, manager_config
from .net import listen, port_of
from .redis_server import fresh_redis
from .vcsim_server import VcsimServer, inventory, start_vcsim
from .waiting import until

PDX = "vsphere-pdx"


def provider_config(server: VcsimServer, datacenter: str | None = None) -> VsphereConfig:
    return VsphereConfig(server.host, server.username, server.password, port=server.port,
                         insecure=True, datacenter=datacenter)


def two_vcenters(config: Config, main: VsphereConfig, pdx: VsphereConfig,
                 centos_datacenter: str | None = None) -> Config:
    """``config`` with DEBIAN on the vCenter 'vsphere' and CENTOS on 'vsphere-pdx'."""
    pools = tuple(dataclasses.replace(p, provider=PDX, datacenter=centos_datacenter)
                  if p.name == CENTOS else p for p in config.pools)
    return dataclasses.replace(config, providers=(("vsphere", main), (PDX, pdx)), pools=pools)


class ThreadsTests(TestCase):
    def test_each_provider_counts_its_own_pools(self) -> None:
        config = manager_config(1, 2, task_limit=4)
        vsphere = VsphereConfig("h", "u", "p")
        config = two_vcenters(config, vsphere, vsphere)
        self.assertEqual(provider_threads(config, "vsphere"), 2 * 4 + FOLDER_READS_IN_FLIGHT)
        self.assertEqual(provider_threads(config, PDX), 2 * 4 + FOLDER_READS_IN_FLIGHT)

    def test_only_used_providers_are_made(self) -> None:
        config = manager_config(1, 2)
        vsphere = VsphereConfig("h", "u", "p")
        config = dataclasses.replace(config, providers=(("vsphere", vsphere), (PDX, vsphere)))
        metrics = Metrics()
        self.assertEqual(set(make_providers(config, reactor, metrics)), {"vsphere"})
        rendered = metrics.render().decode()
        self.assertIn('vmpooler_vsphere_queue_depth{provider="vsphere"} 0.0', rendered)
        self.assertIn('vmpooler_vsphere_calls_running{provider="vsphere"} 0.0', rendered)
        self.assertNotIn(PDX, rendered)


def connections_to(port: int) -> int:
    """TCP connections established from this host to ``port`` (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if row[3] == "01" and int(row[2].split(":")[1], 16) == port)


class ConnectionsTests(TestCase):
    async def test_each_thread_keeps_its_connection(self) -> None:
        server = start_vcsim(None, self)
        config = dataclasses.replace(manager_config(server.port, 1, task_limit=4),
                                     providers=(("vsphere", provider_config(server)),))
        provider = make_providers(config, reactor, Metrics())["vsphere"]
        provider.startService()
        self.addCleanup(provider.stopService)
        self.addCleanup(server.resume)
        await provider.ping()  # logged in
        threads = provider_threads(config, "vsphere")
        self.assertGreater(threads, 10)  # more than pyVmomi keeps by default
        server.hang()
        calls = [ensureDeferred(provider.ping()) for _ in range(threads)]
        await until("every thread in a call", lambda: provider.in_flight == threads)
        server.resume()
        await gatherResults(calls)
        # None was closed on its way back, to be opened again (TLS) next time.
        self.assertEqual(connections_to(server.port), threads)


class TwoVcentersTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        listener = listen(Factory.forProtocol(Protocol))
        self.addCleanup(listener.stopListening)
        self.main = start_vcsim(None, self, boot_delay_ms=200)
        # The second vCenter's datacenter is not its provider's default:
        # the pool names it.
        self.pdx = start_vcsim(inventory(datacenter="dc2"), self, boot_delay_ms=200)
        base = manager_config(self.main.port, port_of(listener),
                              check_loop_delay_max=1)
        self.config = two_vcenters(base, provider_config(self.main),
                                   provider_config(self.pdx, "dc1"), centos_datacenter="dc2")
        self.metrics = Metrics()
        self.providers = make_providers(self.config, reactor, self.metrics)
        for provider in self.providers.values():
            provider.startService()
            self.addCleanup(provider.stopService)
        self.addCleanup(self.pdx.resume)  # before the providers stop
        self.manager = Manager(self.config, PoolStore(self.redis, reactor),
                               pool_vspheres(self.config, self.providers), reactor, grace=10)
        api = VmpoolerApi(self.config, ApiStore(self.redis, reactor), reactor,
                          health=provider_health(self.providers))
        self.client = Client(api.resource())

    async def ready(self, pool: str) -> set[str]:
        return set(await self.redis.smembers(f"vmpooler__ready__{pool}"))

    async def test_each_pool_fills_from_its_own_vcenter(self) -> None:
        self.manager.startService()
        self.addCleanup(self.manager.stopService)

        async def full() -> bool:
            return len(await self.ready(DEBIAN)) == 3 and len(await self.ready(CENTOS)) == 2
        await until("full pools", full)
        main, pdx = self.main.client(), self.pdx.client(datacenter="dc2")
        self.assertEqual({vm.name for vm in main.inventory(FOLDERS[DEBIAN])},
                         await self.ready(DEBIAN))
        self.assertEqual({vm.name for vm in pdx.inventory(FOLDERS[CENTOS])},
                         await self.ready(CENTOS))
        self.assertEqual(main.inventory(FOLDERS[CENTOS]), [])
        self.assertEqual(pdx.inventory(FOLDERS[DEBIAN]), [])

    async def test_a_hung_vcenter_stalls_only_its_own_pools(self) -> None:
        self.manager.startService()
        self.addCleanup(self.manager.stopService)

        async def full() -> bool:
            return len(await self.ready(DEBIAN)) == 3 and len(await self.ready(CENTOS)) == 2
        await until("full pools", full)
        self.pdx.hang()
        centos = self.manager.maintainers[CENTOS]
        # Several checkouts from the healthy vCenter's pool, each replaced
        # while the other vCenter's calls hang.
        taken = set()
        for _ in range(3):
            answer = await self.client.post(f"/api/v1/vm/{DEBIAN}")
            self.assertEqual(answer.code, 200)
            taken.add(answer.body[DEBIAN]["hostname"])

            async def refilled() -> bool:
                return len(await self.ready(DEBIAN)) == 3
            await until("the healthy vCenter's pool full again", refilled, seconds=20)
        main = {vm.name for vm in self.main.client().inventory(FOLDERS[DEBIAN])}
        self.assertEqual(main, taken | await self.ready(DEBIAN))
        # The hung vCenter's pool is stuck meanwhile: its cycle still waits
        # on its inventory, and its checkout is not replaced.
        answer = await self.client.post(f"/api/v1/vm/{CENTOS}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(len(await self.ready(CENTOS)), 1)
        self.assertTrue(self.providers[PDX].in_flight)
        # The healthy vCenter's calls do not wait for threads behind the
        # hung one's: one may be queued for the moment its thread takes it.
        await until("no call of the healthy vCenter waiting for a thread",
                    lambda: not self.providers["vsphere"].queued)
        health = await self.client.get("/api/v1/healthcheck")
        self.assertEqual((health.code, health.body["failed"]), (503, {PDX: "ProviderTimeout"}))
        self.pdx.resume()

        async def centos_full() -> bool:
            return len(await self.ready(CENTOS)) == 2
        await until("the other pool full again", centos_full, seconds=60)
        self.assertFalse(centos.failing)


class ThreadCapTests(TestCase):
    def test_a_thousand_pools_read_their_folders_on_a_few_threads(self) -> None:
        config = manager_config(1, 2, task_limit=4)
        many = dataclasses.replace(config, pools=tuple(
            dataclasses.replace(config.pools[0], name=f"p{i}") for i in range(1000)))
        self.assertEqual(provider_threads(many, "vsphere"), 2 * 4 + FOLDER_READS_IN_FLIGHT)

    def test_each_datacenter_has_its_own_folder_reads(self) -> None:
        config = manager_config(1, 2, task_limit=4)
        spread = dataclasses.replace(config, pools=tuple(
            dataclasses.replace(config.pools[0], name=f"p{i}", datacenter=dc)
            for i, dc in enumerate([None, "DC1", "DC1", "DC2"])))
        self.assertEqual(provider_threads(spread, "vsphere"), 2 * 4 + 3 * FOLDER_READS_IN_FLIGHT)
