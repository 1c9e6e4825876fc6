"""
The pool manager: one maintainer per pool, each a loop of
gather (Redis, vSphere, TCP probes) -> :func:`vmpoolerd.plan.plan` ->
execute, and a worker for the disk and snapshot requests the API queues.

Note [Maintainer loop]: a maintainer never runs two cycles at once.  After
a cycle in which something happened it runs again after
``check_loop_delay_min`` seconds; after a quiet one the delay grows by
``check_loop_delay_decay`` up to ``check_loop_delay_max``.  A checkout
anywhere (any daemon sharing the Redis) publishes the pool's name on
the checkout channel; the maintainer then runs at once, so that the
replacement clone starts within a round trip or two; but a pool's cycles
start at least ``WAKE_SPACING`` seconds apart, so that a storm of
checkouts costs each pool two cycles a second, not one per checkout (make
bench measures the checkout rate with the manager running).  A cycle that fails
(Redis or vSphere down) is logged and the loop backs off, and checkouts do
not bring it forward until a cycle succeeds again; the loop never dies.

Note [Work in the background]: clones and destroys take minutes on a real
vCenter.  A cycle starts them on the provider's thread pool and goes on;
the names with work in flight are remembered so that no VM is cloned or
destroyed twice, and a clone's end wakes the maintainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable, Coroutine, Protocol

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError, Deferred, DeferredSemaphore, ensureDeferred, gatherResults,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import plan as planning
from ..config import Config, PoolConfig
from ..telemetry.metrics import Metrics
from ..names import new_hostname
from .plan import Observation
from ..store.pools import PoolStore
from .probe import probe_address, tcp_probe
from ..store.connection import subscribe_checkouts
from ..timefmt import format_time, local_date

log = Logger()
WAKE_SPACING = 0.5

Probe = Callable[[str, int], Awaitable[bool]]


class Calls(Protocol):
    """What the manager needs of the provider: a vSphere call by name."""

    def call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


def next_delay(delay: float, quiet: bool, minimum: float, maximum: float,
               decay: float) -> float:
    """The maintainer's next delay: back to ``minimum`` when something happened."""
    return min(delay * decay, maximum) if quiet else minimum


