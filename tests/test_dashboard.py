"""
The dashboard: its JSON and files through the API's resource (StubTreq)
against a real Redis, the sampler on a fake clock, and the page itself in
headless chromium against a daemon running on the vSphere simulator.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from typing import Any

import yaml
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, LoopingCall, deferLater
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import IResource

from tests.net import listen, port_of, stop_listening, tcp

from vmpoolerd.manager.failures import public
from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.config import Config, parse_config
from vmpoolerd.api.dashboard import Dashboard, Sampler
from vmpoolerd.manager.service import Manager
from vmpoolerd.store import txredis_adapter
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.dashboard import HORIZON, TTL, DashboardStore
from vmpoolerd.store.errors import StoreUnavailable
from vmpoolerd.api.site import QuietSite

from . import dashboard_store
from .browser import Cards, dump_dom, screenshot
from .dashboard_store import FakeDashboardStore
from .fixtures import fill_ready, make_config
from .http import Client
from .redis_server import fresh_redis, private_redis, redis_server
from .vcsim_server import inventory, start_vcsim
from .waiting import until

T0 = 1_700_000_000
D32, D64, C7 = "debian-7-i386", "debian-7-x86_64", "centos-7-x86_64"


async def connected_redis(test: TestCase) -> Any:
    """
    :func:`fresh_redis` once every connection of its pool is up: a pool
    closed while one still selects its db errbacks a Deferred nobody
    holds, and the error lands in a later test.
    """
    redis = await fresh_redis(test)
    await txredis_adapter.connected(redis)
    return redis


async def fill_running(redis: Any, pool: str, count: int) -> None:
    if count:
        names = [f"{pool[:6]}run{i:04d}" for i in range(count)]
        await redis.sadd(f"vmpooler__running__{pool}", names)


def dashboard_api(config: Config, redis: Any, clock: IReactorTime,
                  timeout: float = 3.0) -> tuple[VmpoolerApi, DashboardStore]:
    """The API with the dashboard mounted, as the daemon serves it."""
    store = DashboardStore(redis, reactor, timeout)
    api_store = ApiStore(redis, reactor, timeout)
    dashboard = Dashboard(config, store, clock, api_store.overrides.live, api_store.pool_counts)
    return VmpoolerApi(config, api_store, clock, dashboard=dashboard.resource()), store


async def raw_get(resource: IResource, path: str, method: str = "GET"
                  ) -> tuple[int, str, bytes, Any]:
    """Code, content type and body of any answer (not only JSON ones)."""
    stub: Any = StubTreq(resource)  # its verbs are looked up at run time
    pump = LoopingCall(stub.flush)
    pump.clock = reactor
    pump.start(0.002)
    try:
        response = await stub.request(method, "http://vmpooler.test" + path,
                                      allow_redirects=False)
        body = await response.content()
    finally:
        pump.stop()
    types = response.headers.getRawHeaders("content-type") or [""]
    return response.code, types[0], body, response.headers


class DashboardCase(TestCase):
    """The dashboard on an empty Redis, at T0 on a fake clock."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await connected_redis(self)
        self.config = make_config()
        self.clock = Clock()
        self.clock.advance(T0)
        api, self.store = dashboard_api(self.config, self.redis, self.clock)
        self.resource = api.resource()
        self.client = Client(self.resource)

    async def history(self, pool: str) -> list[list[int]]:
        """The stored samples, newest first."""
        return [json.loads(s) for s in
                await self.redis.lrange(f"vmpooler__dashboard__{pool}", 0, -1)]


