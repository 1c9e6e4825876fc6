"""
A pending VM judged: ready, still on its way, or failed.  Pure, and the one
place this is decided: a pool's planner (pool_plan.py) and an on-demand
request's (ondemand_plan.py) both ask :func:`judge`, and each turns the
verdict into its own actions.

Note [Judging a pending VM]: a pending VM (a clone recorded, for a pool or
for a request) is judged against the inventory of its folder:

- it *looks booted* (in the inventory and powered on) and its readiness
  probe passed (or ``ready_check_port`` is 0) -> :class:`Booted`.  What
  VMware Tools report as its hostname does not matter (vmpooler 3.x asks
  only that the port answer): a template that never sets the
  hostname still fills its pool.  A foreign hostname is a *ready* VM's
  matter (Note [A foreign hostname] in pool_plan.py).  A crashed daemon's
  pending VM that reached vSphere powered on is so adopted: it becomes
  ready as any (Note [Clone reservations] in clone_reserve.lua).
- else, strictly past its pool's ``timeout`` since its clone was recorded
  -> failed (TIMEOUT), the reason read from what vSphere shows
  (:func:`not_ready`).  An unknown ``clone_time`` never times out.
- else, with no clone task in flight: absent from the inventory -> failed
  (LOST: the daemon died between recording the name and starting the
  clone, or the clone failed); powered off -> failed (POWERED_OFF: a clone
  is powered on before its task ends, so its daemon died in between, or
  someone powered it off).
- else it is still cloning or booting: nothing (None).

The clones in flight must be read around the inventory for LOST to be
right (Note [Clones around the inventory] in observe.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..vsphere.types import VmState
from . import failures
from .failures import VmFailure

# The reasons a pending VM fails, as logged (Failed.reason).
TIMEOUT = "timeout"
LOST = "clone lost"
POWERED_OFF = "powered off"


@dataclass(frozen=True)
class Pending:
    """What one cycle saw of a pending VM.  No field has a default."""

    name: str
    # When its clone was recorded; None: not known (never times out).
    clone_time: float | None
    # The VM as the inventory shows it; None: not in vSphere.
    state: VmState | None
    # Whether a clone task for it is in flight (any daemon).
    cloning: bool
    # Its readiness probe passed, or no probe is needed.
    reachable: bool
    # Why its probe failed; None: not probed, could not say, or no reason.
    probe_failure: VmFailure | None


@dataclass(frozen=True)
class Booted:
    """Ready: ``boot_seconds`` since its clone was recorded (0 if unknown)."""

    boot_seconds: float


@dataclass(frozen=True)
class Failed:
    """Not to be waited for: ``reason`` (TIMEOUT, LOST, POWERED_OFF) for the
    log, ``failure`` for the record (Note [Failures explained])."""

    reason: str
    failure: VmFailure


Verdict = Booted | Failed | None


def looks_booted(state: VmState | None) -> bool:
    """In vSphere and powered on: worth a readiness probe."""
    return state is not None and state.powered_on


def judge(vm: Pending, now: float, timeout: float) -> Verdict:
    """The verdict on ``vm`` at ``now``, its pool's timeout being
    ``timeout`` seconds (Note [Judging a pending VM])."""
    if looks_booted(vm.state) and vm.reachable:
        boot = 0.0 if vm.clone_time is None else max(0.0, now - vm.clone_time)
        return Booted(boot)
    if vm.clone_time is not None and now - vm.clone_time > timeout:
        return Failed(TIMEOUT, not_ready(vm.state, timeout, vm.cloning, vm.probe_failure))
    if not vm.cloning:
        if vm.state is None:
            return Failed(LOST, VmFailure(
                failures.CLONE, "its clone ended and the VM is not in vSphere"))
        if vm.state.power_state == "poweredOff":
            return Failed(POWERED_OFF, VmFailure(
                failures.CLONE, "powered off with its clone over (its daemon died before "
                "powering it on?)"))
    return None


def not_ready(state: VmState | None, timeout: float, cloning: bool,
              probe: VmFailure | None) -> VmFailure:
    """Why a new VM was not ready within ``timeout`` seconds, from what
    vSphere shows of it (``state``), whether its clone still runs, and why
    its probe failed (None: not probed, or no reason)."""
    after = f"after {timeout / 60:g} minutes"
    if state is None:
        still = ", its clone still running" if cloning else ""
        return VmFailure(failures.BOOT_TIMEOUT, f"not in vSphere {after}{still}")
    if not state.powered_on:
        return VmFailure(failures.BOOT_TIMEOUT, f"not powered on {after}")
    return probe or VmFailure(failures.BOOT_TIMEOUT, f"not ready {after}")
