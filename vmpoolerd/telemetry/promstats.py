"""
vmpooler 3.x's Prometheus metrics (``:prometheus:``), beside vmpoolerd's
own ``/metrics``: 3.x's metric names, labels and buckets, served at
``prometheus_endpoint`` (default ``/prometheus``).

Note [3.x's metric table]: 3.x names a metric by a dotted label
(``clone.<pool>``, ``checkout.empty.<pool>``), as statsd and Graphite get
it; its Prometheus side registers a fixed table and reads each label
against it: the first part names the metric, the next one its suffix
where it has suffixes (``vmpooler_checkout_empty``), and the rest its
label values (all of the rest for a metric with one label, so that a
dotted host name stays whole; else one part each, from the end).  Every
metric also has ``vmpooler_instance`` (``:prometheus: prefix``), and the
names start with ``prometheus_prefix``.  A daemon registers the metrics of
its role (3.x's ``api`` or ``manager``; both for ``all``), so that a
dashboard finds each name even before its first sample.

Names are written as 3.x's client writes them: a counter without
``_total``, a histogram with ``_bucket``, ``_sum`` and ``_count``.  A label
3.x would not know is dropped (and logged once), as 3.x logs and drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from ..config import PrometheusConfig

log = Logger()

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
API, MANAGER = "api", "manager"

CLONE_BUCKETS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 180.0, 240.0, 300.0, 600.0)
READY_BUCKETS = (30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 500.0, 800.0, 1200.0, 1600.0)
REDIS_BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 18.0, 23.0)


@dataclass(frozen=True)
class Spec:
    """One entry of 3.x's table (Note [3.x's metric table])."""

    kind: str
    role: str
    help: str
    labels: tuple[str, ...]
    suffixes: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


def _c(role: str, help: str, *labels: str, suffixes: tuple[str, ...] = ()) -> Spec:
    return Spec(COUNTER, role, help, labels, suffixes)


def _h(buckets: tuple[float, ...], help: str, *labels: str) -> Spec:
    return Spec(HISTOGRAM, MANAGER, help, labels, buckets=buckets)


#: 3.x's table (``lib/vmpooler/metrics/promstats.rb``): names, kinds,
#: roles, labels, suffixes and buckets are 3.x's; the help texts are ours.
TABLE: dict[str, Spec] = {
    "errors": _c(MANAGER, "VMs that failed, by kind", "template_name",
                 suffixes=("markedasfailed", "duplicatehostname", "staledns")),
    "user": _c(API, "VMs used, by user and operation", "user", "operation", "poolname"),
    "usage_litmus": _c(API, "VMs used by Litmus jobs", "user", "operation", "poolname"),
    "usage_jenkins_instance": _c(API, "VMs used by Jenkins instances", "jenkins_instance",
                                 "value_stream", "operation", "poolname"),
    "usage_branch_project": _c(API, "VMs used, by branch and project", "branch", "project",
                               "operation", "poolname"),
    "usage_job_component": _c(API, "VMs used, by job and component", "job_name",
                              "component_to_test", "operation", "poolname"),
    "checkout": _c(API, "Checkouts, by outcome", "poolname",
                   suffixes=("nonresponsive", "empty", "success", "invalid")),
    "delete": _c(API, "VMs given back, by outcome", suffixes=("success", "failed")),
    "ondemandrequest_generate": _c(API, "On-demand requests made",
                                   suffixes=("duplicaterequests", "success")),
    "ondemandrequest_fail": _c(API, "On-demand requests refused", "poolname",
                               suffixes=("toomanyrequests", "invalid")),
    "config": _c(API, "Config API requests refused", "poolname", suffixes=("invalid",)),
    "poolreset": _c(API, "Pool resets refused", "poolname", suffixes=("invalid",)),
    "connect": _c(MANAGER, "Connections to vSphere, by outcome", suffixes=("open", "fail")),
    "migrate_from": _c(MANAGER, "VMs migrated away from a host", "host_name"),
    "migrate_to": _c(MANAGER, "VMs migrated to a host", "host_name"),
    "http_requests_vm_total": _c(API, "Requests under /vm, by method, path and operation",
                                 "method", "subpath", "operation"),
    "ready": Spec(GAUGE, MANAGER, "Ready VMs", ("poolname",)),
    "running": Spec(GAUGE, MANAGER, "Running VMs", ("poolname",)),
    "connection_available": Spec(GAUGE, MANAGER, "Redis connections available",
                                 ("type", "provider")),
    "time_to_ready_state": _h(READY_BUCKETS, "From a clone's start to its VM ready, in seconds",
                              "poolname"),
    "migrate": _h(CLONE_BUCKETS, "Migration durations, in seconds", "poolname"),
    "clone": _h(CLONE_BUCKETS, "Clone durations, in seconds", "poolname"),
    "destroy": _h(CLONE_BUCKETS, "Destroy durations, in seconds", "poolname"),
    "connection_waited": _h(REDIS_BUCKETS, "Waits for a Redis connection, in seconds",
                            "type", "provider"),
}

ROLES = {"all": (API, MANAGER), "api": (API,), "manager": (MANAGER,)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


class _Metric:
    def __init__(self, name: str, spec: Spec, help: str) -> None:
        self.name, self.spec, self.help = name, spec, help
        self.values: dict[tuple[str, ...], float] = {}  # counters and gauges
        self.observed: dict[tuple[str, ...], list[float]] = {}  # histograms: buckets, sum, count

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        buckets = self.spec.buckets
        counts = self.observed.setdefault(labels, [0.0] * (len(buckets) + 3))
        for i, bound in enumerate(buckets):
            if value <= bound:
                counts[i] += 1
        counts[-3] += 1  # +Inf
        counts[-2] += value
        counts[-1] += 1

    def lines(self, instance: str) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.spec.kind}"]
        names = (*self.spec.labels, "vmpooler_instance")
        for values, value in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(zip(names, (*values, instance)))} "
                       f"{_number(value)}")
        for values, counts in sorted(self.observed.items()):
            pairs = list(zip(names, (*values, instance)))
            bounds = [_number(b) for b in self.spec.buckets] + ["+Inf"]
            for bound, count in zip(bounds, counts):
                out.append(f"{self.name}_bucket{_labels([*pairs, ('le', bound)])} "
                           f"{_number(count)}")
            out.append(f"{self.name}_sum{_labels(pairs)} {_number(counts[-2])}")
            out.append(f"{self.name}_count{_labels(pairs)} {_number(counts[-1])}")
        return out


class Promstats:
    """3.x's metric table for one daemon's ``role`` ("all", "api" or "manager"),
    fed with 3.x's dotted labels (``increment``, ``gauge``, ``timing``: the
    interface :class:`~vmpoolerd.telemetry.statsd.StatsdSender` has too)."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, config: PrometheusConfig, role: str) -> None:
        self.endpoint = config.endpoint
        self._instance = config.prefix
        self._prefix = config.prometheus_prefix
        self._metrics: dict[str, _Metric] = {}
        self._unknown: set[str] = set()
        for key, spec in TABLE.items():
            if spec.role not in ROLES[role]:
                continue
            for suffix in spec.suffixes or ("",):
                name = f"{self._prefix}_{key}" + (f"_{suffix}" if suffix else "")
                self._metrics[name] = _Metric(name, spec, spec.help + (
                    f" ({suffix})" if suffix else ""))

    @property
    def names(self) -> list[str]:
        """The metrics registered, by name."""
        return sorted(self._metrics)

    def _find(self, label: str, kind: str) -> tuple[_Metric, tuple[str, ...]] | None:
        parts = label.split(".")
        spec = TABLE.get(parts[0])
        rest = parts[1:]
        name = f"{self._prefix}_{parts[0]}"
        if spec is not None and spec.suffixes:
            name += f"_{rest.pop(0)}" if rest else ""
        metric = self._metrics.get(name)
        if metric is None or metric.spec.kind != kind:
            if label not in self._unknown:
                self._unknown.add(label)
                log.warn("[!] 3.x's Prometheus table has no {kind} for {label!r}: dropped",
                         kind=kind, label=label)
            return None
        wanted = len(metric.spec.labels)
        if wanted == 1:
            values: tuple[str, ...] = (".".join(rest),)
        elif wanted == 0:
            values = ()
        else:
            values = tuple(([""] * wanted + rest)[-wanted:])
        return metric, values

    def increment(self, label: str) -> None:
        found = self._find(label, COUNTER)
        if found is not None:
            metric, values = found
            metric.values[values] = metric.values.get(values, 0.0) + 1

    def gauge(self, label: str, value: float) -> None:
        found = self._find(label, GAUGE)
        if found is not None:
            metric, values = found
            metric.values[values] = float(int(value))  # 3.x keeps whole numbers

    def timing(self, label: str, seconds: float) -> None:
        found = self._find(label, HISTOGRAM)
        if found is not None:
            metric, values = found
            metric.observe(values, seconds)

    def render(self) -> bytes:
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines += self._metrics[name].lines(self._instance)
        return ("\n".join(lines) + "\n").encode()


class PromstatsRoutes:
    """The endpoint, on the API's app (mounted by the wiring, vmpoolerd/tap.py)."""

    def __init__(self, stats: Promstats) -> None:
        self._stats = stats

    def mount(self, app: Klein) -> None:
        app.route(self._stats.endpoint, methods=["GET"],
                  endpoint=self.render.__qualname__)(self.render)

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", self._stats.content_type.encode())
        return self._stats.render()
