"""
The on-demand worker: provisions the queued on-demand requests (Note
[On-demand requests] in store/lua/ondemand_create.lua) beside the pool
maintainers.  Each cycle it claims what it can of the queue, observes each
claimed request (Redis, its pools' folders, the readiness probes: as a
maintainer observes its pool, observe.py), plans (ondemand_plan.py, pure)
and executes.  Clones run in the background through the maintainers' clone
runner (clones.py), within task_limit and ondemand_clone_limit for every
daemon together.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Mapping, Sequence, assert_never

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..config import Config
from ..live import live_pool
from ..store.errors import LeaseLost
from ..store.ondemand import FAILED, LET_GO, PENDING, OdRequest
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..timefmt import format_time
from ..vsphere.types import VmState, Vsphere
from . import observe
from . import ondemand_plan as od
from . import pool_plan as planning
from .clones import Background, CloneRunner, SlotWaiters, record_failure, why
from .failures import VmFailure
from .leases import RESERVATION
from .loop import Loop, finish
from .probe import Probe, tcp_probe

log = Logger()

# Requests looked at per cycle, oldest first.
AT_ONCE = 50
# Seconds a claim holds without renewal; cycles renew it far sooner.
CLAIM_SECONDS = 30.0


class OndemandWorker:
    def __init__(self, config: Config, store: PoolStore, vspheres: Mapping[str, Vsphere],
                 clock: IReactorTime, probe: Probe | None = None,
                 metrics: Metrics | None = None, owner: str | None = None,
                 waiters: SlotWaiters | None = None) -> None:
        """``waiters``: the pools waiting for a clone slot, woken as its
        clones end (Note [Waiting for a clone slot] in clones.py)."""
        self._config = config
        self._service = config.service
        self._store = store
        self._vspheres = vspheres
        self._clock = clock
        self._probe = probe or (lambda host, port: tcp_probe(clock, host, port))
        self._metrics = metrics or Metrics()
        self.owner = owner or secrets.token_hex(8)
        self._keep = int(config.redis.data_ttl_hours * 3600)
        service = config.service
        self._loop = Loop(clock, self.cycle, service.check_loop_delay_min,
                          min(service.check_loop_delay_max, CLAIM_SECONDS / 3),
                          service.check_loop_delay_decay)
        self._claimed: set[str] = set()
        self._background = Background("ondemand", self.wake)  # clones in flight
        self._clones = CloneRunner(config.service, store, clock, self._metrics,
                                   self._background, waiters)

    def start(self) -> None:
        self._loop.start()

    @property
    def in_flight(self) -> frozenset[str]:
        """The VMs with a clone in flight."""
        return self._background.in_flight

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self, grace: float) -> None:
        if not await finish(self._loop, self._background.work, grace, self._clock):
            log.warn("[!] [ondemand] stopping with clones still running")
        # The next manager need not wait for the claims to run out.
        try:
            await self._store.ondemand.release(sorted(self._claimed), self.owner)
        except Exception:
            log.warn("[!] [ondemand] claims not released: they run out by themselves")

    async def cycle(self) -> bool:
        """One cycle: whether it was quiet (nothing to do, nothing in flight)."""
        acted = False
        try:
            for request_id in await self._store.ondemand.queued(AT_ONCE):
                if await self._store.ondemand.claim(request_id, self.owner, CLAIM_SECONDS,
                                           self._clock.seconds()):
                    self._claimed.add(request_id)
                    acted = await self._fenced(request_id) or acted
        except Exception:
            log.failure("[!] [ondemand] cycle failed")
            return True
        return not acted and not self._background.in_flight

    async def _fenced(self, request_id: str) -> bool:
        """:meth:`_one` with every write fenced by this worker's claim (Note
        [On-demand requests] in store/lua/ondemand_create.lua): once the
        claim has run out (a cycle slowed past it), the request may be
        another manager's, and this one changes nothing of it."""
        try:
            return await self._one(request_id, self._store.claimed(request_id, self.owner))
        except LeaseLost:
            log.warn("[!] [ondemand] request {id}: claim lost, left to another manager",
                     id=request_id)
            self._claimed.discard(request_id)
            return False

    async def _one(self, request_id: str, store: PoolStore) -> bool:
        """Observe, plan and act on one claimed request through ``store``
        (fenced by the claim); whether it acted or has VMs booting (they
        become ready unannounced: the worker then looks again soon, as a
        maintainer does)."""
        request = await self._store.ondemand.request(request_id)
        if request is None or request.status != PENDING:
            # Ended or handed out elsewhere (vmpooler 3.x's API deletes
            # without dequeuing): let go of what was provisioned for it.
            await store.ondemand.end(request_id, LET_GO, "", self._keep)
            self._claimed.discard(request_id)
            return False
        obs = await self._observe(request)
        if obs is None:
            return False
        actions = od.plan(obs)
        for action in actions:
            await self._execute(request, store, action)
        return bool(actions) or bool(request.pending)

    async def _observe(self, request: OdRequest) -> od.OdObservation | None:
        """The request as Redis, its pools' folders and the probes show it
        (Note [Clones around the inventory] in observe.py); None when an
        inventory could not be read."""
        pools = sorted({w.pool for w in request.wanted if w.pool in self._config.pool_names})

        async def inventory() -> dict[str, VmState] | None:
            seen: dict[str, VmState] = {}
            for pool in pools:
                try:
                    vms = await self._vspheres[pool].inventory(self._config.pool(pool).folder)
                except Exception as e:
                    log.warn("[!] [ondemand] request {id}: inventory of {pool} failed: {error}",
                             id=request.id, pool=pool, error=why(e))
                    return None
                seen.update((vm.name, vm) for vm in vms)
            return seen

        async def cloning(now: float) -> tuple[frozenset[str], None]:
            return await self._store.cloning(now), None

        seen = await observe.around_inventory(self._store, self._clock,
                                              lambda: self._background.in_flight,
                                              inventory, cloning)
        if seen is None:
            return None
        obs = od.OdObservation(
            request=request, now=seen.now,
            ttl=60.0 * self._service.ondemand_request_ttl_minutes,
            timeouts={p: planning.pool_timeout(self._config.pool(p), self._service)
                      for p in pools},
            inventory=seen.inventory, cloning=seen.cloning,
            probing=self._service.ready_check_port != 0, reachable=frozenset(),
            failed_probes={})
        probed = await observe.probe(od.to_probe(obs), seen.inventory, self._service,
                                     self._probe)
        return dataclasses.replace(obs, reachable=probed.reachable, failed_probes=probed.failed)

    async def _execute(self, request: OdRequest, store: PoolStore,
                       action: od.OdAction) -> None:
        stamp = format_time(self._clock.seconds())
        match action:
            case od.End(reason):
                if await store.ondemand.end(request.id, FAILED, reason, self._keep) == 1:
                    log.warn("[!] [ondemand] request {id} failed: {reason}", id=request.id,
                             reason=reason)
            case od.VmReady(name, pool):
                if await store.ondemand.vm_ready(request.id, name, pool, stamp):
                    log.info("[>] [{pool}] '{vm}' ready for on-demand request {id}",
                             pool=pool, vm=name, id=request.id)
            case od.VmFailed(name, pool, failure):
                await self._failed(store, request.id, name, pool, failure)
            case od.CloneFor(alias, pool, count):
                await self._clone(store, request.id, alias, pool, count)
            case od.HandOut():
                if await store.ondemand.hand_out(request.id, stamp, self._keep):
                    log.info("[+] [ondemand] request {id} handed out to {user}",
                             id=request.id, user=request.fields.get("token:user", "anonymous"))
            case _:
                assert_never(action)

    async def _failed(self, store: PoolStore, request_id: str, name: str, pool: str,
                      failure: VmFailure) -> None:
        """Fail ``name`` in its request (through ``store``, fenced by the
        claim) and, if it was still there, record why as a pool's failures
        are (clones.record_failure)."""
        now = self._clock.seconds()
        if await store.ondemand.vm_failed(request_id, name, pool, format_time(now),
                                          failure.reason, now):
            log.warn("[!] [{pool}] '{vm}' of on-demand request {id}: {reason}", pool=pool,
                     vm=name, id=request_id, reason=failure.reason)
            await record_failure(self._store, self._metrics, self._clock, pool, name, failure)

    async def _clone(self, store: PoolStore, request_id: str, alias: str, pool_name: str,
                     count: int) -> None:
        service = self._service

        async def reserve(names: Sequence[str]) -> list[str]:
            now = self._clock.seconds()
            return await store.ondemand.reserve(
                request_id, alias, pool_name, names, service.task_limit,
                service.ondemand_clone_limit, format_time(now), now, RESERVATION)

        async def failed(name: str, failure: VmFailure) -> None:
            try:
                await self._failed(store, request_id, name, pool_name, failure)
            except LeaseLost:
                log.warn("[!] [ondemand] '{vm}' failed after the claim on {id} was lost: "
                         "left to its next manager", vm=name, id=request_id)
            except Exception:
                log.failure("[!] [ondemand] '{vm}' failure not recorded", vm=name)

        configured = self._config.pool(pool_name)
        live = live_pool(configured, (await self._store.overrides.live([pool_name]))[pool_name])
        await self._clones.start(live, self._vspheres[pool_name],
                                 self._config.linked_clones(pool_name), count, reserve, failed,
                                 what=f" for on-demand request {request_id}",
                                 override=live.template != configured.template)