class StatsTests(DashboardCase):
    async def test_pool_counts_against_size(self) -> None:
        await fill_ready(self.redis, D32, 3)
        await fill_ready(self.redis, C7, 3)
        await fill_running(self.redis, D32, 2)
        for path in ("/dashboard/stats/vmpooler/pool", "/dashboard/stats/vmpooler/pool/",
                     "/dashboard/stats/vmpooler/pool?history=0"):
            answer = await self.client.get(path)
            self.assertEqual(answer.code, 200, path)
            self.assertEqual(answer.body, {D32: {"size": 5, "ready": 3},
                                           D64: {"size": 5, "ready": 0},
                                           C7: {"size": 3, "ready": 3}})
            self.assertEqual(list(answer.body), [D32, D64, C7])

    async def test_the_live_size(self) -> None:
        await self.redis.hset("vmpooler__config__poolsize", D32, "2")
        answer = await self.client.get("/dashboard/stats/vmpooler/pool")
        self.assertEqual(answer.body[D32], {"size": 2, "ready": 0})

    async def test_failures_and_demand_explained(self) -> None:
        """What /status says of a pool besides its counts (Note [Failures
        explained], Note [Sizing from demand])."""
        failure = {"host": "d32x", "kind": "port_refused", "reason": "port 22 refused",
                   "time": "2026-11-29 00:00:00 +0000"}
        await self.redis.hset(f"vmpooler__failure_counts__{D32}", "port_refused", "2")
        await self.redis.lpush(f"vmpooler__failures__{D32}", json.dumps(failure))
        demand = {"policy": "demand", "achieved_hit_rate": 0.97, "size": 4,
                  "rate_per_hour": 12.5, "replenish_seconds": 90, "expected_hit_rate": 0.995,
                  "hit_rate": 0.99, "min_size": 1, "max_size": 5}
        await self.redis.hset(f"vmpooler__demand__{D64}", "shown", json.dumps(demand))
        body = (await self.client.get("/dashboard/stats/vmpooler/pool")).body
        shown = {**failure, "reason": public("port_refused")}  # Note [Public failures]
        self.assertEqual(body[D32], {"size": 5, "ready": 0, "failures": {
            "count": {"port_refused": 2}, "recent": [shown]}})
        self.assertEqual(body[D64], {"size": 5, "ready": 0, "demand": demand})
        self.assertEqual(body[C7], {"size": 3, "ready": 0})
        status = (await self.client.get("/api/v1/status")).body["pools"]
        self.assertEqual(status[D32]["failures"], body[D32]["failures"])
        self.assertEqual(status[D64]["demand"], demand)

    async def test_pool_history_oldest_first(self) -> None:
        answer = await self.client.get("/dashboard/stats/vmpooler/pool?history=1")
        self.assertEqual(answer.body[D32], {"size": 5, "ready": 0, "history": []})
        await self.store.sample(self.config.pool_names, T0 - 20, 10)
        await fill_ready(self.redis, D32, 2)
        await self.store.sample(self.config.pool_names, T0 - 10, 10)
        await fill_running(self.redis, D32, 1)
        await self.store.sample(self.config.pool_names, T0, 10)
        for query in ("history=1", "history=true"):
            answer = await self.client.get(f"/dashboard/stats/vmpooler/pool?{query}")
            self.assertEqual(answer.body[D32], {
                "size": 5, "ready": 2,
                "history": [[T0 - 20, 0, 0], [T0 - 10, 2, 0], [T0, 2, 1]]}, query)
            self.assertEqual(answer.body[C7]["history"], [[T0 - 20, 0, 0], [T0 - 10, 0, 0],
                                                          [T0, 0, 0]])

    async def test_running_grouped_by_major(self) -> None:
        await fill_running(self.redis, D32, 1)
        await fill_running(self.redis, D64, 2)
        answer = await self.client.get("/dashboard/stats/vmpooler/running")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body, {
            "debian": {"running": 3, "pools": {D32: 1, D64: 2}},
            "centos": {"running": 0, "pools": {C7: 0}}})


