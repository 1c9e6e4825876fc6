"""
Pool maintenance, planned: what was observed in, the actions to take out.

Everything here is pure: no I/O, no reactor, no clock (``now`` comes in
with the observation).  The maintainer gathers an :class:`Observation`
(Redis, the pool folder's inventory, the readiness probes of
:func:`to_probe`), calls :func:`plan`, and hands the actions to the
executor, which carries each out as one atomic change in Redis (plus the
vSphere call for :class:`Destroy` and :class:`Clone`).

Note [vmpooler's state machine]: a VM of a pool is in exactly one of the
sets ``pending``, ``ready``, ``running``, ``completed`` and ``discovered``
(vmpooler's own layout).  Each cycle, every tracked VM is judged on its own, by the
function for its state, against the inventory of the pool folder:

- pending: judged as an on-demand request's pending VMs are
  (Note [Judging a pending VM] in pending_plan.py): booted ->
  :class:`Ready`; failed -> completed with its reason ("timeout", "clone
  lost", "powered off"), a lost clone without a failure record (Note [A
  pool's lost clone]); else nothing.
- ready: gone from vSphere -> :class:`Forget`; powered off -> completed;
  past ``ready_ttl`` since it became ready -> completed ("ready_ttl");
  due its periodic check (never checked, or ``vm_checktime`` minutes
  since the last) -> completed on a foreign hostname (Note [A foreign
  hostname]) or a failed probe, else :class:`Check`.  Not due: nothing.
- running: gone from vSphere -> :class:`Forget`; past its lifetime since
  checkout -> completed ("lifetime").
- completed, discovered: still in vSphere -> :class:`Destroy`, else
  :class:`Forget` (someone else destroyed it; it is only recorded); with
  work in flight, nothing (Note [Doomed VMs with work in flight]).  But
  a discovered VM that is also pending, ready or running (vmpooler's
  inventory check could leave such a pair in a Redis it hands over) ->
  :class:`Undiscover`: it leaves discovered only, and is judged by its
  other set; counts take it there.
- A VM in the folder that no set names, is not a template and has no
  clone task in flight -> :class:`Discover`; it is destroyed on a later
  cycle, as any discovered VM.

Note [Doomed VMs with work in flight]: a completed VM that this daemon is
destroying is gone from vSphere before the destroy's end is recorded; a
cycle between the two would take it for a VM someone else destroyed, and
record it so (no destroy time, a misleading log).  A completed VM whose
clone task is still in flight (a pending VM that timed out) may not be in
vSphere yet, and would be forgotten, then found as a stranger once its
clone ends.  So a doomed VM with work in flight is left to that work's
end, and judged at the next cycle after it.

Boundaries: ``timeout``, ``ready_ttl`` and lifetimes expire strictly
after their length (at exactly ``timeout`` minutes a pending VM still
waits); a check is due at exactly ``vm_checktime`` minutes.  A field that
is not known (``clone_time``, ``ready_since``, ``checkout`` None) never
expires anything.  A state that is none of the five is left alone.

Note [Failed inventory]: when the inventory could not be read
(``inventory is None``) the plan is empty: with no picture of vSphere, a
VM missing from it cannot be told from a VM that could not be seen, so
nothing is completed, forgotten, destroyed or cloned on missing data.
The next cycle tries again.

Note [Discovery and clones in flight]: the pending entry is written
before a clone starts, so a VM in the folder is normally tracked.  But
the Redis read and the inventory read are not one snapshot: if Redis is
read first, a clone recorded and created in between shows in the folder
untracked, and discovering it would destroy a good clone.  The gatherer
must therefore read the inventory *before* Redis (then every VM it saw
was recorded before the Redis read, in some set).  As a second guard,
names in ``cloning`` are never discovered; that only helps for clones
still known to be in flight when ``cloning`` was read.

Note [Refill and the empty flag]: the pool's count is taken *after* this
plan's transitions: ``ready + pending``, where a pending VM made ready
still counts (as ready), and a VM completed or forgotten no longer does.
Below ``size``, the plan clones the difference, capped by
``clone_slots`` (what is left of the global ``task_limit``).  The empty
flag follows the ready count after the plan: set when it is 0, cleared
when it is not; the action is only emitted when the flag must change.

Note [Action order]: transitions come first, grouped by the tracked
state in the order pending, ready, running, completed, discovered, then
the discoveries of untracked VMs; within a group, by name.
:class:`Clone` and :class:`MarkEmpty` come last, in that order.  The same
observation always gives the same list.

Note [Held discovered VMs]: a discovered VM is destroyed only when Redis
is trusted (``doubt`` None; Note [Redis generations] in
vmpoolerd/store/generation.py): a Redis that lost data or went back in
time takes every VM it forgot for a stranger, checked-out ones included.
While in doubt, discovered VMs still in the folder are held (no action),
and :func:`held` names them.  Trusted or not, at most
``MAX_DISCOVERED_DESTROYS`` discovered VMs are destroyed per cycle (by
name); the rest wait for the next cycles, so that a mistake costs a few
VMs, not a folder.

Note [A foreign hostname]: a ready VM due its check whose hostname, as
VMware Tools report it, is another name than its own is completed
("hostname mismatch", a HOSTNAME failure), and the refill clones its
replacement, as vmpooler 3.x does.  Not checked: before
``HOSTNAME_GRACE`` seconds since it became ready (strictly more are
needed: a guest that was just probed often has not reported its hostname
yet); when Tools report none (restarting, busy, or a template that never
sets it); and in a pool where ``checks_hostname`` is false (its
``check_hostname_for_mismatch``, else ``:config:
check_ready_vm_hostname_for_mismatch``).  A VM whose ready time is not
known is checked.  A hostname that is not checked is no reason to wait:
the VM goes on to its probe.  A *pending* VM's hostname never matters
(Note [Judging a pending VM] in pending_plan.py).

Note [Unknown probes]: a probe that fails on this host (no descriptors,
no memory, no ephemeral port) says nothing of the VM.  Such a name is in
``unknown``, not ``reachable``: a pending VM waits (as if not yet
reachable), and a ready VM due its check is neither completed nor marked
checked, so that the check is taken again next cycle.  A daemon under
pressure does not destroy good VMs.

Note [What is probed]: :func:`to_probe` names exactly the VMs whose plan
depends on ``reachable``: pending VMs that look booted (powered on), and
ready VMs that reach their periodic check's probe (in the inventory,
powered on, within ``ready_ttl``, due, no foreign hostname: Note [A
foreign hostname]).  Nothing else is worth a
TCP connection, and with ``ready_check_port`` 0 nothing is probed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, assert_never

from ..config import PoolConfig, ServiceConfig
from ..config.records import checks_hostname
from ..store.records import TrackedVm
from ..vsphere.types import VmState
from . import failures
from .failures import VmFailure
from .pending_plan import LOST, Booted, Failed, Pending, judge, looks_booted

MAX_DISCOVERED_DESTROYS = 3  # per pool per cycle (Note [Held discovered VMs])
MAX_SHRINK = 3  # ready VMs destroyed per cycle when the pool's size falls
HOSTNAME_GRACE = 60.0  # seconds ready before a hostname counts (Note [A foreign hostname])
PENDING = "pending"
READY = "ready"
RUNNING = "running"
COMPLETED = "completed"
DISCOVERED = "discovered"
STATES = (PENDING, READY, RUNNING, COMPLETED, DISCOVERED)


# --- what was observed -----------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """
    One cycle's picture of a pool.  No field has a default: a gatherer
    that forgets one should fail, not plan on a guess.
    """

    pool: PoolConfig
    service: ServiceConfig
    now: float
    tracked: tuple[TrackedVm, ...]
    # The pool folder by VM name; None: the inventory failed.
    inventory: Mapping[str, VmState] | None
    # Names whose TCP readiness probe succeeded this cycle.
    reachable: frozenset[str]
    # Names whose probe could not say (a local error: Note [Unknown probes]).
    unknown: frozenset[str]
    # Why the probe failed, for names probed and neither reachable nor
    # unknown (Note [Failures explained] in failures.py).
    failed_probes: Mapping[str, VmFailure]
    # Names with work in flight: a clone task (any daemon's), or this
    # daemon's destroy (Note [Doomed VMs with work in flight]).
    cloning: frozenset[str]
    # The pool's VMs that on-demand requests are provisioning: neither
    # counted nor discovered (Note [On-demand VMs] in ondemand_create.lua).
    ondemand: frozenset[str]
    # Clones this pool may start now (what is left of task_limit).
    clone_slots: int
    # Whether the pool's empty flag is set in Redis.
    empty: bool
    # Why Redis's state is in doubt; None: trusted (Note [Held discovered VMs]).
    doubt: str | None
    # Why the pool's ready and pending VMs are to be replaced (a new
    # template, a reset: Note [Draining once] in pool_drain.lua); None: not.
    drain: str | None


# --- actions ---------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """pending -> ready; ``boot_seconds`` goes into the boot history."""

    name: str
    boot_seconds: float


@dataclass(frozen=True)
class Check:
    """A ready VM passed its periodic check: record the time."""

    name: str


@dataclass(frozen=True)
class Complete:
    """``state`` -> completed, to be destroyed; ``reason`` is for the log,
    ``failure`` (None: no failure, e.g. a lifetime ended) for the record."""

    name: str
    state: str
    reason: str
    failure: VmFailure | None = None
    # A lifetime's end: the "checkout" and "lifetime" judged, which must be
    # unchanged when the move is made (Note [Lifetimes re-checked] in
    # store/lua/move.lua).
    unchanged: tuple[str, str] | None = None


@dataclass(frozen=True)
class Discover:
    """A VM in the folder that Redis does not know -> discovered."""

    name: str


@dataclass(frozen=True)
class Destroy:
    """A completed or discovered VM still in vSphere: destroy it, then record."""

    name: str
    state: str


@dataclass(frozen=True)
class Undiscover:
    """A discovered VM also in a live set: it leaves discovered, nothing else."""

    name: str


@dataclass(frozen=True)
class Forget:
    """A tracked VM gone from vSphere: drop it from its set, record it destroyed."""

    name: str
    state: str


@dataclass(frozen=True)
class Clone:
    """Start this many clones."""

    count: int


@dataclass(frozen=True)
class MarkEmpty:
    """Set (True) or clear (False) the pool's empty flag."""

    empty: bool


