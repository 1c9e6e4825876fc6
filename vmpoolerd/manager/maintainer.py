"""
One pool's maintainer: each cycle observes the pool (Redis, vSphere, the
readiness probes), plans once (:func:`vmpoolerd.manager.pool_plan.plan`, pure),
and executes the plan.  Its :class:`~vmpoolerd.manager.loop.Loop` runs the
cycles (Note [Maintainer loop]).

Clones and destroys run in the background (Note [Work in the background]
in clones.py); the clones through the one clone runner the on-demand
worker uses too.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Sequence, assert_never

from twisted.internet.defer import CancelledError, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from . import failures
from . import pool_plan as planning
from ..config import Config, PoolConfig
from ..store.errors import LeaseLost
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..timefmt import format_time, local_date
from ..store.records import TrackedVm
from ..vsphere.types import VmState, Vsphere
from ..store.overrides import Live
from .doubt import Doubts
from ..live import drain_reason, live_pool
from .sizing import PoolSizer
from . import observe
from .clones import Background, ClonePause, CloneRunner, SlotWaiters, record_failure, why
from .failures import VmFailure
from .leases import RESERVATION
from .loop import Loop, finish
from .pool_plan import Observation
from .probe import Probe, tcp_probe

log = Logger()

# What pool_state.lua says of a pool: its VMs, the clones in flight, the
# empty flag, its on-demand VMs.
PoolState = tuple[tuple[TrackedVm, ...], frozenset[str], bool, frozenset[str]]


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
                 lost: Callable[[str], None] | None = None,
                 rng: random.Random | None = None,
                 waiters: SlotWaiters | None = None) -> None:
        # One view of the pool: its file's config with Redis's on top, as
        # of the last look (vmpoolerd/live.py); the two it is made of.
        self.pool = pool
        self._configured = pool
        self._overrides = Live()
        self._linked = config.linked_clones(pool.name)
        self._doubts = doubts
        self._slots = slots or DeferredSemaphore(config.service.task_limit)
        self._metrics = metrics or Metrics()
        self._service = config.service
        self._expire = int(config.redis.data_ttl_hours * 3600)
        # The writes, by what fences them: a cycle's are checked against
        # the pool's lease (with an identity); the background's, ending
        # work that ran (Note [Background writes] in clones.py), and the
        # reads that need no fence, are the daemon's.
        self._cycle_writes = store if identity is None else store.under_lease(pool.name, identity)
        self._background_writes = store
        self._lost = lost
        self._provider = provider
        self._clock = clock
        self._probe = probe or (lambda host, port: tcp_probe(clock, host, port))
        self._loop = Loop(clock, self._step, self._service.check_loop_delay_min,
                          self._service.check_loop_delay_max,
                          self._service.check_loop_delay_decay, rng)
        self._sizer = PoolSizer(pool, self._cycle_writes.demand, clock)
        self._background = Background(pool.name, self.wake)  # clones and destroys
        self._waiters = waiters or SlotWaiters()
        self._clones = CloneRunner(self._service, store, clock, self._metrics, self._background,
                                   self._waiters)
        self._pause = ClonePause(pool.name, store, clock)  # Note [Failing clones]
        self.booting = False
        self.failing = False
        self.holding = 0  # discovered VMs held (Note [Held discovered VMs])
        # The addresses VMware Tools reported at the last look, written
        # when a VM becomes ready (Note [What a 3.x fleet reads]).
        self._ips: dict[str, str] = {}

    @property
    def clone_failures(self) -> int:
        """Clones failed in a row (Note [Failing clones] in clones.py)."""
        return self._pause.failures

    @property
    def paused_until(self) -> float:
        """No clone is started before."""
        return self._pause.until

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
        return self._background.in_flight

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
        if not await finish(self._loop, self._background.work, grace, self._clock):
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
        if planning.short_of_slots(observation, actions):
            self._wait_for_slot(observation.now)
        if self._doubts is not None:
            await self._doubts.report(self.pool.name, observation.doubt, len(held))
        self.booting = any(vm.state == planning.PENDING for vm in observation.tracked)
        self._metrics.pool_counts(self.pool.name,
                                  planning.states_after(observation.tracked, actions))
        return actions

    async def observe(self) -> Observation | None:
        """The pool as Redis, vSphere and the probes show it (Note [Clones
        around the inventory] in observe.py); None when the inventory could
        not be read (Note [Failed inventory]): the cycle then does nothing,
        and the loop backs off."""
        # Neither Redis's generation nor the live config needs vSphere: both
        # are read while the folder is.
        doubting = ensureDeferred(self._doubt())
        live = ensureDeferred(self._look_live())
        try:
            seen = await observe.around_inventory(
                self._background_writes, self._clock, lambda: self._background.in_flight,
                self._inventory, self._pool_state)
            doubt = await doubting
            await live
        except BaseException:
            for d in (doubting, live):
                d.cancel()
                d.addErrback(lambda _: None)
            raise
        if seen is None:
            return None
        self.failing = False
        tracked, cloning, empty, ondemand = seen.redis
        # What to probe depends on everything but the probes' results.
        unprobed = Observation(
            pool=self.pool, service=self._service, now=seen.now, tracked=tracked,
            inventory=seen.inventory, reachable=frozenset(), unknown=frozenset(),
            failed_probes={}, cloning=seen.cloning, ondemand=ondemand,
            clone_slots=0 if seen.now < self.paused_until else
            max(self._service.task_limit - len(cloning), 0), empty=empty,
            doubt=doubt, drain=drain_reason(self._configured, self._overrides))
        probed = await observe.probe(planning.to_probe(unprobed), seen.inventory,
                                     self._service, self._probe)
        return dataclasses.replace(unprobed, reachable=probed.reachable,
                                   unknown=probed.unknown, failed_probes=probed.failed)

    async def _doubt(self) -> str | None:
        return None if self._doubts is None else await self._doubts.check()

    async def _inventory(self) -> dict[str, VmState] | None:
        pool = self.pool
        try:
            vms = await self._provider.inventory(pool.folder)
        except Exception as e:
            self.failing = True
            self.booting = False  # back off: the pending VMs cannot be seen
            log.warn("[!] [{pool}] inventory of {folder!r} failed: {error}",
                     pool=pool.name, folder=pool.folder, error=why(e))
            return None
        self._ips = {vm.name: vm.ip for vm in vms if vm.ip}
        return {vm.name: vm for vm in vms}

    async def _pool_state(self, now: float) -> tuple[frozenset[str], PoolState]:
        try:
            state = await self._cycle_writes.pool_state(self.pool.name, now)
        except Exception:
            self.failing = True
            raise
        return state[1], state

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
        name = self._configured.name
        self._overrides = (await self._background_writes.overrides.live([name]))[name]
        self.pool = live_pool(self._configured, self._overrides)
        sizing = self._sizer.sizing
        self._metrics.sized(name, self.pool.size,
                            sizing.rate if sizing is not None else None, self._sizer.achieved)

    async def _execute(self, action: planning.Action, now: float) -> None:
        pool, store, stamp = self.pool.name, self._cycle_writes, format_time(now)
        match action:
            case planning.Ready(name, boot_seconds):
                day = local_date(now).isoformat()
                if await store.mark_ready(pool, name, stamp, day, boot_seconds,
                                          ip=self._ips.get(name)):
                    self._metrics.booted(pool, boot_seconds)
                    self._sizer.replenished(boot_seconds)
                    log.info("[>] [{pool}] '{vm}' moved to 'ready' queue after {seconds:.2f} s",
                             pool=pool, vm=name, seconds=boot_seconds)
            case planning.Check(name):
                await store.checked(pool, name, stamp)
            case planning.Complete(name, state, reason, failure, unchanged):
                if await store.complete(pool, name, state, unchanged):
                    log.info("[-] [{pool}] '{vm}' moved from '{state}' to 'completed': "
                             "{reason}", pool=pool, vm=name, state=state, reason=reason)
                    if failure is not None:
                        await self._failed(name, failure, store)
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
                if name not in self._background.in_flight:
                    await store.hold()
                    self._background.run(name, self._slots.run(
                        lambda: ensureDeferred(self._destroy(name, state))))
            case planning.Clone(count):
                await self._clone(count, now)
            case planning.MarkEmpty(empty):
                await store.set_empty(pool, empty)
            case planning.Drain(reason):
                drained = await store.overrides.drain(pool, self._overrides.cloned_template,
                                            self.pool.template, self._overrides.reset)
                # A new template, or a reset, deserves new clones at once.
                await self._pause.resume(store)
                if drained >= 0:
                    log.info("[-] [{pool}] {count} ready and pending VMs moved to "
                             "'completed': {reason}", pool=pool, count=drained, reason=reason)
            case _:
                assert_never(action)

    # --- work in the background ----------------------------------------------------

    async def _clone(self, count: int, now: float) -> None:
        pool, service = self.pool, self._service

        async def reserve(names: Sequence[str]) -> list[str]:
            return await self._cycle_writes.reserve_clones(
                pool.name, names, service.task_limit, pool.size, format_time(now), now,
                RESERVATION)

        granted = await self._clones.start(pool, self._provider, self._linked, count, reserve,
                                           self._clone_failed, self._pause,
                                           override=pool.template != self._configured.template)
        if granted < count:  # another daemon took the slots since the look
            self._wait_for_slot(now)

    def _wait_for_slot(self, now: float) -> None:
        """Note [Waiting for a clone slot] in clones.py: woken when one
        frees, the loop parked meanwhile (a paused pool waits for its pause)."""
        if now >= self.paused_until:
            self._waiters.wait(self.pool.name, self.wake)
            self._loop.park()

    async def _clone_failed(self, name: str, failure: VmFailure) -> None:
        await self._failed(name, failure, self._background_writes)

    async def _failed(self, name: str, failure: VmFailure, store: PoolStore) -> None:
        """Log and record why ``name`` failed (Note [Failures explained]),
        through ``store``: a cycle's or the background's."""
        log.warn("[!] [{pool}] '{vm}' {reason}", pool=self.pool.name, vm=name,
                 reason=failure.reason)
        await record_failure(store, self._metrics, self._clock, self.pool.name, name, failure)

    async def _destroy(self, name: str, state: str) -> None:
        pool = self.pool
        started = self._clock.seconds()
        try:
            await self._provider.destroy(pool.folder, name)
        except Exception as e:
            await self._failed(name, VmFailure(failures.DESTROY, f"destroy failed: {why(e)}"),
                               self._background_writes)
            return
        seconds = self._clock.seconds() - started
        self._metrics.destroyed(pool.name, seconds)
        stamp = format_time(self._clock.seconds())
        if await self._background_writes.record_destroyed(pool.name, name, state, stamp,
                                                          self._expire):
            log.info("[-] [{pool}] '{vm}' destroyed in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, seconds=seconds)
