"""
One pool's maintainer: each cycle observes the pool (Redis, vSphere, the
readiness probes), plans once (:func:`vmpoolerd.manager.pool_plan.plan`, pure),
and executes the plan.  Its :class:`~vmpoolerd.manager.loop.Loop` runs the
cycles (Note [Maintainer loop]).

Note [Work in the background]: clones and destroys take minutes on a real
vCenter.  A cycle starts them and goes on; the names with work in flight
are remembered so that no VM is cloned or destroyed twice, and the end of
such work wakes the maintainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Coroutine, assert_never

from twisted.internet.defer import (
    CancelledError, Deferred, DeferredSemaphore, ensureDeferred,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import failures
from . import pool_plan as planning
from ..config import Config, PoolConfig
from ..names import new_hostname
from ..store.errors import LeaseLost
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..timefmt import format_time, local_date
from ..vsphere.types import Vsphere
from ..store.overrides import Live
from .doubt import Doubts
from ..live import drain_reason, live_pool
from .sizing import PoolSizer
from .failures import VmFailure
from .leases import RESERVATION
from .loop import Loop, finish
from .pool_plan import Observation
from .probe import Probe, probe_all, tcp_probe

log = Logger()


# Note [Failing clones]: failures in a row before a pause, its first
# length and its longest (seconds).
PAUSE_AFTER = 3
MIN_PAUSE = 30.0
MAX_PAUSE = 600.0


def _why(e: Exception) -> str:
    """An error as a reason: its message, else its type's name."""
    return str(e) or type(e).__name__