@dataclass(frozen=True)
class Drain:
    """Every ready and pending VM -> completed, to be replaced."""

    reason: str


Action = (Ready | Check | Complete | Discover | Undiscover | Destroy | Forget | Clone
          | MarkEmpty | Drain)


# --- the pool's settings, in seconds ----------------------------------------


def pool_timeout(pool: PoolConfig, service: ServiceConfig) -> float:
    """Seconds a clone of ``pool`` may take to become ready."""
    return 60.0 * (pool.timeout_minutes or service.timeout_minutes)


def timeout_seconds(obs: Observation) -> float:
    return pool_timeout(obs.pool, obs.service)


def ready_ttl_seconds(obs: Observation) -> float | None:
    minutes = obs.pool.ready_ttl_minutes or obs.service.ready_ttl_minutes
    return None if minutes is None else 60.0 * minutes


def checktime_seconds(obs: Observation) -> float:
    return 60.0 * obs.service.vm_checktime_minutes


def lifetime_seconds(obs: Observation, vm: TrackedVm) -> float:
    hours = vm.lifetime_hours
    return 3600.0 * (obs.service.vm_lifetime_hours if hours is None else hours)


def probing(obs: Observation) -> bool:
    """Whether readiness takes a TCP probe (``ready_check_port`` is not 0)."""
    return obs.service.ready_check_port != 0


