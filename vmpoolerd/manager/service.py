"""
The pool manager: a :class:`~vmpoolerd.manager.maintainer.Maintainer` per
pool, running while the manager holds the pool's lease (Note [Pool
leases] in leases.py), the :class:`~vmpoolerd.manager.tasks.TaskWorker` for the disk and
snapshot requests, the :class:`~vmpoolerd.manager.ondemand.OndemandWorker`
for on-demand requests, and the checkout wake-ups, as one service.
"""

from __future__ import annotations

import random

from typing import Any, Mapping, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.logger import Logger

from ..config import Config
from ..names import public_manager
from ..store import keys
from ..store.connection import subscribe_checkouts
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..vsphere.provider import FOLDER_READS_IN_FLIGHT
from ..vsphere.types import Vsphere
from .doubt import Doubts
from .leases import Leases, manager_id
from .clones import SlotWaiters
from .maintainer import Maintainer, Probe
from .ondemand import OndemandWorker
from .purge import purge, purging
from .tasks import TaskWorker

log = Logger()


class Subscription(Protocol):
    """The checkout wake-ups' subscription (see subscribe_checkouts)."""

    def disconnect(self) -> Deferred[Any]: ...


def provider_threads(config: Config, provider: str) -> int:
    """
    The threads of the provider (vCenter) named ``provider``, from what the
    manager may run on them at once: clones hold up to ``task_limit`` (their
    slots are counted in Redis, for all vCenters together), destroys and disk
    or snapshot work share another ``task_limit`` (the manager's slots), and
    the folder reads of each datacenter it serves take FOLDER_READS_IN_FLIGHT
    (Note [Folder reads together] in vsphere/provider.py), so that pools busy
    cloning can still be looked at.
    """
    datacenters = {pool.datacenter for pool in config.pools if pool.provider == provider}
    return 2 * config.service.task_limit + FOLDER_READS_IN_FLIGHT * len(datacenters)


