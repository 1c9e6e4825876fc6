"""
vmpooler 3.x's monitoring beside ours: statsd (``:statsd:``) received by a
UDP listener, and 3.x's Prometheus endpoint compared with 3.x's table.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.error import DNSLookupError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.tap import monitoring
from vmpoolerd.config import PrometheusConfig, StatsdConfig, parse_config
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.telemetry import statsd
from vmpoolerd.telemetry.metrics import Metrics
from vmpoolerd.telemetry.promstats import Promstats, PromstatsRoutes
from vmpoolerd.telemetry.statsd import StatsdSender

from .fixtures import config_text, fill_ready, make_config
from .http import Client
from .logs import captured_events
from .redis_server import fresh_redis
from .waiting import until

#: The metrics of vmpooler 3.x's table (lib/vmpooler/metrics/promstats.rb),
#: by name with the default prometheus_prefix, their kinds and roles, as
#: 3.x registers them: a dashboard built on 3.x finds each of these.
THREE_X = {
    "vmpooler_errors_markedasfailed": ("counter", "manager"),
    "vmpooler_errors_duplicatehostname": ("counter", "manager"),
    "vmpooler_errors_staledns": ("counter", "manager"),
    "vmpooler_user": ("counter", "api"),
    "vmpooler_usage_litmus": ("counter", "api"),
    "vmpooler_usage_jenkins_instance": ("counter", "api"),
    "vmpooler_usage_branch_project": ("counter", "api"),
    "vmpooler_usage_job_component": ("counter", "api"),
    "vmpooler_checkout_nonresponsive": ("counter", "api"),
    "vmpooler_checkout_empty": ("counter", "api"),
    "vmpooler_checkout_success": ("counter", "api"),
    "vmpooler_checkout_invalid": ("counter", "api"),
    "vmpooler_delete_success": ("counter", "api"),
    "vmpooler_delete_failed": ("counter", "api"),
    "vmpooler_ondemandrequest_generate_duplicaterequests": ("counter", "api"),
    "vmpooler_ondemandrequest_generate_success": ("counter", "api"),
    "vmpooler_ondemandrequest_fail_toomanyrequests": ("counter", "api"),
    "vmpooler_ondemandrequest_fail_invalid": ("counter", "api"),
    "vmpooler_config_invalid": ("counter", "api"),
    "vmpooler_poolreset_invalid": ("counter", "api"),
    "vmpooler_connect_open": ("counter", "manager"),
    "vmpooler_connect_fail": ("counter", "manager"),
    "vmpooler_migrate_from": ("counter", "manager"),
    "vmpooler_migrate_to": ("counter", "manager"),
    "vmpooler_http_requests_vm_total": ("counter", "api"),
    "vmpooler_ready": ("gauge", "manager"),
    "vmpooler_running": ("gauge", "manager"),
    "vmpooler_connection_available": ("gauge", "manager"),
    "vmpooler_time_to_ready_state": ("histogram", "manager"),
    "vmpooler_migrate": ("histogram", "manager"),
    "vmpooler_clone": ("histogram", "manager"),
    "vmpooler_destroy": ("histogram", "manager"),
    "vmpooler_connection_waited": ("histogram", "manager"),
}


def types(text: str) -> dict[str, str]:
    """Each metric's TYPE line, by name."""
    return {line.split()[2]: line.split()[3] for line in text.splitlines()
            if line.startswith("# TYPE ")}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample as written (a counter without ``_total``, as 3.x's client
    writes it), once the exposition has parsed."""
    list(text_string_to_metric_families(text))
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if match:
            labels = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2])
            found[match[1], tuple(sorted(labels))] = float(match[3])
    return found


def fed(stats: Any) -> Metrics:
    """Metrics fed to ``stats``, with a little of everything 3.x counts."""
    metrics = Metrics(sinks=[stats])
    metrics.cloned("debian-7", 12.345)
    metrics.booted("debian-7", 45.0)
    metrics.destroyed("debian-7", 3.0)
    metrics.pool_counts("debian-7", {"ready": 3, "running": 1})
    metrics.checkout("ok", ["debian-7", "centos-7"])
    metrics.checkout("not_enough_vms", ["debian-7"])
    metrics.checkout("unknown_pool", ["nosuch"])
    metrics.checkout("bad_request", ["debian-7"])
    metrics.failed("debian-7", "boot_timeout")
    return metrics


class PromstatsTests(SynchronousTestCase):
    def test_the_names_are_3xs(self) -> None:
        text = Promstats(PrometheusConfig(), "all").render().decode()
        self.assertEqual(types(text), {name: kind for name, (kind, _) in THREE_X.items()})

    def test_each_role_its_own(self) -> None:
        for role in ("api", "manager"):
            self.assertEqual(Promstats(PrometheusConfig(), role).names,
                             sorted(n for n, (_, r) in THREE_X.items() if r == role))

    def test_samples_as_3x_labels_them(self) -> None:
        stats = Promstats(PrometheusConfig(), "all")
        fed(stats)
        stats.increment("migrate_to.host1.example.com")
        stats.increment("user.jdoe.checkout.debian-7")
        stats.increment("nonesuch.debian-7")  # dropped, as 3.x drops it
        found = samples(stats.render().decode())
        pool = (("poolname", "debian-7"), ("vmpooler_instance", "vmpooler"))
        self.assertEqual(found["vmpooler_ready", pool], 3)
        self.assertEqual(found["vmpooler_running", pool], 1)
        self.assertEqual(found["vmpooler_clone_count", pool], 1)
        self.assertEqual(found["vmpooler_clone_sum", pool], 12.345)
        self.assertEqual(found["vmpooler_clone_bucket", (("le", "10.0"), *pool)], 0)
        self.assertEqual(found["vmpooler_clone_bucket", (("le", "20.0"), *pool)], 1)
        self.assertEqual(found["vmpooler_clone_bucket", (("le", "+Inf"), *pool)], 1)
        self.assertEqual(found["vmpooler_time_to_ready_state_count", pool], 1)
        self.assertEqual(found["vmpooler_destroy_count", pool], 1)
        self.assertEqual(found["vmpooler_checkout_success", pool], 1)
        self.assertEqual(found["vmpooler_checkout_empty", pool], 1)
        self.assertEqual(found["vmpooler_checkout_invalid", (("poolname", "nosuch"),
                                                             pool[1])], 1)
        self.assertEqual(found["vmpooler_errors_markedasfailed", (
            ("template_name", "debian-7"), pool[1])], 1)
        self.assertEqual(found["vmpooler_migrate_to", (("host_name", "host1.example.com"),
                                                       pool[1])], 1)
        self.assertEqual(found["vmpooler_user", (("operation", "checkout"), pool[0],
                                                 ("user", "jdoe"), pool[1])], 1)
        self.assertEqual(len([k for k in found if k[0].startswith("vmpooler_checkout")]), 4)

    def test_prefixes(self) -> None:
        stats = Promstats(PrometheusConfig("/p", "pooler", "site-a"), "manager")
        stats.gauge("ready.debian-7", 2)
        found = samples(stats.render().decode())
        self.assertEqual(found["pooler_ready", (("poolname", "debian-7"),
                                                ("vmpooler_instance", "site-a"))], 2)


class EndpointTests(TestCase):
    async def test_served_at_its_endpoint_beside_ours(self) -> None:
        redis = await fresh_redis(self)
        stats = Promstats(PrometheusConfig(endpoint="/prom/3x"), "all")
        metrics = fed(stats)
        api = VmpoolerApi(make_config(), ApiStore(redis, reactor, metrics=metrics), Clock(),
                          metrics=metrics)
        PromstatsRoutes(stats).mount(api.app)
        stub = Client(api.resource()).stub
        response = await stub.get("http://vmpooler.test/prom/3x")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type")[0].split(";")[0],
                         "text/plain")
        self.assertEqual(set(types((await response.content()).decode())), set(THREE_X))
        ours = await stub.get("http://vmpooler.test/metrics")
        self.assertIn(b"vmpooler_clone_seconds", await ours.content())


class CheckoutCountersTests(TestCase):
    async def test_a_checkout_through_the_api_counts_each_name_asked_for(self) -> None:
        redis = await fresh_redis(self)
        stats = Promstats(PrometheusConfig(), "all")
        metrics = Metrics(sinks=[stats])
        api = VmpoolerApi(make_config(), ApiStore(redis, reactor, metrics=metrics), Clock(),
                          metrics=metrics)
        client = Client(api.resource())
        await fill_ready(redis, "debian-7-i386", 1)
        self.assertEqual((await client.post("/api/v1/vm/debian-7-32")).code, 200)
        self.assertEqual((await client.post("/api/v1/vm/debian-7-32")).code, 503)
        self.assertEqual((await client.post("/api/v1/vm/nosuch")).code, 404)
        found = samples(stats.render().decode())
        instance = ("vmpooler_instance", "vmpooler")
        self.assertEqual(found["vmpooler_checkout_success",
                               (("poolname", "debian-7-32"), instance)], 1)
        self.assertEqual(found["vmpooler_checkout_empty",
                               (("poolname", "debian-7-32"), instance)], 1)
        self.assertEqual(found["vmpooler_checkout_invalid", (("poolname", "nosuch"), instance)],
                         1)


class WiringTests(SynchronousTestCase):
    def test_from_the_config(self) -> None:
        text = yaml.safe_dump({
            ":statsd": {"server": "127.0.0.1", "port": 9125, "prefix": "site"},
            ":prometheus": {"prometheus_endpoint": "/prom", "prometheus_prefix": "pooler"}})
        config = parse_config(config_text(None, None, None) + text, {})
        top = MultiService()
        metrics, promstats = monitoring(config, Clock(), "manager", top, None)
        assert promstats is not None
        self.assertEqual(promstats.endpoint, "/prom")
        self.assertIn("pooler_clone", promstats.names)
        self.assertNotIn("pooler_checkout_success", promstats.names)
        [sender] = list(top)
        assert isinstance(sender, StatsdSender)
        metrics.pool_counts("debian-7", {"ready": 2})
        self.assertIn(('pooler_ready{poolname="debian-7",vmpooler_instance="vmpooler"} 2.0'),
                      promstats.render().decode())
        self.assertEqual(sender.dropped, 2)  # not started: nothing sent, nothing waits

    def test_none_by_default(self) -> None:
        top = MultiService()
        _, promstats = monitoring(make_config(), Clock(), "all", top, None)
        self.assertEqual((promstats, list(top)), (None, []))


class Listener(DatagramProtocol):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.lines.append(datagram.decode())


def listen_udp(protocol: DatagramProtocol) -> Any:
    udp: Any = reactor
    return udp.listenUDP(0, protocol, interface="127.0.0.1")


class StatsdTests(TestCase):
    def sender(self, server: str, port: int, clock: Any = reactor) -> StatsdSender:
        sender = StatsdSender(StatsdConfig(server, port, "vmpooler"), clock)
        sender.startService()
        self.addCleanup(sender.stopService)
        return sender

    async def test_received_by_a_udp_listener(self) -> None:
        listener = Listener()
        port = listen_udp(listener)
        self.addCleanup(port.stopListening)
        sender = self.sender("127.0.0.1", port.getHost().port)
        fed(sender)
        expected = {"vmpooler.clone.debian-7:12.35|ms", "vmpooler.time_to_ready_state.debian-7:"
                    "45.00|ms", "vmpooler.destroy.debian-7:3.00|ms", "vmpooler.ready.debian-7:3|g",
                    "vmpooler.running.debian-7:1|g", "vmpooler.checkout.success.debian-7:1|c",
                    "vmpooler.checkout.success.centos-7:1|c",
                    "vmpooler.checkout.empty.debian-7:1|c",
                    "vmpooler.checkout.invalid.nosuch:1|c",
                    "vmpooler.errors.markedasfailed.debian-7:1|c"}
        await until("every metric", lambda: set(listener.lines) >= expected)
        self.assertEqual(sorted(listener.lines), sorted(expected))
        self.assertEqual((sender.sent, sender.dropped), (len(expected), 0))

    async def test_nobody_listening_costs_nothing(self) -> None:
        listener = Listener()
        port = listen_udp(listener)
        number = port.getHost().port
        await maybeDeferred(port.stopListening)
        events = captured_events(self)
        sender = self.sender("127.0.0.1", number)
        for _ in range(50):
            fed(sender)
        self.assertEqual(sender.sent, 50 * 10)
        self.assertEqual([formatEvent(e) for e in events if "statsd" in formatEvent(e)], [])

    def test_a_name_not_resolved_is_one_log_line(self) -> None:
        clock = Clock()
        asked: list[str] = []

        class Unresolved:
            def resolve(self, name: str) -> Deferred[str]:
                asked.append(name)
                return fail(DNSLookupError(name))

            def listenUDP(self, port: int, protocol: Any, interface: str = "") -> Any:
                udp: Any = reactor
                return udp.listenUDP(port, protocol, interface=interface)

            def callLater(self, *args: Any) -> Any:
                return clock.callLater(*args)

        events = captured_events(self)
        sender = StatsdSender(StatsdConfig("statsd.invalid", 8125, "vmpooler"), Unresolved())
        sender.startService()
        self.addCleanup(sender.stopService)
        Metrics(sinks=[sender]).cloned("debian-7", 1.0)
        clock.pump([statsd.RESOLVE_EVERY] * 3)
        self.assertEqual(asked, ["statsd.invalid"] * 4)
        logged = [formatEvent(e) for e in events if "statsd" in formatEvent(e)]
        self.assertEqual(len(logged), 1, logged)
        self.assertIn("statsd.invalid:8125", logged[0])
        self.assertEqual((sender.sent, sender.dropped), (0, 1))
