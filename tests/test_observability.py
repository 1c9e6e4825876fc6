"""Prometheus metrics, Graphite, the health check and the log file."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.net import listen, port_of

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.meta import HEALTH_CACHE, HealthCheck
from vmpoolerd.config import GraphiteConfig
from vmpoolerd.telemetry.graphite import GraphiteSender
from vmpoolerd.telemetry.logs import LogFile
from vmpoolerd.telemetry.metrics import Metrics
from vmpoolerd.store.api_store import ApiStore

from .fixtures import fill_ready, make_config, sets_of
from .http import Client
from .processes import free_port
from .redis_server import fresh_redis, private_redis
from .manager_case import CENTOS, DEBIAN, FOLDERS, ManagerCase
from .waiting import until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


class CheckoutMetricsTests(TestCase):
    async def test_checkouts_by_outcome(self) -> None:
        redis = await fresh_redis(self)
        metrics = Metrics()
        api = VmpoolerApi(make_config(), ApiStore(redis, reactor, metrics=metrics), Clock(),
                          metrics=metrics)
        client = Client(api.resource())
        await fill_ready(redis, "debian-7-i386", 2)
        for path, body in (("/api/v1/vm/debian-7-i386", None), ("/vm", {"debian-7-i386": 1}),
                           ("/vm/nosuchpool", None), ("/vm/debian-7-i386", None),
                           ("/vm", b"{bad"), ("/vm", {"debian-7-i386": 0})):
            await client.post(path, body)
        response = await client.stub.get("http://vmpooler.test/metrics")
        self.assertEqual(response.headers.getRawHeaders("content-type")[0].split(";")[0],
                         "text/plain")
        found = samples((await response.content()).decode())
        self.assertEqual(found["vmpooler_checkouts_total", (("outcome", "ok"),)], 2)
        self.assertEqual(found["vmpooler_checkouts_total", (("outcome", "unknown_pool"),)], 1)
        self.assertEqual(found["vmpooler_checkouts_total", (("outcome", "not_enough_vms"),)], 1)
        self.assertEqual(found["vmpooler_checkouts_total", (("outcome", "bad_request"),)], 2)

    async def test_redis_errors(self) -> None:
        server, redis = await private_redis(self, 0.3)
        metrics = Metrics()
        store = ApiStore(redis, reactor, 0.3, metrics)
        self.addCleanup(store.stop)
        api = VmpoolerApi(make_config(), store, Clock(),
                          metrics=metrics)
        client = Client(api.resource())
        await redis.ping()
        server.stop()
        self.assertEqual((await client.get("/api/v1/status")).code, 503)
        self.assertEqual((await client.post("/api/v1/vm/debian-7-i386")).code, 503)
        found = samples(metrics.render().decode())
        self.assertEqual(found["vmpooler_redis_errors_total", ()], 2)
        # A 503 for want of Redis is not "not enough VMs".
        self.assertEqual(found["vmpooler_checkouts_total", (("outcome", "redis_unavailable"),)],
                         1)
        self.assertNotIn(("vmpooler_checkouts_total", (("outcome", "not_enough_vms"),)), found)


class PoolMetricsTests(ManagerCase):
    async def test_pool_clone_boot_and_call_metrics(self) -> None:
        self.start()
        await until("full pools", self.full)
        found = samples(self.metrics.render().decode())
        clones = sum(v for (name, labels), v in found.items()
                     if name == "vmpooler_clone_seconds_count")
        boots = sum(v for (name, labels), v in found.items()
                    if name == "vmpooler_boot_seconds_count")
        self.assertGreaterEqual(clones, 5)
        self.assertGreaterEqual(boots, 5)
        self.assertGreater(found["vmpooler_vsphere_call_seconds_count",
                                 (("method", "inventories"), ("outcome", "ok"))], 0)

        async def gauges() -> bool:
            found = samples(self.metrics.render().decode())
            return (found["vmpooler_pool_vms", (("pool", DEBIAN), ("state", "ready"))] == 3
                    and found["vmpooler_pool_vms", (("pool", CENTOS), ("state", "ready"))] == 2)
        await until("ready gauges", gauges)
        text = self.metrics.render().decode()
        for host in await self.members("ready", DEBIAN):
            self.assertNotIn(host, text)  # no hostname is ever a label

    async def test_failures_are_counted(self) -> None:
        self.start()
        await until("full pools", self.full)
        host = sorted(await self.members("ready", DEBIAN))[0]
        self.vsphere.destroy(FOLDERS[DEBIAN], host)  # the template is fine, the VM gone
        self.server.hang()
        await until("a vSphere call timed out", lambda: samples(
            self.metrics.render().decode()).get((
                "vmpooler_vsphere_call_seconds_count",
                (("method", "inventories"), ("outcome", "error"))), 0) > 0)
        self.server.resume()
        # The VM destroyed behind the manager's back is forgotten (kept as
        # destroyed, in no set), and replaced.
        await until("the lost VM forgotten", lambda: self.redis.hexists(
            f"vmpooler__vm__{host}", "destroy"))
        sets = await sets_of(self.redis, self.config)
        self.assertFalse([key for key, members in sets.items() if host in members])
        await until("the pool refilled", self.full)
        self.assertNotIn(host, await self.members("ready", DEBIAN))

    client_timeout = 1.0


class HealthTests(ManagerCase):
    """Note [Health check] in vmpoolerd/api/meta.py."""

    def health_client(self, clock: Clock, **checks: HealthCheck) -> Client:
        api = VmpoolerApi(self.config, ApiStore(self.redis, reactor), clock, health=checks,
                          warnings={"redis": lambda: self.doubt})
        return Client(api.resource())

    doubt: str | None = None

    async def test_health(self) -> None:
        clock = Clock()
        asked = []

        def vsphere() -> Any:
            asked.append(clock.seconds())
            return self.provider.ping(timeout=1)
        client = self.health_client(clock, redis=self.store.ping, vsphere=vsphere)
        answer = await client.get("/api/v1/healthcheck")
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        self.server.hang()
        for _ in range(3):  # answered from the last few seconds' check
            self.assertEqual((await client.get("/api/v1/healthcheck")).code, 200)
        self.assertEqual(len(asked), 1)
        clock.advance(HEALTH_CACHE)
        answer = await client.get("/api/v1/healthcheck")
        self.assertEqual(answer.code, 503)
        self.assertEqual(answer.body["failed"], {"vsphere": "ProviderTimeout"})
        self.assertIs(answer.body["ok"], False)
        self.assertNotIn(str(self.server.port), json.dumps(answer.body))
        self.server.resume()
        clock.advance(HEALTH_CACHE)
        self.assertEqual((await client.get("/healthcheck")).code, 200)

    async def test_redis_down(self) -> None:
        server, redis = await private_redis(self, 0.5)
        store = ApiStore(redis, reactor, 0.5)
        clock = Clock()
        client = self.health_client(clock, redis=store.ping)
        self.assertEqual((await client.get("/api/v1/healthcheck")).code, 200)
        server.stop()
        clock.advance(HEALTH_CACHE)
        answer = await client.get("/api/v1/healthcheck")
        self.assertEqual((answer.code, answer.body["failed"]), (503, {"redis": "StoreUnavailable"}))
        self.assertNotIn(str(server.port), json.dumps(answer.body))

    async def test_a_redis_in_doubt_is_a_warning_not_an_outage(self) -> None:
        client = self.health_client(Clock(), redis=self.store.ping)
        self.doubt = "Redis's state is in doubt: lost data"
        answer = await client.get("/healthcheck")
        self.assertEqual((answer.code, answer.body),
                         (200, {"ok": True, "warnings": {"redis": self.doubt}}))


class Receiver(LineReceiver):
    delimiter = b"\n"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode())


class GraphiteTests(ManagerCase):
    async def graphite(self) -> GraphiteSender:
        self.lines: list[str] = []
        factory = Factory.forProtocol(lambda: Receiver(self.lines))
        port = listen(factory)
        self.addCleanup(port.stopListening)
        sender = GraphiteSender(GraphiteConfig("127.0.0.1", port_of(port), "vmpooler"),
                                reactor)
        sender.startService()
        self.addCleanup(sender.stopService)
        await self.until_connected(sender)
        return sender

    async def until_connected(self, sender: GraphiteSender) -> None:
        await until("a connection to the Graphite receiver",
                    lambda: sender.connection is not None, seconds=2, interval=0.02)

    async def test_vmpooler_names(self) -> None:
        self.start()
        await until("full pools", self.full)
        host = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        await self.client.delete(f"/api/v1/vm/{host}")

        def seen(name: str) -> list[str]:
            return [line for line in self.lines if line.startswith(name + " ")]
        await until("a destroy sent", lambda: seen(f"vmpooler.destroy.{DEBIAN}"))
        for line in self.lines:
            self.assertRegex(line, r"^vmpooler\.(ready|running|clone|destroy)\.[a-z0-9.-]+ "
                                   r"[0-9.e+-]+ [0-9]{10}$")
        self.assertTrue(seen(f"vmpooler.clone.{CENTOS}"))
        self.assertIn(f"vmpooler.ready.{DEBIAN} 3", {line.rsplit(" ", 1)[0]
                                                     for line in seen(f"vmpooler.ready.{DEBIAN}")})
        self.assertTrue(seen(f"vmpooler.running.{DEBIAN}"))


class GraphiteDownTests(SynchronousTestCase):
    def test_drops_while_down(self) -> None:
        clock = Clock()
        sender = GraphiteSender(GraphiteConfig("127.0.0.1", free_port()), clock)
        for _ in range(1000):
            sender.send("ready.pool", 3)
        self.assertEqual((sender.sent, sender.dropped), (0, 1000))

    def test_drops_while_paused(self) -> None:
        from twisted.internet.testing import StringTransport
        from vmpoolerd.telemetry.graphite import _Line
        sender = GraphiteSender(GraphiteConfig("127.0.0.1", 2003, "site"), Clock())
        line = _Line(sender)
        transport = StringTransport()
        line.makeConnection(transport)
        sender.send("ready.pool", 3)
        self.assertEqual(transport.value(), b"site.ready.pool 3 0\n")
        line.pauseProducing()  # the send buffer is full
        sender.send("ready.pool", 4)
        self.assertEqual((sender.sent, sender.dropped), (1, 1))
        line.resumeProducing()
        sender.send("ready.pool", 5)
        self.assertEqual(sender.sent, 2)


class LogFileTests(SynchronousTestCase):
    def write(self, log_format: str) -> str:
        path = self.mktemp()
        publisher = LogPublisher()
        service = LogFile(path, log_format, publisher)
        service.startService()
        log = Logger(namespace="vmpoolerd.manager", observer=publisher)
        log.info("[+] [{pool}] '{vm}' cloned in {seconds:.2f} seconds",
                 pool="debian-7", vm="abcdefghijklmno", seconds=2.3141)
        log.debug("not at debug")
        Logger(namespace="twisted.web", observer=publisher).info("not twisted's")
        service.stopService()
        with open(path) as f:
            return f.read()

    def test_vmpooler_lines(self) -> None:
        text = self.write("vmpooler")
        self.assertRegex(text, r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[\+\] \[debian-7\] "
                               r"'abcdefghijklmno' cloned in 2\.31 seconds\n$")

    def test_json_lines(self) -> None:
        lines = self.write("json").strip("\x1e\n").split("\n")
        self.assertEqual(len(lines), 1)
        event = json.loads(lines[0].strip("\x1e"))
        self.assertEqual((event["pool"], event["vm"], event["log_namespace"]),
                         ("debian-7", "abcdefghijklmno", "vmpoolerd.manager"))


class DaemonLogTests(ManagerCase):
    """The manager's own events, written by a LogFile of the real publisher."""

    async def test_manager_events_in_the_log(self) -> None:
        path = self.mktemp()
        service = LogFile(path, "vmpooler")
        service.startService()
        self.addCleanup(service.stopService)
        self.start()
        await until("full pools", self.full)
        host = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        await self.client.delete(f"/api/v1/vm/{host}")
        await until("the VM destroyed", lambda: f"'{host}' destroyed" in open(path).read())
        text = open(path).read()
        self.assertRegex(text, r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[\+\] \[debian-7\] "
                               r"'t-[a-z0-9]{15}' cloned in \d+\.\d\d seconds")
        self.assertIn("moved to 'ready' queue", text)
        self.assertNotIn(self.server.password, text)
        self.assertIsNone(re.search(r"[a-z0-9]{32}", text))  # no token-like strings