# --- facts about one VM ------------------------------------------------------


def _seen(obs: Observation, name: str) -> VmState | None:
    return obs.inventory.get(name) if obs.inventory is not None else None


def _reachable(obs: Observation, name: str) -> bool:
    return not probing(obs) or name in obs.reachable


def _expired(now: float, since: float | None, length: float | None) -> bool:
    """Strictly more than ``length`` seconds since ``since``; never if unknown."""
    return since is not None and length is not None and now - since > length


def _check_due(obs: Observation, vm: TrackedVm) -> bool:
    return vm.last_check is None or obs.now - vm.last_check >= checktime_seconds(obs)


def _foreign_hostname(obs: Observation, vm: TrackedVm, state: VmState) -> str | None:
    """The hostname that is not ``vm``'s own and counts (Note [A foreign
    hostname]); None: none, or not checked."""
    hostname = state.hostname
    if (not hostname or hostname == vm.name or not checks_hostname(obs.pool, obs.service)
            or (vm.ready_since is not None and obs.now - vm.ready_since <= HOSTNAME_GRACE)):
        return None
    return hostname


def mismatch(hostname: str) -> VmFailure:
    return VmFailure(failures.HOSTNAME, f"its hostname is {hostname!r}, not its name")


def _ready_reaches_probe(obs: Observation, vm: TrackedVm) -> bool:
    """
    Whether :func:`_plan_ready` gets as far as the probe: every earlier
    test passed, no foreign hostname (see Note [What is probed]).
    """
    state = _seen(obs, vm.name)
    return (state is not None and state.powered_on
            and not _expired(obs.now, vm.ready_since, ready_ttl_seconds(obs))
            and _check_due(obs, vm)
            and _foreign_hostname(obs, vm, state) is None)


# --- one function per state --------------------------------------------------