class HistoryTests(DashboardCase):
    async def test_bounded_to_the_last_hour(self) -> None:
        pools = self.config.pool_names
        for t in range(T0, T0 + 2 * HORIZON, 10):
            await self.store.sample(pools, t, 10)
        now = T0 + 2 * HORIZON - 10
        samples = await self.history(D32)
        self.assertEqual(len(samples), HORIZON // 10 + 1)
        self.assertEqual(samples[0][0], now)
        self.assertEqual(samples[-1][0], now - HORIZON)

    async def test_expires(self) -> None:
        await self.store.sample(self.config.pool_names, T0, 10)
        for pool in self.config.pool_names:
            ttl = await self.redis.ttl(f"vmpooler__dashboard__{pool}")
            self.assertTrue(TTL - 5 <= ttl <= TTL, ttl)
        self.assertEqual(TTL, 2 * HORIZON)

    async def test_old_samples_are_not_shown(self) -> None:
        # The samplers stopped: what they left is shown for an hour, no more.
        await self.store.sample(self.config.pool_names, T0, 10)
        self.clock.advance(HORIZON - 1)
        answer = await self.client.get("/dashboard/stats/vmpooler/pool?history=1")
        self.assertEqual(answer.body[D32]["history"], [[T0, 0, 0]])
        self.clock.advance(2)
        answer = await self.client.get("/dashboard/stats/vmpooler/pool?history=1")
        self.assertEqual(answer.body[D32]["history"], [])

    async def test_daemons_sharing_redis_do_not_double_samples(self) -> None:
        other = DashboardStore(self.redis, reactor)
        pools = self.config.pool_names
        self.assertEqual(await self.store.sample(pools, T0, 10), 3)
        self.assertEqual(await other.sample(pools, T0 + 2, 10), 0)
        self.assertEqual(await other.sample(pools, T0 + 5, 10), 3)
        self.assertEqual([s[0] for s in await self.history(D64)], [T0 + 5, T0])


class RealStoreTests(dashboard_store.DashboardStoreContract):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await connected_redis(self)
        self._store = DashboardStore(self.redis, reactor)

    def store(self) -> DashboardStore:
        return self._store

    async def set_counts(self, pool: str, ready: int, running: int) -> None:
        for state, count in (("ready", ready), ("running", running)):
            await self.redis.delete(f"vmpooler__{state}__{pool}")
            if count:
                await self.redis.sadd(f"vmpooler__{state}__{pool}",
                                      [f"{state}{i}" for i in range(count)])


class FakeStoreTests(dashboard_store.DashboardStoreContract):
    def setUp(self) -> None:
        self._store = FakeDashboardStore()

    def store(self) -> FakeDashboardStore:
        return self._store

    async def set_counts(self, pool: str, ready: int, running: int) -> None:
        self._store.counts[pool] = (ready, running)


class SamplerTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = FakeDashboardStore(held=True)
        self.sampler = Sampler(make_config(), self.store, self.clock, interval=10)

    def test_samples_every_interval_without_overlapping(self) -> None:
        self.sampler.startService()
        self.assertEqual(self.store.calls, [((D32, D64, C7), T0, 10)])
        self.clock.advance(35)  # the first sample is still running
        self.assertEqual(len(self.store.calls), 1)
        self.store.answers[0].callback(3)
        self.clock.advance(5)
        self.assertEqual([c[1] for c in self.store.calls], [T0, T0 + 40])
        self.store.answers[1].callback(3)
        self.clock.advance(10)
        self.assertEqual([c[1] for c in self.store.calls], [T0, T0 + 40, T0 + 50])
        stopped = self.sampler.stopService()
        self.assertFalse(stopped.called)  # waits for the sample in progress
        self.store.answers[2].callback(3)
        self.assertTrue(stopped.called)
        self.clock.advance(100)
        self.assertEqual(len(self.store.calls), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_errors_are_logged_and_sampling_goes_on(self) -> None:
        self.sampler.startService()
        self.store.answers[0].errback(StoreUnavailable("Redis did not answer"))
        self.clock.advance(10)
        self.store.answers[1].errback(RuntimeError("surprise"))
        self.clock.advance(10)
        self.store.answers[2].callback(3)
        self.clock.advance(10)
        self.assertEqual(len(self.store.calls), 4)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.store.answers[3].callback(3)
        self.sampler.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_on_a_real_redis(self) -> None:
        redis = await connected_redis(self)
        store = DashboardStore(redis, reactor)
        sampler = Sampler(make_config(), store, self.clock, interval=10)
        await fill_ready(redis, D32, 4)
        sampler.startService()

        async def samples() -> list[str]:
            return list(await redis.lrange(f"vmpooler__dashboard__{D32}", 0, -1))
        await until("a sample", samples)
        self.assertEqual(await samples(), [json.dumps([T0, 4, 0], separators=(",", ":"))])
        await sampler.stopService()


class FileTests(DashboardCase):
    async def test_page_and_files_with_their_types(self) -> None:
        for path, content_type, needle in [
            ("/dashboard/", "text/html; charset=utf-8", b'src="/dashboard/dashboard.js"'),
            ("/dashboard", "text/html; charset=utf-8", b'href="/dashboard/dashboard.css"'),
            ("/dashboard/index.html", "text/html; charset=utf-8", b"<!doctype html>"),
            ("/dashboard/dashboard.js", "text/javascript; charset=utf-8", b"use strict"),
            ("/dashboard/dashboard.css", "text/css; charset=utf-8", b"#pools"),
            ("/dashboard/favicon.svg", "image/svg+xml", b"<svg"),
        ]:
            code, got_type, body, _ = await raw_get(self.resource, path)
            self.assertEqual((code, got_type), (200, content_type), path)
            self.assertIn(needle, body, path)

    async def test_root_redirects_to_the_dashboard(self) -> None:
        code, content_type, _, headers = await raw_get(self.resource, "/")
        self.assertEqual((code, content_type), (302, "application/json"))
        self.assertEqual(headers.getRawHeaders("location"), ["/dashboard/"])

    async def test_unknown_file_is_404_json(self) -> None:
        for path in ("/dashboard/nope.js", "/dashboard/stats", "/dashboard/stats/vmpooler",
                     "/dashboard/stats/vmpooler/nope", "/dashboard/.hidden",
                     "/dashboard/index.html/x"):
            answer = await self.client.get(path)
            self.assertEqual(answer.code, 404, path)
            self.assertIs(answer.body["ok"], False, path)
        answer = await self.client.post("/dashboard/dashboard.js")
        self.assertEqual(answer.code, 405)

    async def test_no_path_traversal(self) -> None:
        for path in ("/dashboard/..%2fdashboard.py", "/dashboard/..%2f..%2fsetup.cfg",
                     "/dashboard/%2e%2e%2fapi.py", "/dashboard/%2e%2e/api.py",
                     "/dashboard/..%5cdashboard.py", "/dashboard/static%2findex.html",
                     "/dashboard/..%2flua%2fcheckout.lua", "/dashboard/x%2f..%2f..%2fapi.py",
                     "/dashboard/%00index.html", "/dashboard/index.html%00",
                     "/dashboard/%ff"):
            code, content_type, body, _ = await raw_get(self.resource, path)
            self.assertIn(code, (400, 404), path)
            self.assertEqual(content_type, "application/json", path)
            self.assertIs(json.loads(body)["ok"], False, path)


    async def test_leading_encoded_slash(self) -> None:
        paths = ("/dashboard/%2fetc%2fpasswd", "/dashboard//dashboard.js")
        codes = [(await raw_get(self.resource, path))[0] for path in paths]
        self.assertEqual(codes, [404, 404])


class RedisDownTests(TestCase):
    async def test_503_json(self) -> None:
        server, redis = await private_redis(self, 0.5)
        api, _ = dashboard_api(make_config(), redis, Clock(), timeout=0.5)
        client = Client(api.resource())
        self.assertEqual((await client.get("/dashboard/stats/vmpooler/running")).code, 200)
        server.stop()
        for path in ("/dashboard/stats/vmpooler/pool?history=1",
                     "/dashboard/stats/vmpooler/running"):
            answer = await client.get(path)
            self.assertEqual(answer.code, 503, path)
            self.assertIs(answer.body["ok"], False)
        code, _, _, _ = await raw_get(api.resource(), "/dashboard/")
        self.assertEqual(code, 200)  # the page itself needs no Redis


# --- in a browser --------------------------------------------------------------


def serve(test: TestCase, resource: IResource) -> str:
    """Serve ``resource`` on 127.0.0.1 until ``test`` ends; its base URL."""
    site = QuietSite(resource)
    site.displayTracebacks = False
    factory = WrappingFactory(site)
    port = listen(factory)

    async def stop() -> None:
        await stop_listening(port)
        for protocol in list(factory.protocols):
            tcp(protocol).loseConnection()
        await until("the connections to close", lambda: not factory.protocols)
    test.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return f"http://127.0.0.1:{port_of(port)}"


# The demo's pools, and a few more.
BROWSER_POOLS = {D32: 5, D64: 5, C7: 3, "centos-8-x86_64": 3, "ubuntu-2004-x86_64": 3,
                 "ubuntu-2204-x86_64": 4, "win-2019-x86_64": 2, "sles-15-x86_64": 2}


class BrowserTests(TestCase):
    """
    A daemon on the vSphere simulator, in this process: manager, sampler,
    API with the dashboard, served on a free port; chromium loads the page.
    """

    timeout = 180

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await connected_redis(self)
        ssh = listen(Factory.forProtocol(Protocol))
        self.addCleanup(ssh.stopListening)
        templates = {pool: f"Templates/{pool}" for pool in BROWSER_POOLS}
        folders = {pool: f"Pooled VMs/{pool}" for pool in BROWSER_POOLS}
        vcsim = start_vcsim(inventory(
            templates=[{"path": t, "template": True} for t in templates.values()],
            folders=list(folders.values())), self, boot_delay_ms=300, clone_delay_ms=100)
        self.config = parse_config(yaml.safe_dump({
            ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
            ":redis": {"server": "127.0.0.1", "port": redis_server().port},
            ":config": {"site_name": "browser test", "check_loop_delay_min": 0.1,
                        "check_loop_delay_max": 1, "vm_checktime": 0.05, "task_limit": 4,
                        "ready_check_port": port_of(ssh), "ready_check_address": "ip",
                        "prefix": "t-", "domain": "example.com"},
            ":pools": [{"name": pool, "template": templates[pool], "folder": folders[pool],
                        "datastore": "LocalDS_0", "size": size}
                       for pool, size in BROWSER_POOLS.items()],
        }), {})
        provider = Provider(vcsim.client(timeout=10), reactor, call_timeout=20)
        provider.startService()
        self.addCleanup(provider.stopService)
        self.manager = Manager(self.config, PoolStore(self.redis, reactor), provider, reactor,
                               grace=10)
        self.manager.startService()
        self.addCleanup(lambda: self.manager.stopService() if self.manager.running else None)
        api, store = dashboard_api(self.config, self.redis, reactor)
        sampler = Sampler(self.config, store, reactor, interval=1)
        sampler.startService()
        self.addCleanup(sampler.stopService)
        self.client = Client(api.resource())
        self.url = serve(self, api.resource()) + "/dashboard/"

    async def ready(self, pool: str) -> int:
        return int(await self.redis.scard(f"vmpooler__ready__{pool}"))

    async def full(self) -> bool:
        for pool, size in BROWSER_POOLS.items():
            if await self.ready(pool) < size:
                return False
        return True

    async def cards(self) -> Cards:
        cards = Cards(await dump_dom(self.url))
        self.assertEqual(set(cards.cards), set(BROWSER_POOLS), cards.cards)
        return cards

    async def test_every_pool_and_its_counts_in_chromium(self) -> None:
        await until("full pools", self.full, seconds=60)
        # Some VMs in use, replaced: the charts show the dips and refills.
        running = dict.fromkeys(BROWSER_POOLS, 0)
        for names in (f"{D32}+{D32}+{D64}", f"ubuntu-2204-x86_64+{C7}", D32):
            answer = await self.client.post(f"/api/v1/vm/{names}")
            self.assertEqual(answer.code, 200, answer.body)
            for name in names.split("+"):
                running[name] += 1
            await deferLater(reactor, 1)  # real time: the charts sample once a second
        await until("full pools again", self.full, seconds=60)
        await deferLater(reactor, 1.5)  # real time: one more sample after the refill
        path = os.path.join(os.path.abspath(self.mktemp()), "dashboard.png")
        os.makedirs(os.path.dirname(path))
        await screenshot(self.url, path)
        self.assertGreater(os.path.getsize(path), 10_000)

        # What /status explains shows under the chart: a pool's failures,
        # and what its demand says (as the manager records them).
        await self.redis.hset(f"vmpooler__failure_counts__{D32}", "no_ip", "1")
        await self.redis.lpush(f"vmpooler__failures__{D32}", json.dumps(
            {"host": "t-x", "kind": "no_ip", "reason": "no IP address after 15 minutes",
             "time": "2026-11-29 00:00:00 +0000"}))
        await self.redis.hset(f"vmpooler__demand__{C7}", "shown", json.dumps(
            {"policy": "demand", "achieved_hit_rate": 0.9875, "size": 2,
             "rate_per_hour": 3.5, "hit_rate": 0.99}))
        explained = {D32: "1 failure", C7: "98.7% hits (24 h) \u00b7 sized 2 for 3.5/h, "
                     "target 99%"}
        cards = await self.cards()
        for pool, size in BROWSER_POOLS.items():
            explain = cards.cards[pool].pop("explain")
            self.assertEqual(explain, explained.get(pool, ""), pool)
            self.assertEqual(cards.cards[pool], {"name": pool, "ready": str(size),
                                                 "size": str(size),
                                                 "running": str(running[pool])})
            self.assertGreaterEqual(cards.charts[pool], 2)  # ready area, running line

        # The manager stopped, nothing refills the pools behind a checkout.
        await self.manager.stopService()
        answer = await self.client.post(f"/api/v1/vm/{D32}+{D32}+{C7}")
        self.assertEqual(answer.code, 200, answer.body)
        cards = await self.cards()
        ready = dict(BROWSER_POOLS)
        ready[D32] -= 2
        ready[C7] -= 1
        running[D32] += 2
        running[C7] += 1
        for pool in BROWSER_POOLS:
            self.assertEqual(await self.ready(pool), ready[pool])
            self.assertEqual((cards.cards[pool]["ready"], cards.cards[pool]["running"]),
                             (str(ready[pool]), str(running[pool])), pool)


class ManyPoolsTests(TestCase):
    """A hundred pools with an hour of history render; names stay text."""

    timeout = 120

    async def test_hundred_pools(self) -> None:
        redis = await connected_redis(self)
        rng = random.Random(4)
        families = ["debian", "ubuntu", "centos", "rhel", "sles", "fedora", "oracle", "win"]
        pools = []
        for i in range(99):
            family = families[i % len(families)]
            pools.append({"name": f"{family}-{10 + i // len(families)}-"
                                  f"{['x86_64', 'i386', 'aarch64'][i % 3]}",
                          "template": f"T/{i}", "folder": f"F/{i}", "datastore": "DS",
                          "size": rng.choice([2, 3, 5, 8, 10, 20])})
        pools.append({**pools[-1], "name": "zz-last", "folder": "F/last"})
        config = parse_config(yaml.safe_dump({
            ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
            ":pools": pools}), {})
        # A name the configuration would refuse, to show data stays text.
        evil = '<img src=x onerror="document.title=1">'
        config = dataclasses.replace(config, pools=config.pools[:-1] + (
            dataclasses.replace(config.pools[-1], name=evil),))
        now = int(reactor.seconds())
        expected: dict[str, Any] = {}
        for pool in config.pools:
            ready = rng.choice([0, pool.size // 2, pool.size, pool.size, pool.size])
            running = rng.randrange(6)
            await fill_ready(redis, pool.name, ready, prefix=f"h{len(expected):03d}-")
            await fill_running(redis, pool.name, running)
            level, samples = pool.size, []  # bursts of checkouts, then refills
            for t in range(now - HORIZON + 10, now, 10):
                if rng.random() < 0.03:
                    level = max(0, level - rng.randint(1, pool.size))
                elif rng.random() < 0.3:
                    level = min(pool.size, level + 1)
                samples.append(json.dumps([t, level, running]))
            await redis.lpush(f"vmpooler__dashboard__{pool.name}", samples)
            expected[pool.name] = (str(ready), str(running))
        api, _ = dashboard_api(config, redis, reactor)
        url = serve(self, api.resource()) + "/dashboard/"

        html = await dump_dom(url)
        cards = Cards(html)
        self.assertEqual({name: (c["ready"], c["running"]) for name, c in cards.cards.items()},
                         expected)
        self.assertEqual(cards.cards[evil]["name"], evil)
        self.assertNotIn("<img", html)
        self.assertIn("<title>vmpooler dashboard</title>", html)
        path = os.path.join(os.path.abspath(self.mktemp()), "hundred.png")
        os.makedirs(os.path.dirname(path))
        await screenshot(url, path)
