"""
The on-demand worker: provisions the queued on-demand requests (Note
[On-demand requests] in store/lua/ondemand_create.lua) beside the pool
maintainers.  Each cycle it claims what it can of the queue, observes each
claimed request (Redis, its pools' folders, the readiness probes), plans
(ondemand_plan.py, pure) and executes.  Clones run in the background, as
the maintainers' do (Note [Work in the background] in maintainer.py),
within task_limit and ondemand_clone_limit for every daemon together.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any, Mapping

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config import Config, PoolConfig
from ..live import live_pool
from ..names import new_hostname
from ..store.ondemand import FAILED, PENDING, OdRequest
from ..store.pools import PoolStore
from ..telemetry.metrics import Metrics
from ..timefmt import format_time, local_date
from ..vsphere.types import VmState, Vsphere
from . import failures
from . import ondemand_plan as od
from . import plan as planning
from .leases import RESERVATION
from .loop import Loop, finish
from .probe import Probe, probe_all, tcp_probe

log = Logger()

# Requests looked at per cycle, oldest first.
AT_ONCE = 50
# Seconds a claim holds without renewal; cycles renew it far sooner.
CLAIM_SECONDS = 30.0


class OndemandWorker:
    def __init__(self, config: Config, store: PoolStore, vspheres: Mapping[str, Vsphere],
                 clock: IReactorTime, probe: Probe | None = None,
                 metrics: Metrics | None = None, owner: str | None = None) -> None:
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
        self._busy: dict[str, str] = {}  # clones in flight: name -> request id
        self._claimed: set[str] = set()
        self._work: set[Deferred[None]] = set()

    def start(self) -> None:
        self._loop.start()

    @property
    def in_flight(self) -> frozenset[str]:
        """The VMs with a clone in flight."""
        return frozenset(self._busy)

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self, grace: float) -> None:
        if not await finish(self._loop, self._work, grace, self._clock):
            log.warn("[!] [ondemand] stopping with clones still running")
        # The next manager need not wait for the claims to run out.
        try:
            await self._store.release_claims(sorted(self._claimed), self.owner)
        except Exception:
            log.warn("[!] [ondemand] claims not released: they run out by themselves")

    async def cycle(self) -> bool:
        """One cycle: whether it was quiet (nothing to do, nothing in flight)."""
        acted = False
        try:
            for request_id in await self._store.queued(AT_ONCE):
                if await self._store.claim(request_id, self.owner, CLAIM_SECONDS):
                    self._claimed.add(request_id)
                    acted = await self._one(request_id) or acted
        except Exception:
            log.failure("[!] [ondemand] cycle failed")
            return True
        return not acted and not self._busy

    async def _one(self, request_id: str) -> bool:
        """Observe, plan and act on one claimed request; whether it acted
        or has VMs booting (they become ready unannounced: the worker
        then looks again soon, as a maintainer does)."""
        request = await self._store.request(request_id)
        if request is None or request.status != PENDING:
            self._claimed.discard(request_id)
            return False
        obs = await self._observe(request)
        if obs is None:
            return False
        actions = od.plan(obs)
        for action in actions:
            await self._execute(request, action)
        return bool(actions) or bool(request.pending)

    async def _observe(self, request: OdRequest) -> od.OdObservation | None:
        pools = sorted({w.pool for w in request.wanted if w.pool in self._config.pool_names})
        # Note [Clones around the inventory] in maintainer.py: the clones in
        # flight are read before the inventory as well as after it, so that
        # one ending between the two looks is not taken for a lost clone.
        busy_before = set(self._busy)
        cloning_before = await self._store.cloning(self._clock.seconds())
        inventory: dict[str, VmState] = {}
        for pool in pools:
            try:
                vms = await self._vspheres[pool].inventory(self._config.pool(pool).folder)
            except Exception as e:
                log.warn("[!] [ondemand] request {id}: inventory of {pool} failed: {error}",
                         id=request.id, pool=pool, error=str(e) or type(e).__name__)
                return None
            inventory.update((vm.name, vm) for vm in vms)
        now = self._clock.seconds()
        cloning = await self._store.cloning(now)
        obs = od.OdObservation(
            request=request, now=now, ttl=60.0 * self._service.ondemand_request_ttl_minutes,
            timeouts={p: planning.pool_timeout(self._config.pool(p), self._service)
                      for p in pools},
            inventory=inventory,
            cloning=cloning | cloning_before | busy_before | set(self._busy),
            probing=self._service.ready_check_port != 0, reachable=frozenset(),
            failed_probes={})
        results = await probe_all(od.to_probe(obs), inventory, self._service, self._probe)
        return dataclasses.replace(
            obs, reachable=frozenset(n for n, ok in results.items() if ok is True),
            failed_probes={n: ok for n, ok in results.items()
                           if isinstance(ok, failures.VmFailure)})

    async def _execute(self, request: OdRequest, action: od.OdAction) -> None:
        store, stamp = self._store, format_time(self._clock.seconds())
        match action:
            case od.End(reason):
                if await store.end(request.id, FAILED, reason, self._keep) == 1:
                    log.warn("[!] [ondemand] request {id} failed: {reason}", id=request.id,
                             reason=reason)
            case od.VmReady(name, pool):
                if await store.vm_ready(request.id, name, pool, stamp):
                    log.info("[>] [{pool}] '{vm}' ready for on-demand request {id}",
                             pool=pool, vm=name, id=request.id)
            case od.VmFailed(name, pool, failure):
                await self._failed(request.id, name, pool, failure)
            case od.CloneFor(pool, count):
                await self._clone(request.id, pool, count)
            case od.HandOut():
                if await store.hand_out(request.id, stamp, self._keep):
                    log.info("[+] [ondemand] request {id} handed out to {user}",
                             id=request.id, user=request.fields.get("token:user", "anonymous"))

    async def _failed(self, request_id: str, name: str, pool: str,
                      failure: failures.VmFailure) -> None:
        now = format_time(self._clock.seconds())
        if await self._store.vm_failed(request_id, name, pool, now, failure.reason):
            log.warn("[!] [{pool}] '{vm}' of on-demand request {id}: {reason}", pool=pool,
                     vm=name, id=request_id, reason=failure.reason)
            self._metrics.failed(pool, failure.kind)
            await self._store.failed(pool, name, failure.kind, failure.reason, now,
                                     failures.RECENT)

    async def _clone(self, request_id: str, pool_name: str, count: int) -> None:
        service, now = self._service, self._clock.seconds()
        pool = self._config.pool(pool_name)
        names = [new_hostname(service.prefix) for _ in range(count)]
        reserved = await self._store.reserve(
            request_id, pool_name, names, service.task_limit, service.ondemand_clone_limit,
            format_time(now), now, RESERVATION, self.owner)
        if not reserved:
            return
        live = live_pool(pool, (await self._store.live([pool_name]))[pool_name])
        for name in reserved:
            self._busy[name] = request_id
            d = ensureDeferred(self._clone_one(request_id, live, name))
            self._work.add(d)
            d.addBoth(self._done, name, d)

    def _done(self, result: Any, name: str, d: Deferred[None]) -> None:
        self._busy.pop(name, None)
        self._work.discard(d)
        if isinstance(result, Failure):
            log.failure("[!] [ondemand] '{vm}' clone work failed", result, vm=name)
        self.wake()

    async def _clone_one(self, request_id: str, pool: PoolConfig, name: str) -> None:
        ok, seconds = False, 0.0
        try:
            seconds = await self._vspheres[pool.name].clone(
                pool.template, pool.folder, pool.datastore, name,
                resource_pool=pool.resource_pool,
                clone_target=pool.clone_target or self._service.clone_target,
                linked=self._config.linked_clones(pool.name))
            ok = True
            self._metrics.cloned(pool.name, seconds)
            log.info("[+] [{pool}] '{vm}' cloned for on-demand request {id} in {seconds:.2f} s",
                     pool=pool.name, vm=name, id=request_id, seconds=seconds)
        except Exception as e:
            await self._failed(request_id, name, pool.name, failures.VmFailure(
                failures.CLONE, f"clone failed: {str(e) or type(e).__name__}"))
        day = local_date(self._clock.seconds()).isoformat()
        await self._store.clone_ended(pool.name, name, ok, seconds, day)

