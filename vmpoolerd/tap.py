"""
The twistd plugin's options and service tree.

``twistd -n vmpoolerd --config PATH`` reads and checks the configuration
while parsing options, so a bad one stops twistd with the key and the
problem before anything listens.
"""

from __future__ import annotations

import gc
import os
import random
from functools import partial
from typing import Any, Mapping

from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor as default_reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage

from .api.app import VmpoolerApi
from .api.meta import HealthCheck, HealthWarning
from .api.auth import LdapAuthenticator
from .config import Config, ConfigError, VsphereConfig, find_source, load_config
from .config.from_redis import fetch_pools
from .api.dashboard import Dashboard, Sampler
from .telemetry.graphite import GraphiteSender
from .telemetry.logs import FORMATS, LogFile
from .dummy import DummyProvider, readiness
from .manager.doubt import Doubts
from .manager.probe import Probe, tcp_probe
from .manager.service import Manager, provider_threads
from .telemetry.metrics import Metrics, StatsSink
from .telemetry.promstats import Promstats, PromstatsRoutes
from .telemetry.statsd import StatsdSender
from .store.pools import PoolStore
from .vsphere.provider import Provider
from .store.api_store import ApiStore
from .store.dashboard import DashboardStore
from .store.connection import RedisService, connect
from .store.generation import GenerationCheck, GenerationStore, GenerationWatch
from .store.durability import PersistenceCheck, PersistenceStore
from .store.scripts import Scripts
from .vsphere.client import VsphereClient
from .vsphere.types import Vsphere
from .api.site import WebService
from .api.clients import Clients
from .api.ratelimit import RequestLimiter, rate_limits
from .api.throttle import PasswordThrottle
from .store.ratelimit import RateLimitStore
from .store.token_index import TokenIndexBuild

REDIS_TIMEOUT = 3.0
# What a daemon does: serve the API, keep the pools, or both.
ROLES = ("all", "api", "manager")
HEALTH_TIMEOUT = 2.0

log = Logger()