class Maintainer:
    """
    Keeps one pool full.

    With an ``identity`` (its manager's), every write of a cycle is
    checked against the pool's lease being that manager's (Note [Pool
    leases] in leases.py), and ``lost`` is told the pool's name when one
    finds it is not; the writes that end work in the background (a clone,
    a destroy) are the daemon's own and go unchecked.
    """

    def __init__(self, pool: PoolConfig, config: Config, store: PoolStore, provider: Vsphere,
                 clock: IReactorTime, probe: Probe | None = None,
                 metrics: Metrics | None = None,
                 slots: DeferredSemaphore | None = None,
                 doubts: Doubts | None = None, identity: str | None = None,
                 lost: Callable[[str], None] | None = None) -> None:
        self.pool = pool
        self._linked = config.linked_clones(pool.name)
        self._doubts = doubts
        self._slots = slots or DeferredSemaphore(config.service.task_limit)
        self._metrics = metrics or Metrics()
        self._service = config.service
        self._expire = int(config.redis.data_ttl_hours * 3600)
        self._store = store
        self._cycle = store if identity is None else store.holding(pool.name, identity)
        self._lost = lost
        self._provider = provider
        self._clock = clock
        self._probe = probe or (lambda host, port: tcp_probe(clock, host, port))
        self._loop = Loop(clock, self._step, self._service.check_loop_delay_min,
                          self._service.check_loop_delay_max,
                          self._service.check_loop_delay_decay)
        self._sizer = PoolSizer(pool, self._cycle, clock)
        self._live = Live()  # what Redis said of the pool at the last look
        self.live = pool  # the pool with its live size, template, clone target
        self._busy: set[str] = set()  # VMs with a clone or destroy in flight
        self._work: set[Deferred[None]] = set()
        self.booting = False
        self.failing = False
        self.holding = 0  # discovered VMs held (Note [Held discovered VMs])
        # Note [Failing clones]: clones failed in a row, the last reason,
        # and until when no clone is started.
        self.clone_failures = 0
        self.clone_failure = ""
        self.paused_until = 0.0

    # --- the loop --------------------------------------------------------------

    @property
    def cycles(self) -> int:
        """Cycles run (failed ones included)."""
        return self._loop.steps

    def start(self) -> None:
        """Run cycles (again, after :meth:`halt`)."""
        self._loop.start()

    def halt(self) -> None:
        """No new cycle (the lease is gone); the one running and the work
        in flight go on, and fail to write if they need the lease."""
        self._loop.stop()

    @property
    def in_flight(self) -> frozenset[str]:
        """The VMs with a clone or a destroy in flight."""
        return frozenset(self._busy)

    def wake(self) -> None:
        """Run a cycle now (or right after the one running); not while failing."""
        if not self.failing:
            self._loop.wake()

    async def stop(self, grace: float) -> None:
        """
        No new cycle.  The running cycle, and the clones and destroys in
        flight, get ``grace`` seconds to finish; what is still running then
        is left to the provider's own stop (and, should it not end, to the
        next start's reconciliation: see Note [Pending before cloning]).
        """
        if not await finish(self._loop, self._work, grace, self._clock):
            log.warn("[!] [{pool}] stopping with vSphere work still running",
                     pool=self.pool.name)

    async def _step(self) -> bool:
        """One cycle for the loop: whether it was quiet (a failure is)."""
        try:
            actions = await self.cycle()
        except CancelledError:
            return True  # stopping: Redis or vSphere calls given up
        except LeaseLost:
            log.info("[{pool}] lease lost: maintained by another manager now",
                     pool=self.pool.name)
            self.halt()
            if self._lost is not None:
                self._lost(self.pool.name)
            return True
        except Exception:
            self.failing = True
            log.failure("[!] [{pool}] maintenance cycle failed", pool=self.pool.name)
            return True
        # While clones boot, look often: they become ready unannounced.
        return planning.is_quiet(actions) and not self.booting

    # --- one cycle ---------------------------------------------------------------

    async def cycle(self) -> list[planning.Action]:
        """Observe, plan, execute; the actions taken."""
        observation = await self.observe()
        if observation is None:
            return []
        actions = planning.plan(observation)
        held = planning.held(observation)
        if held and self.holding != len(held):
            log.warn("[!] [{pool}] holding {count} discovered VMs, not destroying them: "
                     "Redis's state is in doubt ({doubt})", pool=self.pool.name,
                     count=len(held), doubt=observation.doubt)
        self.holding = len(held)
        for action in actions:
            await self._execute(action, observation.now)
        if self._doubts is not None:
            await self._doubts.report(self.pool.name, observation.doubt, len(held))
        self.booting = any(vm.state == planning.PENDING for vm in observation.tracked)
        self._metrics.pool_counts(self.pool.name,
                                  planning.states_after(observation.tracked, actions))
        return actions

    async def observe(self) -> Observation | None:
        """The pool as Redis, vSphere and the probes show it; None when the
        inventory could not be read (Note [Failed inventory]): the cycle
        then does nothing, and the loop backs off."""
        pool = self.pool
        # Note [Clones around the inventory]: vSphere is read first and Redis
        # second, so that a clone recorded and made between the two looks is
        # not taken for a stranger (discovered).  The clones in flight are
        # read on both sides of the inventory, so that one that ends between
        # the two looks, absent from the inventory but no longer in flight,
        # is not taken for a lost clone.
        doubt = None if self._doubts is None else await self._doubts.check()
        busy_before = set(self._busy)
        cloning_before = await self._store.cloning(self._clock.seconds())
        try:
            vms = await self._provider.inventory(pool.folder)
        except Exception as e:
            self.failing = True
            self.booting = False  # back off: the pending VMs cannot be seen
            log.warn("[!] [{pool}] inventory of {folder!r} failed: {error}",
                     pool=pool.name, folder=pool.folder, error=str(e) or type(e).__name__)
            return None
        inventory = {vm.name: vm for vm in vms}
        try:
            now = self._clock.seconds()
            tracked, cloning, empty, ondemand = await self._cycle.pool_state(pool.name, now)
        except Exception:
            self.failing = True
            raise
        self.failing = False
        await self._look_live()
        # What to probe depends on everything but the probes' results.
        unprobed = Observation(
            pool=self.live, service=self._service, now=now, tracked=tracked, inventory=inventory,
            reachable=frozenset(), unknown=frozenset(), failed_probes={},
            cloning=cloning | cloning_before | busy_before | self._busy, ondemand=ondemand,
            clone_slots=0 if now < self.paused_until else
            max(self._service.task_limit - len(cloning), 0), empty=empty,
            doubt=doubt, drain=drain_reason(pool, self._live))
        results = await probe_all(planning.to_probe(unprobed), inventory, self._service,
                                  self._probe)
        return dataclasses.replace(
            unprobed, reachable=frozenset(n for n, ok in results.items() if ok is True),
            unknown=frozenset(n for n, ok in results.items() if ok is None),
            failed_probes={n: ok for n, ok in results.items() if isinstance(ok, VmFailure)})

    async def _look_live(self) -> None:
        """The pool's live config (Note [Live pool config] in
        config_set.lua), its demand looked at first (sizing.py); on a Redis
        error, the last known."""
        try:
            await self._sizer.update()
        except (CancelledError, LeaseLost):
            raise  # stopping, or no longer this manager's pool
        except Exception:
            log.failure("[!] [{pool}] demand not looked at", pool=self.pool.name)
        self._live = (await self._store.live([self.pool.name]))[self.pool.name]
        self.live = live_pool(self.pool, self._live)
        sizing = self._sizer.sizing
        self._metrics.sized(self.pool.name, self.live.size,
                            sizing.rate if sizing is not None else None, self._sizer.achieved)



    async def _execute(self, action: planning.Action, now: float) -> None:
        pool, store, stamp = self.pool.name, self._cycle, format_time(now)
        match action:
            case planning.Ready(name, boot_seconds):
                day = local_date(now).isoformat()
                if await store.mark_ready(pool, name, stamp, day, boot_seconds):
                    self._metrics.booted(pool, boot_seconds)
                    self._sizer.replenished(boot_seconds)
                    log.info("[>] [{pool}] '{vm}' moved to 'ready' queue after {seconds:.2f} s",
                             pool=pool, vm=name, seconds=boot_seconds)
            case planning.Check(name):
                await store.checked(pool, name, stamp)
            case planning.Complete(name, state, reason, failure):
                if await store.complete(pool, name, state):
                    log.info("[-] [{pool}] '{vm}' moved from '{state}' to 'completed': "
                             "{reason}", pool=pool, vm=name, state=state, reason=reason)
                    if failure is not None:
                        await self._failed(name, failure.kind, failure.reason, store)
            case planning.Discover(name):
                await store.discover(pool, name)
                log.info("[?] [{pool}] '{vm}' found in the folder, unknown to Redis: "
                         "discovered", pool=pool, vm=name)
            case planning.Undiscover(name):
                if await store.undiscover(pool, name):
                    log.info("[?] [{pool}] '{vm}' was in 'discovered' and another set: "
                             "left 'discovered'", pool=pool, vm=name)
            case planning.Forget(name, state):
                if await store.forget(pool, name, state, stamp, self._expire):
                    log.info("[-] [{pool}] '{vm}' is gone from vSphere: forgotten",
                             pool=pool, vm=name)
            case planning.Destroy(name, state):
                if name not in self._busy:
                    await store.hold()
                    self._background(name, self._slots.run(
                        lambda: ensureDeferred(self._destroy(name, state))))
            case planning.Clone(count):
                await self._clone(count, now)
            case planning.MarkEmpty(empty):
                await store.set_empty(pool, empty)
            case planning.Drain(reason):
                drained = await store.drain(pool, self._live.cloned_template,
                                            self.live.template, self._live.reset)
                # A new template, or a reset, deserves new clones at once.
                await self._resume_clones(store)
                if drained >= 0:
                    log.info("[-] [{pool}] {count} ready and pending VMs moved to "
                             "'completed': {reason}", pool=pool, count=drained, reason=reason)
            case _:
                assert_never(action)

    # --- work in the background ----------------------------------------------------

    def _background(self, name: str,
                    work: Coroutine[Any, Any, None] | Deferred[None]) -> None:
        self._busy.add(name)
        d = ensureDeferred(work)
        self._work.add(d)

        def done(result: object) -> None:
            self._busy.discard(name)
            self._work.discard(d)
            if isinstance(result, Failure) and not result.check(CancelledError):
                log.failure("[!] [{pool}] '{vm}' work failed", result,
                            pool=self.pool.name, vm=name)
            self.wake()
        d.addBoth(done)

    async def _clone(self, count: int, now: float) -> None:
        pool, service = self.live, self._service
        names = [new_hostname(service.prefix) for _ in range(count)]
        reserved = await self._cycle.reserve_clones(
            pool.name, names, service.task_limit, pool.size, format_time(now), now,
            RESERVATION)
        for name in reserved:
            self._background(name, self._clone_one(name))

    async def _clone_one(self, name: str) -> None:
        pool = self.live
        ok, seconds = False, 0.0
        try:
            seconds = await self._provider.clone(
                pool.template, pool.folder, pool.datastore, name,
                resource_pool=pool.resource_pool,
                clone_target=pool.clone_target or self._service.clone_target,
                linked=self._linked)
            ok = True
            await self._resume_clones()
            self._metrics.cloned(pool.name, seconds)
            log.info("[+] [{pool}] '{vm}' cloned in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, seconds=seconds)
        except Exception as e:
            await self._failed(name, failures.CLONE, f"clone failed: {_why(e)}")
            await self._clone_failed(f"clone failed: {_why(e)}")
        day = local_date(self._clock.seconds()).isoformat()
        try:
            await self._store.clone_ended(pool.name, name, ok, seconds, day)
        except Exception:
            log.failure("[!] [{pool}] '{vm}' clone end not recorded", pool=pool.name, vm=name)

    async def _clone_failed(self, reason: str) -> None:
        """
        Note [Failing clones]: a pool whose clones keep failing (its
        template missing, its datastore full) stops cloning for a while
        after PAUSE_AFTER failures in a row, twice as long each time up to
        MAX_PAUSE, rather than retrying at full rate; /status and the
        health check say so (the pause is kept in Redis for every daemon
        to show).  A clone that succeeds ends it, and so does a drain (a
        new template, a reset).
        """
        self.clone_failures += 1
        self.clone_failure = reason
        if self.clone_failures < PAUSE_AFTER:
            return
        pause = min(MIN_PAUSE * 2 ** (self.clone_failures - PAUSE_AFTER), MAX_PAUSE)
        now = self._clock.seconds()
        self.paused_until = now + pause
        log.warn("[!] [{pool}] {count} clones failed in a row: no clone for {pause:g} s "
                 "({reason})", pool=self.pool.name, count=self.clone_failures, pause=pause,
                 reason=reason)
        try:
            await self._store.pause_clones(self.pool.name, self.clone_failures, reason,
                                           format_time(self.paused_until), pause)
        except Exception:
            log.failure("[!] [{pool}] clone pause not recorded", pool=self.pool.name)

    async def _resume_clones(self, store: PoolStore | None = None) -> None:
        """Clones work again (Note [Failing clones]); said through
        ``store`` (a cycle's, checked against the lease) or the daemon's."""
        paused, self.paused_until, self.clone_failures = self.paused_until, 0.0, 0
        if paused:
            try:
                await (store or self._store).resume_clones(self.pool.name)
            except LeaseLost:
                raise
            except Exception:
                log.failure("[!] [{pool}] clone pause not cleared", pool=self.pool.name)

    async def _failed(self, name: str, kind: str, reason: str,
                      store: PoolStore | None = None) -> None:
        """Log and record why ``name`` failed (Note [Failures explained]),
        through ``store`` (a cycle's) or the daemon's."""
        pool = self.pool.name
        log.warn("[!] [{pool}] '{vm}' {reason}", pool=pool, vm=name, reason=reason)
        self._metrics.failed(pool, kind)
        try:
            await (store or self._store).failed(pool, name, kind, reason,
                                                format_time(self._clock.seconds()),
                                                failures.RECENT)
        except LeaseLost:
            raise
        except Exception:
            log.failure("[!] [{pool}] '{vm}' failure not recorded", pool=pool, vm=name)

    async def _destroy(self, name: str, state: str) -> None:
        pool = self.pool
        started = self._clock.seconds()
        try:
            await self._provider.destroy(pool.folder, name)
        except Exception as e:
            await self._failed(name, failures.DESTROY, f"destroy failed: {_why(e)}")
            return
        seconds = self._clock.seconds() - started
        self._metrics.destroyed(pool.name, seconds)
        stamp = format_time(self._clock.seconds())
        if await self._store.record_destroyed(pool.name, name, state, stamp, self._expire):
            log.info("[-] [{pool}] '{vm}' destroyed in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, seconds=seconds)
