"""
Clones, run the same way for a pool's maintainer and for the on-demand
worker: names reserved, the clone run in the background, its end recorded.

Note [Work in the background]: clones and destroys take minutes on a real
vCenter.  A cycle starts them and goes on; the names with work in flight
are remembered (:class:`Background`) so that no VM is cloned or destroyed
twice, and the end of such work wakes its owner.

Note [Background writes]: what ends work in the background (a clone's end,
a failure, a pause) is the daemon's own doing and is written through the
daemon's store, never fenced by a pool's lease: the work ran, whoever holds
the pool now.  Such a write that fails is logged, never raised, so that a
clone's end is recorded even when its failure could not be.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Coroutine, Sequence

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config import PoolConfig, ServiceConfig
from ..names import new_hostname
from ..store.errors import LeaseLost
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..timefmt import format_time, local_date
from ..vsphere.types import Vsphere
from . import failures
from .failures import VmFailure

log = Logger()

# Note [Failing clones]: failures in a row before a pause, its first
# length and its longest (seconds).
PAUSE_AFTER = 3
MIN_PAUSE = 30.0
MAX_PAUSE = 600.0

# Reserves clone names: those it may clone (a store call, fenced or not).
Reserve = Callable[[Sequence[str]], Awaitable[list[str]]]
# Told why a clone failed, once it has: the owner records it.
Failed = Callable[[str, VmFailure], Awaitable[None]]


def why(e: Exception) -> str:
    """An error as a reason: its message, else its type's name."""
    return str(e) or type(e).__name__


class NotATemplate(Exception):
    """A template override names something vSphere does not mark as a template."""


async def must_be_template(provider: Vsphere, template: str) -> None:
    """NotATemplate unless vSphere marks ``template`` (a path) as a template."""
    folder, _, name = template.strip("/").rpartition("/")
    if not any(vm.name == name and vm.template for vm in await provider.inventory(folder)):
        raise NotATemplate(f"the template override {template!r} is not a template in vSphere")


async def record_failure(store: PoolStore, metrics: Metrics, clock: IReactorTime, pool: str,
                         name: str, failure: VmFailure) -> None:
    """Count and record why ``name`` failed (Note [Failures explained]);
    a record not written is logged, unless the lease is lost."""
    metrics.failed(pool, failure.kind)
    try:
        await store.failed(pool, name, failure.kind, failure.reason,
                           format_time(clock.seconds()), failures.RECENT)
    except LeaseLost:
        raise
    except Exception:
        log.failure("[!] [{pool}] '{vm}' failure not recorded", pool=pool, vm=name)


class Background:
    """The work in flight by VM name (Note [Work in the background])."""

    def __init__(self, label: str, wake: Callable[[], None]) -> None:
        self._label = label
        self._wake = wake
        self._names: set[str] = set()
        self.work: set[Deferred[None]] = set()

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._names)

    def run(self, name: str, work: Coroutine[Any, Any, None] | Deferred[None]) -> None:
        self._names.add(name)
        d = ensureDeferred(work)
        self.work.add(d)

        def done(result: object) -> None:
            self._names.discard(name)
            self.work.discard(d)
            if isinstance(result, Failure) and not result.check(CancelledError):
                log.failure("[!] [{label}] '{vm}' work failed", result,
                            label=self._label, vm=name)
            self._wake()
        d.addBoth(done)