class Options(usage.Options):
    optParameters = [
        ["config", "c", None,
         "The YAML configuration file (default: the YAML text in $VMPOOLER_CONFIG, else the "
         "file $VMPOOLER_CONFIG_FILE, else etc/vmpooler.yaml)."],
        ["log-format", None, "vmpooler",
         "How the :config: logfile is written: vmpooler (lines) or json (JSON lines)."],
        ["role", None, "all",
         "api (the API only: never talks to vSphere), manager (the pools only: its port "
         "serves the health check and metrics) or all."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def postOptions(self) -> None:
        if self["log-format"] not in FORMATS:
            raise usage.UsageError(f"--log-format: must be one of {', '.join(FORMATS)}")
        if self["role"] not in ROLES:
            raise usage.UsageError(f"--role: must be one of {', '.join(ROLES)}")
        source = find_source(self["config"], self.environ)
        try:
            config = load_config(source, self.environ,
                                 partial(fetch_pools, timeout=REDIS_TIMEOUT))
        except ConfigError as e:
            raise usage.UsageError(f"{source.label}: {e}") from None
        self["parsed"] = config




def listen_endpoint(config: Config, reactor: Any) -> IStreamServerEndpoint:
    """``:config: listen`` (any Twisted server endpoint), else ``port`` on
    ``host``."""
    if config.service.listen is not None:
        return serverFromString(reactor, config.service.listen)
    host, port = config.service.host, config.service.port
    if ":" in host:
        return TCP6ServerEndpoint(reactor, port, interface=host)
    return TCP4ServerEndpoint(reactor, port, interface=host)


class OrderedService(MultiService):
    """
    Stops its children one at a time, the last started first (a plain
    MultiService stops them all at once): the API drains before the Redis
    connection it answers from is closed.
    """

    async def _stop(self) -> None:
        for service in reversed(list(self)):
            await maybeDeferred(service.stopService)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())


def vsphere_client(config: VsphereConfig, threads: int) -> VsphereClient:
    """The client of a provider of ``threads`` threads: it keeps a
    connection for each, so that no call waits on a new TLS handshake."""
    return VsphereClient(config.server, config.username, config.password, port=config.port,
                         insecure=config.insecure, datacenter=config.datacenter,
                         pool_size=threads)


def make_providers(config: Config, reactor: Any, metrics: Metrics) -> dict[str, Provider]:
    """
    One provider per vCenter that some pool uses, by its name in
    ``:providers:``: each has its own session and its own bounded thread
    pool, so that a vCenter that hangs holds up only its own pools' calls.
    Their queues and calls running are watched by ``metrics``.
    """
    used = {pool.provider for pool in config.pools}
    providers = {}
    for name, vsphere in config.providers:
        if name in used:
            threads = provider_threads(config, name)
            provider = providers[name] = Provider(
                vsphere_client(vsphere, threads), reactor, metrics=metrics,
                threads=threads, name=f"vmpoolerd-{name}")
            watch_provider(metrics, name, provider)
    return providers


def make_dummies(config: Config, reactor: Any) -> dict[str, DummyProvider]:
    """One in-memory provider per ``dummy`` provider some pool uses (vmpoolerd/dummy.py)."""
    return {name: DummyProvider(name, options, reactor) for name, options in config.dummies}


def readiness_probe(dummies: Mapping[str, DummyProvider], reactor: Any) -> Probe | None:
    """The manager's readiness probe: TCP (None: the manager's own), unless
    some pool is on a dummy provider (Note [Dummy readiness] in dummy.py)."""
    if not dummies:
        return None
    return readiness(list(dummies.values()), partial(tcp_probe, reactor))


def watch_provider(metrics: Metrics, name: str, provider: Provider) -> None:
    metrics.watch_provider(name, lambda: provider.queued, lambda: provider.in_flight)


def provider_health(providers: Mapping[str, Provider | DummyProvider]
                    ) -> dict[str, HealthCheck]:
    """The health check of each vCenter, under its provider's name ("vsphere", ...)."""
    return {name: partial(provider.ping, timeout=HEALTH_TIMEOUT)
            for name, provider in providers.items()}


def pool_vspheres(config: Config, providers: Mapping[str, Provider | DummyProvider]
                  ) -> dict[str, Vsphere]:
    """Each pool's vSphere, by pool name: its provider, in its datacenter."""
    return {pool.name: providers[pool.provider].at(pool.datacenter) for pool in config.pools}


def monitoring(config: Config, reactor: Any, role: str, top: MultiService,
               graphite: GraphiteSender | None) -> tuple[Metrics, Promstats | None]:
    """Our metrics, and 3.x's beside them: statsd (a service of ``top``) and
    its Prometheus table, served at its endpoint by the API."""
    sinks: list[StatsSink] = []
    if config.statsd is not None:
        statsd = StatsdSender(config.statsd, reactor)
        statsd.setServiceParent(top)
        sinks.append(statsd)
    promstats = None
    if config.prometheus is not None:
        if config.prometheus.endpoint == "/metrics":
            log.warn("config: :prometheus:.prometheus_endpoint: /metrics is vmpoolerd's own "
                     "metrics; 3.x's are not served there")
        else:
            promstats = Promstats(config.prometheus, role)
            sinks.append(promstats)
    return Metrics(graphite, sinks), promstats


def make_service(config: Config, reactor: Any = default_reactor,
                 log_format: str = "vmpooler", role: str = "all") -> IService:
    """
    The log file, Graphite and statsd, Redis, the vSphere provider, the pool manager,
    the dashboard's sampler and the API, started in that order and stopped in the reverse one (see
    OrderedService): the API drains, the maintainers finish their cycles,
    vSphere calls get their grace, and Redis closes last.

    ``role`` "api" leaves out the providers and the manager (the daemon
    never talks to vSphere); "manager" leaves out the dashboard's sampler
    and serves only the health check and the metrics.
    """
    managing, serving = role in ("all", "manager"), role in ("all", "api")
    top = OrderedService()
    if config.service.logfile:
        LogFile(config.service.logfile, log_format).setServiceParent(top)
    graphite = None
    if config.graphite is not None:
        graphite = GraphiteSender(config.graphite, reactor)
        graphite.setServiceParent(top)
    metrics, promstats = monitoring(config, reactor, role, top, graphite)
    redis = connect(config.redis, REDIS_TIMEOUT)
    redis_service = RedisService(redis)
    redis_service.setServiceParent(top)
    PersistenceCheck(PersistenceStore(redis, reactor, REDIS_TIMEOUT), reactor) \
        .setServiceParent(top)
    pools = [pool.name for pool in config.pools]
    generation_store = GenerationStore(redis, reactor, REDIS_TIMEOUT)
    generation = GenerationWatch(generation_store, pools)
    GenerationCheck(generation, reactor).setServiceParent(top)
    vspheres = make_providers(config, reactor, metrics) if managing else {}
    for provider in vspheres.values():
        provider.setServiceParent(top)
    dummies = make_dummies(config, reactor) if managing else {}
    providers: dict[str, Provider | DummyProvider] = {**vspheres, **dummies}
    warnings: dict[str, HealthWarning] = {
        "redis": lambda: generation.doubt and f"Redis's state is in doubt: {generation.doubt}"}
    if managing:
        doubts = Doubts(generation, generation_store, pools)
        manager = Manager(config, PoolStore(redis, reactor, REDIS_TIMEOUT, metrics),
                          pool_vspheres(config, providers), reactor, metrics=metrics,
                          doubts=doubts, probe=readiness_probe(dummies, reactor),
                          rng=random.Random())
        manager.setServiceParent(top)
        warnings["pools"] = manager.paused
        warnings["leases"] = manager.leases.trouble
    dashboard_store = DashboardStore(redis, reactor, REDIS_TIMEOUT)
    if serving:
        Sampler(config, dashboard_store, reactor).setServiceParent(top)
    auth = LdapAuthenticator(config.auth, reactor) if config.auth else None
    health = {"redis": Scripts(redis, reactor, HEALTH_TIMEOUT).ping,
              **provider_health(providers)}
    store = ApiStore(redis, reactor, REDIS_TIMEOUT, metrics, generation,
                     sizes={pool.name: pool.size for pool in config.pools})
    redis_service.stores.append(store)
    if serving:  # Note [Token index] in store/lua/preamble/vms.lua
        TokenIndexBuild(store, pools, reactor).setServiceParent(top)
    limits_store = RateLimitStore(redis, reactor, REDIS_TIMEOUT)
    throttle = PasswordThrottle(limits_store, reactor)
    clients = Clients.of(config)
    limiter = RequestLimiter(rate_limits(config), limits_store, reactor, clients) \
        if config.service.rate_limiting_enabled else None
    api = VmpoolerApi(config, store, reactor, auth,
                      metrics=metrics, health=health, throttle=throttle, warnings=warnings,
                      off_reactor=partial(deferToThreadPool, reactor, reactor.getThreadPool()),
                      dashboard=Dashboard(config, dashboard_store, reactor,
                                          store.overrides.live, store.pool_counts).resource(),
                      health_only=not serving, limiter=limiter, clients=clients)
    if promstats is not None:
        PromstatsRoutes(promstats).mount(api.app)
    WebService(listen_endpoint(config, reactor), api.resource(), reactor) \
        .setServiceParent(top)
    log.info("vmpoolerd ({role}) for {site}: {n} pools, Redis at {redis}, auth {auth}",
             role=role, site=config.service.site_name, n=len(config.pools),
             redis=config.redis.where, auth="ldap" if config.auth else "off")
    for warning in config.warnings:
        log.warn("config: {warning}", warning=warning)
    for notice in config.notices:
        log.info("config: {notice}", notice=notice)
    return top


#: new objects between two collections of the youngest generation (Python's default: 700)
YOUNG_COLLECTION = 7000


def makeService(options: Options) -> IService:
    service = make_service(options["parsed"], log_format=options["log-format"],
                           role=options["role"])
    # Note [Frozen start-up objects]: what start-up made lives as long as the
    # process.  Moving it out of the garbage collector's sight keeps full
    # collections short, so that they do not show in the checkout latency
    # (README, "Performance").  And a young collection waits for ten times
    # Python's default of new objects: at the default, one ran every
    # fourteen checkouts, and the requests in flight at that moment,
    # surviving it, went on to cost the older collections ten times as
    # much again (README, "Performance": a few percent of a checkout).
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION)
    return service
