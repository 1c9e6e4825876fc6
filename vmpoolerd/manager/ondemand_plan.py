"""
One on-demand request's next steps (Note [On-demand requests] in
store/lua/ondemand_create.lua): pure, from what was observed of it.

A request past ``ondemand_request_ttl``, or whose VMs failed MAX_FAILURES
times, ends (its VMs are destroyed).  Otherwise each pending VM is judged
as a pool's is (Note [Judging a pending VM] in pending_plan.py): it
becomes ready, or fails (the reason is kept for the request's message), or
is waited for; what is missing is cloned, entry by entry (alias and
pool); and once every VM asked for is ready (or was handed out by vmpooler
3.x, Note [On-demand records] in store/lua/preamble/ondemand.lua) and none
is pending, the request is handed out whole.  What is the request's own is
here: its TTL, its failures, its counts and the hand-out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, assert_never

from ..store.ondemand import PENDING, OdRequest, OdVm
from ..vsphere.types import VmState
from .failures import VmFailure
from .pending_plan import Booted, Failed, Pending, judge, looks_booted

# A request fails once this many of its VMs have (clones retried so far).
MAX_FAILURES = 3


@dataclass(frozen=True)
class OdObservation:
    request: OdRequest
    now: float
    ttl: float                        # seconds: ondemand_request_ttl
    timeouts: Mapping[str, float]     # seconds for a VM to be ready, by pool
    inventory: Mapping[str, VmState]  # the request's pools' folders, by VM name
    cloning: frozenset[str]           # clones in flight (any daemon)
    probing: bool                     # readiness takes a TCP probe
    reachable: frozenset[str]         # probed and open
    failed_probes: Mapping[str, VmFailure]


@dataclass(frozen=True)
class End:
    """The request fails: its VMs are destroyed, ``reason`` is its message."""
    reason: str


@dataclass(frozen=True)
class VmReady:
    name: str
    pool: str


@dataclass(frozen=True)
class VmFailed:
    name: str
    pool: str
    failure: VmFailure


@dataclass(frozen=True)
class CloneFor:
    alias: str
    pool: str
    count: int


@dataclass(frozen=True)
class HandOut:
    """Every VM asked for is ready: to the requester, all at once."""


OdAction = End | VmReady | VmFailed | CloneFor | HandOut


def to_probe(obs: OdObservation) -> frozenset[str]:
    """The pending VMs that look booted, to probe before planning."""
    if not obs.probing:
        return frozenset()
    return frozenset(vm.name for vm in obs.request.pending
                     if looks_booted(obs.inventory.get(vm.name)))


def _judge(obs: OdObservation, vm: OdVm) -> Booted | Failed | None:
    return judge(Pending(vm.name, vm.clone_time, obs.inventory.get(vm.name),
                         vm.name in obs.cloning, not obs.probing or vm.name in obs.reachable,
                         obs.failed_probes.get(vm.name)),
                 obs.now, obs.timeouts.get(vm.pool, 0.0))


def plan(obs: OdObservation) -> list[OdAction]:
    request = obs.request
    if request.status != PENDING:
        return []
    if request.created is not None and obs.now - request.created > obs.ttl:
        return [End(f"not ready within {obs.ttl / 60:g} minutes (ondemand_request_ttl); "
                    + (f"the last failure: {request.message}" if request.message
                       else "its VMs were still being made"))]
    if request.failures >= MAX_FAILURES:
        return [End(f"{request.failures} of its VMs failed; the last: {request.message}")]
    actions: list[OdAction] = []
    # By (alias, pool): VMs handed out (by vmpooler 3.x, one by one), ready.
    ready = Counter((vm.alias, vm.pool) for vm in request.ready + request.handed)
    pending: Counter[tuple[str, str]] = Counter()
    for vm in sorted(request.pending, key=lambda v: v.name):
        verdict = _judge(obs, vm)
        match verdict:
            case Booted():
                actions.append(VmReady(vm.name, vm.pool))
                ready[vm.alias, vm.pool] += 1
            case Failed(_, failure):
                actions.append(VmFailed(vm.name, vm.pool, failure))
            case None:
                pending[vm.alias, vm.pool] += 1
            case _:
                assert_never(verdict)
    wanted: Counter[tuple[str, str]] = Counter()
    for entry in request.wanted:
        wanted[entry.alias, entry.pool] += entry.count
    missing = {key: wanted[key] - ready[key] - pending[key] for key in sorted(wanted)}
    if all(wanted[key] <= ready[key] for key in wanted):
        if not pending:
            actions.append(HandOut())
        return actions
    actions.extend(CloneFor(alias, pool, n) for (alias, pool), n in missing.items() if n > 0)
    return actions