class Manager(Service):
    """
    All the maintainers, the task worker, and the checkout wake-ups.

    ``provider`` is each pool's vSphere, by pool name (a pool uses its own
    vCenter, see :func:`vmpoolerd.tap.pool_vspheres`), or one for all pools.
    ``identity`` names the manager in the pool leases (default: its host,
    its process and a random part); ``redis_time`` times their end, in
    Redis's real seconds (default: ``reactor``; see Leases).  ``rng``
    spreads the pools' loops (Note [Spread loops] in loop.py; None: exact
    delays, for tests on a fake clock).
    """

    def __init__(self, config: Config, store: PoolStore,
                 provider: Vsphere | Mapping[str, Vsphere],
                 reactor: IReactorTime, probe: Probe | None = None, grace: float = 30.0,
                 metrics: Metrics | None = None, doubts: Doubts | None = None,
                 identity: str | None = None, redis_time: IReactorTime | None = None,
                 rng: random.Random | None = None) -> None:
        self._config = config
        self._store = store
        self._clock = reactor
        self._grace = grace
        self._metrics = metrics or Metrics()
        self.identity = identity or manager_id()
        log.info("manager {identity} (in /status and /metrics: {public})",
                 identity=self.identity, public=public_manager(self.identity))
        vspheres = (provider if isinstance(provider, Mapping)
                    else {p.name: provider for p in config.pools})
        # Destroys and disk/snapshot work share task_limit slots (see
        # provider_threads).
        slots = DeferredSemaphore(config.service.task_limit)
        self.leases = Leases(self.identity, config.pool_names, store.leases, reactor,
                             self._in_flight, self._assigned, redis_time)
        waiters = SlotWaiters()  # Note [Waiting for a clone slot] in clones.py
        self.maintainers = {p.name: Maintainer(p, config, store, vspheres[p.name], reactor,
                                               probe, metrics, slots, doubts,
                                               self.identity, self.leases.lost, rng, waiters)
                            for p in config.pools}
        self.tasks = TaskWorker(config, store, vspheres, reactor, slots)
        self.ondemand = OndemandWorker(config, store, vspheres, reactor, probe, metrics,
                                       waiters=waiters)
        self._vspheres = vspheres
        self._purge: Deferred[None] | None = None
        self._publish: Deferred[None] | None = None
        self._subscription: Subscription | None = None
        self._task_call: IDelayedCall | None = None
        self._task_run: Deferred[None] | None = None

    def paused(self) -> str | None:
        """The pools whose clones are paused, failing (Note [Failing
        clones] in clones.py), for the health check, which anyone can read:
        no reason (Note [Public failures] in failures.py); None: none."""
        now = self._clock.seconds()
        paused = [f"{name}: {m.clone_failures} clones failed in a row"
                  for name, m in sorted(self.maintainers.items()) if m.paused_until > now]
        return "; ".join(paused) or None

    def _in_flight(self) -> set[str]:
        """The daemon's clones in flight (and destroys: those have no
        reservation to renew)."""
        names = set(self.ondemand.in_flight)
        for maintainer in self.maintainers.values():
            names |= maintainer.in_flight
        return names

    def _assigned(self, pools: frozenset[str]) -> None:
        """The pools whose leases the manager holds are now ``pools``."""
        for name, maintainer in self.maintainers.items():
            if name in pools and self.running:
                maintainer.start()
            else:
                maintainer.halt()
            self._metrics.lease(name, public_manager(self.identity), name in pools)

    def wake(self, pool: str) -> None:
        if pool == keys.ONDEMAND_WAKEUP:
            self.ondemand.wake()
            return
        maintainer = self.maintainers.get(pool)
        if maintainer is not None:
            maintainer.wake()

    def startService(self) -> None:
        super().startService()
        if purging(self._config):
            # Beside the maintainers: it never touches a pool's folder.
            self._purge = ensureDeferred(purge(self._config, self._vspheres))
            self._purge.addErrback(lambda failure: log.failure("[!] the purge failed", failure))
        self._publish = ensureDeferred(self._publish_pools())
        self.leases.start()
        self.ondemand.start()
        self._subscription = subscribe_checkouts(self._config.redis, IReactorTCP(self._clock),
                                                 self.wake)
        self._schedule_tasks()

    async def _publish_pools(self) -> None:
        """The pools, for 3.x's readers (Note [What a 3.x fleet reads] in
        store/published.py); a failure is logged, and costs nothing else."""
        try:
            dropped = await self._store.published.publish(self._config)
        except Exception:
            log.failure("[!] the pools were not published to Redis for 3.x's readers")
            return
        if dropped:
            log.info("[-] pools no longer configured, no longer published: {pools}",
                     pools=", ".join(sorted(dropped)))

    def _schedule_tasks(self) -> None:
        self._task_call = self._clock.callLater(
            self._config.service.check_loop_delay_min, self._run_tasks)

    def _run_tasks(self) -> None:
        async def run() -> None:
            try:
                await self.tasks.run_once()
            except Exception:
                log.failure("[!] disk and snapshot work failed")
            self._task_run = None
            if self.running:
                self._schedule_tasks()
        self._task_run = ensureDeferred(run())

    async def _stop(self) -> None:
        self.tasks.stopping = True
        if self._task_call is not None and self._task_call.active():
            self._task_call.cancel()
        if self._subscription is not None:
            await self._subscription.disconnect()
        # Another manager may take the pools over while this one's clones
        # and destroys end (their reservations renewed until then).
        await self.leases.release()
        waits = [ensureDeferred(m.stop(self._grace)) for m in self.maintainers.values()]
        waits.append(ensureDeferred(self.ondemand.stop(self._grace)))
        for work, what in ((self._task_run, "disk or snapshot work"), (self._purge, "the purge"),
                           (self._publish, "the pools' publication")):
            if work is not None:
                waits.append(Deferred.fromCoroutine(self._bounded(work, what)))
        await gatherResults(waits, consumeErrors=True)
        self.leases.stop()

    async def _bounded(self, work: Deferred[None], what: str) -> None:
        """Work in progress, given the same grace."""
        work.addTimeout(self._grace, self._clock)
        try:
            await work
        except Exception:
            log.warn("[!] stopping with {what} still running", what=what)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return Deferred.fromCoroutine(self._stop())