class Maintainer:
    """Keeps one pool full (see Note [Maintainer loop])."""

    def __init__(self, pool: PoolConfig, config: Config, store: PoolStore, provider: Calls,
                 clock: IReactorTime, probe: Probe | None = None,
                 metrics: Metrics | None = None,
                 slots: DeferredSemaphore | None = None) -> None:
        self.pool = pool
        self._slots = slots or DeferredSemaphore(config.service.task_limit)
        self._metrics = metrics or Metrics()
        self._config = config
        self._service = config.service
        self._store = store
        self._provider = provider
        self._clock = clock
        self._probe = probe or (lambda host, port: tcp_probe(clock, host, port))
        self._delay = self._service.check_loop_delay_min
        self._call: IDelayedCall | None = None
        self._running = False
        self._current: Deferred[None] | None = None
        self._again = False
        self._last_start = float("-inf")
        self._stopped = True
        self._busy: set[str] = set()  # VMs with a clone or destroy in flight
        self._work: set[Deferred[None]] = set()
        self.cycles = 0
        self.booting = False
        self.failing = False

    # --- the loop --------------------------------------------------------------

    def start(self) -> None:
        self._stopped = False
        self._schedule(0)

    def wake(self) -> None:
        """Run a cycle now (or right after the one running)."""
        if self._stopped or self.failing:
            return
        self._delay = self._service.check_loop_delay_min
        if self._running:
            self._again = True
        elif self._call is not None:
            soon = self._soonest()
            if self._call.getTime() - self._clock.seconds() > soon:
                self._call.reset(soon)

    def _soonest(self) -> float:
        """Seconds until a cycle may start (see WAKE_SPACING)."""
        return max(0.0, self._last_start + WAKE_SPACING - self._clock.seconds())

    async def stop(self, grace: float) -> None:
        """
        No new cycle.  The running cycle, and the clones and destroys in
        flight, get ``grace`` seconds to finish; what is still running then
        is left to the provider's own stop (and, should it not end, to the
        next start's reconciliation: see Note [Pending before cloning]).
        """
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None
        pending = [d for d in [self._current, *self._work] if d is not None and not d.called]
        if pending:
            wait = gatherResults(pending, consumeErrors=True)
            wait.addTimeout(grace, self._clock)
            try:
                await wait
            except Exception:
                log.warn("[!] [{pool}] stopping with vSphere work still running",
                         pool=self.pool.name)

    def _schedule(self, delay: float) -> None:
        self._call = self._clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        self._running = True
        self._last_start = self._clock.seconds()
        self._current = ensureDeferred(self._guarded_cycle())

    async def _guarded_cycle(self) -> None:
        quiet = True
        try:
            # While clones boot, look often: they become ready unannounced.
            quiet = planning.is_quiet(await self.cycle()) and not self.booting
        except Exception:
            self.failing = True
            log.failure("[!] [{pool}] maintenance cycle failed", pool=self.pool.name)
        self._running = False
        self.cycles += 1
        if self._stopped:
            return
        self._delay = next_delay(self._delay, quiet and not self._again,
                                 self._service.check_loop_delay_min,
                                 self._service.check_loop_delay_max,
                                 self._service.check_loop_delay_decay)
        self._schedule(self._soonest() if self._again else self._delay)
        self._again = False

    # --- one cycle ---------------------------------------------------------------

    async def cycle(self) -> list[planning.Action]:
        """Gather, plan, execute; the actions taken."""
        pool = self.pool
        # Note [Clones around the inventory]: vSphere is read first and Redis
        # second, so that a clone recorded and made between the two looks is
        # not taken for a stranger (discovered).  The clones in flight are
        # read on both sides of the inventory, so that one that ends between
        # the two looks, absent from the inventory but no longer in flight,
        # is not taken for a lost clone.
        busy_before = set(self._busy)
        lease = planning.clone_lease(pool, self._service)
        cloning_before = await self._store.cloning(sorted(busy_before),
                                                   self._clock.seconds() + lease)
        try:
            vms = await self._provider.call("inventory", pool.folder)
        except Exception as e:
            self.failing = True
            self.booting = False  # back off: the pending VMs cannot be seen
            log.warn("[!] [{pool}] inventory of {folder!r} failed: {error}",
                     pool=pool.name, folder=pool.folder, error=str(e) or type(e).__name__)
            return []
        inventory = {vm.name: vm for vm in vms}
        try:
            now = self._clock.seconds()
            tracked, cloning, empty = await self._store.pool_state(
                pool.name, now, sorted(self._busy), now + lease)
        except Exception:
            self.failing = True
            raise
        self.failing = False
        observation = Observation(
            pool=pool, service=self._service, now=now, tracked=tracked, inventory=inventory,
            reachable=frozenset(), cloning=cloning | cloning_before | busy_before | self._busy,
            clone_slots=max(self._service.task_limit - len(cloning), 0), empty=empty)
        observation = dataclasses.replace(
            observation, reachable=await self._reachable(observation, inventory))
        actions = planning.plan(observation)
        for action in actions:
            await self._execute(action, now)
        self.booting = any(vm.state == "pending" for vm in tracked)
        self._metrics.pool_counts(pool.name, planning.states_after(tracked, actions))
        return actions

    async def _reachable(self, observation: Observation, inventory: dict[str, Any]
                         ) -> frozenset[str]:
        names = sorted(planning.to_probe(observation))
        port = self._service.ready_check_port

        async def probe(name: str) -> bool:
            vm = inventory[name]
            address = probe_address(name, self._service.domain, vm.ip,
                                    self._service.ready_check_address)
            return address is not None and await self._probe(address, port)

        results = await gatherResults([ensureDeferred(probe(n)) for n in names])
        return frozenset(n for n, ok in zip(names, results) if ok)

    async def _execute(self, action: planning.Action, now: float) -> None:
        pool, name = self.pool.name, getattr(action, "name", "")
        stamp = format_time(now)
        expire = int(self._config.redis.data_ttl_hours * 3600)
        store = self._store
        if isinstance(action, planning.Ready):
            day = local_date(now).isoformat()
            if await store.move(name, pool, "pending", "ready",
                                fields={"ready": stamp, "check": stamp},
                                history=(f"vmpooler__boot__{day}", f"{pool}:{name}",
                                         f"{action.boot_seconds:.2f}"),
                                lastboot=stamp):
                self._metrics.booted(pool, action.boot_seconds)
                log.info("[>] [{pool}] '{vm}' moved to 'ready' queue after {seconds:.2f} s",
                         pool=pool, vm=name, seconds=action.boot_seconds)
        elif isinstance(action, planning.Check):
            await store.move(name, pool, "ready", "ready", fields={"check": stamp})
        elif isinstance(action, planning.Complete):
            if await store.move(name, pool, action.state, "completed"):
                log.info("[-] [{pool}] '{vm}' moved from '{state}' to 'completed': {reason}",
                         pool=pool, vm=name, state=action.state, reason=action.reason)
        elif isinstance(action, planning.Discover):
            await store.move(name, pool, "", "discovered", fields={"template": pool})
            log.info("[?] [{pool}] '{vm}' found in the folder, unknown to Redis: discovered",
                     pool=pool, vm=name)
        elif isinstance(action, planning.Undiscover):
            if await store.move(name, pool, "discovered", ""):
                log.info("[?] [{pool}] '{vm}' was in 'discovered' and another set: "
                         "left 'discovered'", pool=pool, vm=name)
        elif isinstance(action, planning.Forget):
            if await store.move(name, pool, action.state, "", fields={"destroy": stamp},
                                expire=expire):
                log.info("[-] [{pool}] '{vm}' is gone from vSphere: forgotten",
                         pool=pool, vm=name)
        elif isinstance(action, planning.Destroy):
            if name not in self._busy:
                state = action.state
                self._background(name, self._slots.run(
                    lambda: ensureDeferred(self._destroy(name, state, expire))))
        elif isinstance(action, planning.Clone):
            await self._clone(action.count, now)
        elif isinstance(action, planning.MarkEmpty):
            await store.set_empty(pool, action.empty)

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
        pool, service = self.pool, self._service
        names = [new_hostname(service.prefix) for _ in range(count)]
        reserved = await self._store.reserve_clones(
            pool.name, names, service.task_limit, pool.size, format_time(now), now,
            planning.clone_lease(pool, service))
        for name in reserved:
            self._background(name, self._clone_one(name))

    async def _clone_one(self, name: str) -> None:
        pool = self.pool
        ok, seconds = False, 0.0
        try:
            seconds = await self._provider.call(
                "clone", pool.template, pool.folder, pool.datastore, name,
                resource_pool=pool.resource_pool,
                clone_target=pool.clone_target or self._service.clone_target)
            ok = True
            self._metrics.cloned(pool.name, seconds)
            log.info("[+] [{pool}] '{vm}' cloned in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, seconds=seconds)
        except Exception as e:
            self._metrics.clone_failed(pool.name)
            log.warn("[!] [{pool}] '{vm}' clone failed: {error}",
                     pool=pool.name, vm=name, error=str(e) or type(e).__name__)
        day = local_date(self._clock.seconds()).isoformat()
        try:
            await self._store.clone_ended(pool.name, name, ok, seconds, day)
        except Exception:
            log.failure("[!] [{pool}] '{vm}' clone end not recorded", pool=pool.name, vm=name)

    async def _destroy(self, name: str, state: str, expire: int) -> None:
        pool = self.pool
        started = self._clock.seconds()
        try:
            await self._provider.call("destroy", pool.folder, name)
        except Exception as e:
            log.warn("[!] [{pool}] '{vm}' destroy failed: {error}",
                     pool=pool.name, vm=name, error=str(e) or type(e).__name__)
            return
        seconds = self._clock.seconds() - started
        self._metrics.destroyed(pool.name, seconds)
        stamp = format_time(self._clock.seconds())
        if await self._store.move(name, pool.name, state, "", fields={"destroy": stamp},
                                  expire=expire):
            log.info("[-] [{pool}] '{vm}' destroyed in {seconds:.2f} seconds",
                     pool=pool.name, vm=name, seconds=seconds)


class TaskWorker:
    """Works off the disk and snapshot requests the API queued."""

    KINDS = ("disk", "snapshot", "snapshot-revert")

    def __init__(self, config: Config, store: PoolStore, provider: Calls,
                 clock: IReactorTime, slots: DeferredSemaphore) -> None:
        self._config = config
        self._store = store
        self._provider = provider
        self._clock = clock
        self._slots = slots
        self.stopping = False

    async def run_once(self) -> int:
        """Take the queued requests and do them, until none is left or we stop."""
        done = 0
        for kind in self.KINDS:
            while not self.stopping and (taken := await self._store.pop_task(kind)):
                (host, _, argument), pool_name = taken[0].partition(":"), taken[1]
                if await self._slots.run(
                        lambda: ensureDeferred(self._do(kind, host, argument, pool_name))):
                    done += 1
        return done

    async def _do(self, kind: str, host: str, argument: str, pool_name: str) -> bool:
        if pool_name not in self._config.pool_names:
            log.warn("[!] {kind} request for unknown VM '{vm}' dropped", kind=kind, vm=host)
            return False
        folder = self._config.pool(pool_name).folder
        where = "vSphere"
        try:
            if kind == "disk":
                await self._provider.call("add_disk", folder, host, int(argument))
                where = "Redis, vSphere having done it"
                await self._store.record_disk(host, f"+{int(argument)}gb")
            elif kind == "snapshot":
                await self._provider.call("create_snapshot", folder, host, argument)
                where = "Redis, vSphere having done it"
                await self._store.record_snapshot(
                    host, argument, format_time(self._clock.seconds()))
            else:
                await self._provider.call("revert_snapshot", folder, host, argument)
        except Exception as e:
            log.warn("[!] [{pool}] '{vm}' {kind} {argument} failed in {where}: {error}",
                     pool=pool_name, vm=host, kind=kind, argument=argument, where=where,
                     error=str(e) or type(e).__name__)
            return False
        log.info("[+] [{pool}] '{vm}' {kind} {argument} done", pool=pool_name, vm=host,
                 kind=kind, argument=argument)
        return True


class Manager(Service):
    """All the maintainers, the task worker, and the checkout wake-ups."""

    def __init__(self, config: Config, store: PoolStore, provider: Calls, reactor: Any,
                 probe: Probe | None = None, grace: float = 30.0,
                 metrics: Metrics | None = None) -> None:
        self._config = config
        self._clock = reactor
        self._grace = grace
        # Destroys and disk/snapshot work share task_limit slots (clones
        # have theirs, counted in Redis), so that the provider's threads
        # (2 x task_limit + one per pool) always leave each pool's inventory
        # read one.
        slots = DeferredSemaphore(config.service.task_limit)
        self.maintainers = {p.name: Maintainer(p, config, store, provider, reactor, probe,
                                               metrics, slots)
                            for p in config.pools}
        self.tasks = TaskWorker(config, store, provider, reactor, slots)
        self._subscription: Any = None
        self._task_call: IDelayedCall | None = None
        self._task_run: Deferred[None] | None = None

    def wake(self, pool: str) -> None:
        maintainer = self.maintainers.get(pool)
        if maintainer is not None:
            maintainer.wake()

    def startService(self) -> None:
        super().startService()
        for maintainer in self.maintainers.values():
            maintainer.start()
        self._subscription = subscribe_checkouts(self._config.redis, self._clock, self.wake)
        self._schedule_tasks()

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
        waits = [ensureDeferred(m.stop(self._grace)) for m in self.maintainers.values()]
        if self._task_run is not None:
            task_run = Deferred.fromCoroutine(self._bounded(self._task_run))
            waits.append(task_run)
        await gatherResults(waits, consumeErrors=True)

    async def _bounded(self, work: Deferred[None]) -> None:
        """The disk and snapshot work in progress, given the same grace."""
        work.addTimeout(self._grace, self._clock)
        try:
            await work
        except Exception:
            log.warn("[!] stopping with disk or snapshot work still running")

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return Deferred.fromCoroutine(self._stop())