class SlotWaiters:
    """
    Note [Waiting for a clone slot]: clones in flight are bounded by
    ``task_limit`` for all pools together.  A pool whose cycle was granted
    fewer clones than it wanted would otherwise wait for its loop, whose
    delay grows while its cycles find nothing to do (up to
    ``check_loop_delay_max``): with a thousand pools and twenty slots, most
    pools would sleep while slots stood free.  So such a pool waits here,
    and each clone that ends (freeing its slot) wakes the pool that has
    waited longest.  Shared by one daemon's maintainers; a pool woken that
    is again granted too few waits again, at the back.  Meanwhile its loop
    is parked (Loop.park): the next step waits ``check_loop_delay_max``
    unless woken, so a thousand waiting pools do not each read their
    folder every few seconds for nothing.  Slots freed by another daemon
    are seen at that step at the latest.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, Callable[[], None]] = {}  # oldest first

    def wait(self, pool: str, wake: Callable[[], None]) -> None:
        self._waiting.setdefault(pool, wake)

    def freed(self) -> None:
        """A slot is free: wake the pool that has waited longest."""
        if self._waiting:
            pool = next(iter(self._waiting))
            self._waiting.pop(pool)()


class ClonePause:
    """
    Note [Failing clones]: a pool whose clones keep failing (its template
    missing, its datastore full) stops cloning for a while after
    PAUSE_AFTER failures in a row, twice as long each time up to
    MAX_PAUSE, rather than retrying at full rate; /status and the health
    check say so (the pause is kept in Redis for every daemon to show).  A
    clone that succeeds ends it, and so does a drain (a new template, a
    reset).
    """

    def __init__(self, pool: str, store: PoolStore, clock: IReactorTime) -> None:
        self._pool = pool
        self._store = store  # the daemon's (Note [Background writes])
        self._clock = clock
        self.failures = 0      # clones failed in a row
        self.until = 0.0       # no clone is started before

    async def failed(self, reason: str) -> None:
        self.failures += 1
        if self.failures < PAUSE_AFTER:
            return
        pause = min(MIN_PAUSE * 2 ** (self.failures - PAUSE_AFTER), MAX_PAUSE)
        self.until = self._clock.seconds() + pause
        log.warn("[!] [{pool}] {count} clones failed in a row: no clone for {pause:g} s "
                 "({reason})", pool=self._pool, count=self.failures, pause=pause,
                 reason=reason)
        try:
            await self._store.pause_clones(self._pool, self.failures, reason,
                                           format_time(self.until), pause)
        except Exception:
            log.failure("[!] [{pool}] clone pause not recorded", pool=self._pool)

    async def resume(self, store: PoolStore) -> None:
        """Clones work again; said through ``store``: the daemon's after a
        clone, a cycle's (fenced: LeaseLost is raised) after a drain."""
        paused, self.until, self.failures = self.until, 0.0, 0
        if paused:
            try:
                await store.resume_clones(self._pool)
            except LeaseLost:
                raise
            except Exception:
                log.failure("[!] [{pool}] clone pause not cleared", pool=self._pool)


class CloneRunner:
    """Reserves, runs and ends clones for one owner (a maintainer, the
    on-demand worker), in its :class:`Background`."""

    def __init__(self, service: ServiceConfig, store: PoolStore, clock: IReactorTime,
                 metrics: Metrics, background: Background,
                 waiters: SlotWaiters | None = None) -> None:
        self._service = service
        self._store = store  # the daemon's (Note [Background writes])
        self._clock = clock
        self._metrics = metrics
        self._background = background
        self._waiters = waiters or SlotWaiters()

    async def start(self, pool: PoolConfig, provider: Vsphere, linked: bool, count: int,
                    reserve: Reserve, failed: Failed, pause: ClonePause | None = None,
                    what: str = "", override: bool = False) -> int:
        """Clone up to ``count`` VMs of ``pool`` (its live config), as many
        as ``reserve`` grants; ``failed`` records a clone's failure, ``pause``
        (a pool's) counts it, ``what`` is said of each in the log.
        ``override``: the template is a live override, cloned only if vSphere
        marks it as a template (Note [Template overrides] in api/config_routes.py).
        How many were granted."""
        names = [new_hostname(self._service.prefix) for _ in range(count)]
        granted = await reserve(names)
        for name in granted:
            self._background.run(name, self._run(pool, provider, linked, name, failed, pause,
                                                 what, override))
        return len(granted)

    async def _run(self, pool: PoolConfig, provider: Vsphere, linked: bool, name: str,
                   failed: Failed, pause: ClonePause | None, what: str,
                   override: bool = False) -> None:
        ok, seconds = False, 0.0
        try:
            if override:
                await must_be_template(provider, pool.template)
            seconds = await provider.clone(
                pool.template, pool.folder, pool.datastore, name,
                resource_pool=pool.resource_pool,
                clone_target=pool.clone_target or self._service.clone_target, linked=linked)
            ok = True
            if pause is not None:
                await pause.resume(self._store)
            self._metrics.cloned(pool.name, seconds)
            log.info("[+] [{pool}] '{vm}' cloned{what} in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, what=what, seconds=seconds)
        except Exception as e:
            reason = f"clone failed: {why(e)}"
            kind = failures.NOT_TEMPLATE if isinstance(e, NotATemplate) else failures.CLONE
            await failed(name, VmFailure(kind, reason))
            if pause is not None:
                await pause.failed(reason)
        day = local_date(self._clock.seconds()).isoformat()
        try:
            await self._store.clone_ended(pool.name, name, ok, seconds, day)
        except Exception:
            log.failure("[!] [{pool}] '{vm}' clone end not recorded", pool=pool.name, vm=name)
        self._waiters.freed()