def _plan_pending(obs: Observation, vm: TrackedVm) -> Action | None:
    """
    Note [A pool's lost clone]: a pool's pending VM lost (no clone in
    flight, not in vSphere) is completed without a failure record, as it
    always was: a clone that failed was recorded by its runner and left
    pending then (clone_end.lua).  A request's lost VM is recorded, since
    its failures count (Note [On-demand requests]).
    """
    state = _seen(obs, vm.name)
    probed = probing(obs) and vm.name not in obs.unknown
    verdict = judge(Pending(vm.name, vm.clone_time, state, vm.name in obs.cloning,
                            _reachable(obs, vm.name),
                            _probe_failure(obs, vm.name) if probed else None),
                    obs.now, timeout_seconds(obs))
    match verdict:
        case Booted(boot_seconds):
            return Ready(vm.name, boot_seconds)
        case Failed(reason, failure):
            return Complete(vm.name, PENDING, reason, None if reason == LOST else failure)
        case None:
            return None
        case _:
            assert_never(verdict)


def _plan_ready(obs: Observation, vm: TrackedVm) -> Action | None:
    state = _seen(obs, vm.name)
    if state is None:
        return Forget(vm.name, READY)
    if not state.powered_on:
        return Complete(vm.name, READY, "powered off")
    if _expired(obs.now, vm.ready_since, ready_ttl_seconds(obs)):
        return Complete(vm.name, READY, "ready_ttl")
    if not _check_due(obs, vm):
        return None
    foreign = _foreign_hostname(obs, vm, state)
    if foreign is not None:
        return Complete(vm.name, READY, "hostname mismatch", mismatch(foreign))
    if probing(obs) and vm.name in obs.unknown:
        return None  # Note [Unknown probes]: due again next cycle
    if not _reachable(obs, vm.name):
        return Complete(vm.name, READY, "unreachable", _probe_failure(obs, vm.name))
    return Check(vm.name)


def _probe_failure(obs: Observation, name: str) -> VmFailure:
    return obs.failed_probes.get(name) or VmFailure(
        failures.UNREACHABLE, f"port {obs.service.ready_check_port} could not be reached")


def _plan_running(obs: Observation, vm: TrackedVm) -> Action | None:
    if _seen(obs, vm.name) is None:
        return Forget(vm.name, RUNNING)
    if _expired(obs.now, vm.checkout, lifetime_seconds(obs, vm)):
        return Complete(vm.name, RUNNING, "lifetime", unchanged=vm.lifetime_fields)
    return None


def _plan_doomed(obs: Observation, vm: TrackedVm) -> Action | None:
    """completed and discovered VMs alike."""
    if vm.name in obs.cloning:
        return None  # Note [Doomed VMs with work in flight]
    if _seen(obs, vm.name) is None:
        return Forget(vm.name, vm.state)
    return Destroy(vm.name, vm.state)


_BY_STATE: Mapping[str, Callable[[Observation, TrackedVm], Action | None]] = {
    PENDING: _plan_pending,
    READY: _plan_ready,
    RUNNING: _plan_running,
    COMPLETED: _plan_doomed,
    DISCOVERED: _plan_doomed,
}


def _strangers(obs: Observation, inventory: Mapping[str, VmState]) -> list[str]:
    """VMs in the folder that no set names, by name (Note [Discovery and
    clones in flight])."""
    tracked = {vm.name for vm in obs.tracked}
    return [name for name in sorted(inventory)
            if name not in tracked and not inventory[name].template
            and name not in obs.cloning and name not in obs.ondemand]


def _discoveries(obs: Observation, inventory: Mapping[str, VmState]) -> list[Action]:
    return [Discover(name) for name in _strangers(obs, inventory)]


# --- the public functions ----------------------------------------------------


def states_after(tracked: Sequence[TrackedVm], actions: Sequence[Action]) -> Counter[str]:
    """
    How many VMs each set holds once ``actions`` are carried out: a VM
    being destroyed stays in its set until it is gone; clones are pending.
    """
    state: dict[str, str] = {}
    for vm in tracked:  # a VM in a live set too is counted there
        if vm.state == DISCOVERED:
            state.setdefault(vm.name, DISCOVERED)
        else:
            state[vm.name] = vm.state
    for action in actions:
        if isinstance(action, Ready):
            state[action.name] = READY
        elif isinstance(action, Complete):
            state[action.name] = COMPLETED
        elif isinstance(action, Discover):
            state[action.name] = DISCOVERED
        elif isinstance(action, Forget):
            state.pop(action.name, None)
    counts = Counter(state.values())
    counts[PENDING] += sum(a.count for a in actions if isinstance(a, Clone))
    return counts


