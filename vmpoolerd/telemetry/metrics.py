"""
What the daemon counts, for Prometheus (``/metrics``) and, when
``:graphite:`` is set, for Graphite under vmpooler's names; when
``:statsd:`` or ``:prometheus:`` is set, for vmpooler 3.x's statsd and
Prometheus table too, by 3.x's dotted labels (:class:`StatsSink`; Note
[3.x's metric table] in promstats.py).

Note [Bounded labels]: labels are pool names, vSphere method names and
outcomes: sets fixed by the configuration and the code.  Hostnames, users
and tokens are never labels (nor anywhere in a metric).

One :class:`Metrics` per daemon, with its own registry: nothing global.
"""

from __future__ import annotations

import collections
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric

DURATIONS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
CALL_DURATIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
STATES = ("pending", "ready", "running", "completed", "discovered")


class GraphiteSink(Protocol):
    def send(self, name: str, value: float) -> None: ...


class StatsSink(Protocol):
    """vmpooler 3.x's metrics interface (statsd, its Prometheus table):
    dotted labels such as ``clone.<pool>``, durations in seconds."""

    def increment(self, label: str) -> None: ...
    def gauge(self, label: str, value: float) -> None: ...
    def timing(self, label: str, seconds: float) -> None: ...


#: Our checkout outcomes, as 3.x's ``checkout.<suffix>.<pool>`` counters say them.
CHECKOUT_3X = {"ok": "success", "not_enough_vms": "empty", "unknown_pool": "invalid"}