def to_probe(obs: Observation) -> frozenset[str]:
    """The VMs to TCP-probe before planning (Note [What is probed])."""
    if obs.inventory is None or not probing(obs):
        return frozenset()
    names = set()
    for vm in obs.tracked:
        if vm.state == PENDING and looks_booted(_seen(obs, vm.name)):
            names.add(vm.name)
        elif vm.state == READY and _ready_reaches_probe(obs, vm):
            names.add(vm.name)
    return frozenset(names)


def held(obs: Observation) -> frozenset[str]:
    """The VMs the doubt keeps from being destroyed: discovered ones still
    in the folder, and those about to be discovered."""
    if obs.inventory is None or obs.doubt is None:
        return frozenset()
    live = {vm.name for vm in obs.tracked if vm.state in (PENDING, READY, RUNNING)}
    kept = {vm.name for vm in obs.tracked if vm.state == DISCOVERED
            and vm.name not in live and vm.name in obs.inventory}
    return frozenset(kept.union(_strangers(obs, obs.inventory)))


def plan(obs: Observation) -> list[Action]:
    """The actions that bring the pool one cycle on (the Notes above)."""
    if obs.inventory is None:
        return []
    if obs.drain is not None:
        # The next cycle, at once, destroys what this one drained and refills.
        return [Drain(obs.drain)]
    actions: list[Action] = []
    live = {vm.name for vm in obs.tracked if vm.state in (PENDING, READY, RUNNING)}
    kept = held(obs)
    discovered_destroys = 0
    for state in STATES:
        for vm in sorted((v for v in obs.tracked if v.state == state),
                         key=lambda v: v.name):
            if state == DISCOVERED and vm.name in live:
                action: Action | None = Undiscover(vm.name)
            elif vm.name in kept:
                action = None
            else:
                action = _BY_STATE[state](obs, vm)
            if isinstance(action, Destroy) and state == DISCOVERED:
                discovered_destroys += 1
                if discovered_destroys > MAX_DISCOVERED_DESTROYS:
                    action = None
            if action is not None:
                actions.append(action)
    actions.extend(_discoveries(obs, obs.inventory))

    actions.extend(_shrink(obs, actions))
    after = states_after(obs.tracked, actions)
    ready = after[READY]
    clones = min(obs.pool.size - ready - after[PENDING], obs.clone_slots)
    if clones > 0:
        actions.append(Clone(clones))
    if ready == 0 and not obs.empty:
        actions.append(MarkEmpty(True))
    elif ready > 0 and obs.empty:
        actions.append(MarkEmpty(False))
    return actions


def _wanted(obs: Observation, actions: Sequence[Action]) -> int:
    """The clones the pool still wants once ``actions`` are done (their
    clones counted as pending)."""
    after = states_after(obs.tracked, actions)
    return obs.pool.size - after[READY] - after[PENDING]


def short_of_slots(obs: Observation, actions: Sequence[Action]) -> bool:
    """Whether the pool, once ``actions`` (its plan) are done, still wants
    clones that no slot was left for (Note [Waiting for a clone slot] in
    clones.py)."""
    return _wanted(obs, actions) > 0


def _shrink(obs: Observation, actions: Sequence[Action]) -> list[Action]:
    """
    When the pool holds more ready VMs than its (live) size, those over
    it that have waited longest go, MAX_SHRINK a cycle.  Pending VMs are
    left to become ready first (a pool shrinking as its demand falls loses
    no VM it may still need), and checked-out VMs are never touched.
    """
    after = states_after(obs.tracked, actions)
    excess = min(after[READY] + after[PENDING] - obs.pool.size,
                 after[READY] - obs.pool.size, MAX_SHRINK)
    if excess <= 0:
        return []
    moved = {a.name for a in actions if isinstance(a, (Complete, Forget))}
    idle = sorted((vm for vm in obs.tracked if vm.state == READY and vm.name not in moved),
                  key=lambda vm: (vm.ready_since or 0.0, vm.name))
    return [Complete(vm.name, READY, "pool shrunk") for vm in idle[:excess]]


def is_quiet(actions: Sequence[Action]) -> bool:
    """Nothing but periodic checks happened: the maintainer may back off."""
    return all(isinstance(a, Check) for a in actions)


__all__: Sequence[str] = (
    "Action", "Check", "Clone", "Complete", "Destroy", "Discover", "Drain", "Forget",
    "MarkEmpty", "Observation", "Ready", "TrackedVm", "Undiscover", "held", "is_quiet", "plan",
    "to_probe",
)