class _Outcomes:
    """
    A counter by one label, kept in a plain dict and read out only when
    ``/metrics`` is asked: counting is a dict update, where a Prometheus
    counter takes a lock per increment (the checkout's hot path).
    """

    def __init__(self, name: str, documentation: str, label: str,
                 registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self.counts: collections.Counter[str] = collections.Counter()
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self.counts.items()):
            family.add_metric([value], count)
        yield family


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, graphite: GraphiteSink | None = None,
                 sinks: Sequence[StatsSink] = ()) -> None:
        self.registry = CollectorRegistry()
        self._graphite = graphite
        self._sinks = tuple(sinks)
        r = self.registry
        self.pool_vms = Gauge("vmpooler_pool_vms", "VMs in each pool, by state",
                              ["pool", "state"], registry=r)
        self._checkouts = _Outcomes("vmpooler_checkouts", "Checkout requests, by outcome",
                                    "outcome", r).counts
        self.clones = Histogram("vmpooler_clone_seconds", "Clone durations",
                                ["pool"], buckets=DURATIONS, registry=r)
        self.clone_failures = Counter("vmpooler_clone_failures", "Clones that failed",
                                      ["pool"], registry=r)
        self.failures = Counter("vmpooler_vm_failures",
                                "VMs that failed, by pool and kind (clone, boot_timeout, "
                                "no_ip, hostname_mismatch, port_refused, port_timeout, "
                                "unreachable, destroy)", ["pool", "kind"], registry=r)
        self.pool_size = Gauge("vmpooler_pool_size",
                               "Each pool's live size (its file's, the config API's or its "
                               "demand's)", ["pool"], registry=r)
        self.demand_rate = Gauge("vmpooler_pool_demand_per_hour",
                                 "The checkouts per hour a demand-sized pool is sized for",
                                 ["pool"], registry=r)
        self.hit_rate = Gauge("vmpooler_pool_hit_rate",
                              "The share of VMs asked for that were handed out, last 24 hours",
                              ["pool"], registry=r)
        self.leases = Gauge("vmpooler_pool_lease",
                            "1 for each pool whose lease this manager (its id the manager "
                            "label) holds, 0 for the others it serves", ["pool", "manager"],
                            registry=r)
        self.boots = Histogram("vmpooler_boot_seconds",
                               "From the start of a clone to the VM being ready",
                               ["pool"], buckets=DURATIONS, registry=r)
        self.destroys = Histogram("vmpooler_destroy_seconds", "Destroy durations",
                                  ["pool"], buckets=DURATIONS, registry=r)
        self.vsphere_calls = Histogram("vmpooler_vsphere_call_seconds",
                                       "vSphere calls, by method and outcome",
                                       ["method", "outcome"], buckets=CALL_DURATIONS,
                                       registry=r)
        self.redis_errors = Counter("vmpooler_redis_errors",
                                    "Redis calls that failed or timed out", registry=r)
        self.vsphere_queue = Gauge("vmpooler_vsphere_queue_depth",
                                   "vSphere calls waiting for a thread, by provider",
                                   ["provider"], registry=r)
        self.vsphere_running = Gauge("vmpooler_vsphere_calls_running",
                                     "vSphere calls running in a thread, by provider",
                                     ["provider"], registry=r)

    def watch_provider(self, name: str, queued: Callable[[], int],
                       running: Callable[[], int]) -> None:
        """Report the queue and calls of the provider (vCenter) ``name``."""
        self.vsphere_queue.labels(name).set_function(queued)
        self.vsphere_running.labels(name).set_function(running)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- events --------------------------------------------------------------------

    def checkout(self, outcome: str, names: Iterable[str] = ()) -> None:
        """A checkout's ``outcome``; ``names``: what it asked for (for 3.x's
        counters, one per name)."""
        self._checkouts[outcome] += 1
        suffix = CHECKOUT_3X.get(outcome) if self._sinks else None
        if suffix is not None:
            for name in names:
                self._increment(f"checkout.{suffix}.{name}")

    def cloned(self, pool: str, seconds: float) -> None:
        self.clones.labels(pool).observe(seconds)
        self._send(f"clone.{pool}", seconds)
        self._timing(f"clone.{pool}", seconds)

    def failed(self, pool: str, kind: str) -> None:
        self.failures.labels(pool, kind).inc()
        if kind == "clone":
            self.clone_failures.labels(pool).inc()
        elif kind == "boot_timeout":
            self._increment(f"errors.markedasfailed.{pool}")

    def sized(self, pool: str, size: int, rate: float | None, achieved: float | None) -> None:
        """What the pool's size is, and what its demand says (Note [Sizing
        from demand])."""
        self.pool_size.labels(pool).set(size)
        if rate is not None:
            self.demand_rate.labels(pool).set(rate)
        if achieved is not None:
            self.hit_rate.labels(pool).set(achieved)

    def lease(self, pool: str, manager: str, held: bool) -> None:
        self.leases.labels(pool, manager).set(1 if held else 0)

    def booted(self, pool: str, seconds: float) -> None:
        self.boots.labels(pool).observe(seconds)
        self._timing(f"time_to_ready_state.{pool}", seconds)

    def destroyed(self, pool: str, seconds: float) -> None:
        self.destroys.labels(pool).observe(seconds)
        self._send(f"destroy.{pool}", seconds)
        self._timing(f"destroy.{pool}", seconds)

    def vsphere_call(self, method: str, outcome: str, seconds: float) -> None:
        self.vsphere_calls.labels(method, outcome).observe(seconds)

    def redis_error(self) -> None:
        self.redis_errors.inc()

    def pool_counts(self, pool: str, counts: Mapping[str, int]) -> None:
        for state in STATES:
            self.pool_vms.labels(pool, state).set(counts.get(state, 0))
        self._send(f"ready.{pool}", counts.get("ready", 0))
        self._send(f"running.{pool}", counts.get("running", 0))
        for sink in self._sinks:
            sink.gauge(f"ready.{pool}", counts.get("ready", 0))
            sink.gauge(f"running.{pool}", counts.get("running", 0))

    def _send(self, name: str, value: float) -> None:
        if self._graphite is not None:
            self._graphite.send(name, value)

    def _increment(self, label: str) -> None:
        for sink in self._sinks:
            sink.increment(label)

    def _timing(self, label: str, seconds: float) -> None:
        for sink in self._sinks:
            sink.timing(label, seconds)
