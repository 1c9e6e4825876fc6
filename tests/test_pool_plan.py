"""
The pure pool maintenance plan (vmpoolerd.manager.pool_plan): vmpooler's state machine,
refill and the empty flag, with no I/O.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Iterable, Mapping, Sequence

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.config import PoolConfig, ServiceConfig
from vmpoolerd.manager import failures
from vmpoolerd.manager.failures import VmFailure
from vmpoolerd.manager.pool_plan import (
    MAX_DISCOVERED_DESTROYS, held,
    Action, Check, Clone, Complete, Destroy, Discover, Drain, Forget, MarkEmpty,
    Observation, Ready, TrackedVm, Undiscover, is_quiet, plan, short_of_slots, states_after,
    to_probe,
)
from vmpoolerd.vsphere.client import VmState

NOW = 1_700_000_000.0
MINUTE = 60.0
HOUR = 3600.0

POOL = PoolConfig(name="debian", template="Templates/debian", folder="pools/debian",
                  datastore="ds1", size=3)
# timeout 15 min, vm_checktime 15 min, vm_lifetime 24 h, no ready_ttl, port 22
SERVICE = ServiceConfig()

_BOOTED = object()


def seen(name: str, power: str = "poweredOn", hostname: object = _BOOTED,
         template: bool = False) -> VmState:
    """The VM as the inventory shows it; by default booted under its name."""
    return VmState(name=name, power_state=power,
                   hostname=name if hostname is _BOOTED else hostname,  # type: ignore[arg-type]
                   ip="10.0.0.1", boot_time=None, template=template)


def pending(name: str, age: float | None = MINUTE) -> TrackedVm:
    """A pending VM whose clone was recorded ``age`` seconds ago."""
    return TrackedVm(name, "pending", clone_time=None if age is None else NOW - age,
                     checkout=None, lifetime_hours=None, last_check=None, ready_since=None)


def ready(name: str, checked: float | None = MINUTE, since: float | None = HOUR) -> TrackedVm:
    """A ready VM last checked ``checked`` seconds ago, ready ``since`` seconds."""
    return TrackedVm(name, "ready", clone_time=NOW - 2 * HOUR, checkout=None,
                     lifetime_hours=None,
                     last_check=None if checked is None else NOW - checked,
                     ready_since=None if since is None else NOW - since)


def running(name: str, out: float | None = HOUR, lifetime: float | None = None) -> TrackedVm:
    """A running VM checked out ``out`` seconds ago."""
    return TrackedVm(name, "running", clone_time=NOW - 3 * HOUR,
                     checkout=None if out is None else NOW - out,
                     lifetime_hours=lifetime, last_check=None, ready_since=None)


def tracked(name: str, state: str) -> TrackedVm:
    return TrackedVm(name, state, clone_time=None, checkout=None, lifetime_hours=None,
                     last_check=None, ready_since=None)


def observe(*vms: TrackedVm, inventory: Iterable[VmState] | None = None,
            failed: bool = False, reachable: Iterable[str] | None = None,
            cloning: Iterable[str] = (), slots: int = 0, empty: bool = False,
            pool: PoolConfig = POOL, service: ServiceConfig = SERVICE,
            doubt: str | None = None, unknown: Iterable[str] = (),
            failed_probes: Mapping[str, VmFailure] | None = None,
            drain: str | None = None, ondemand: Iterable[str] = ()) -> Observation:
    """
    An observation of ``vms``.  By default every tracked VM is in the
    inventory, booted, and reachable; ``failed`` makes the inventory fail.
    """
    if inventory is None:
        inventory = [seen(vm.name) for vm in vms]
    return Observation(
        pool=pool, service=service, now=NOW, tracked=tuple(vms),
        inventory=None if failed else {s.name: s for s in inventory},
        reachable=frozenset(vm.name for vm in vms) if reachable is None else frozenset(reachable),
        unknown=frozenset(unknown), failed_probes=failed_probes or {},
        cloning=frozenset(cloning), ondemand=frozenset(ondemand), clone_slots=slots,
        empty=empty, doubt=doubt, drain=drain)


def transitions(obs: Observation) -> list[Action]:
    """The plan without its refill and empty flag."""
    return [a for a in plan(obs) if not isinstance(a, (Clone, MarkEmpty))]


def tail(obs: Observation) -> list[Action]:
    """Only the refill and the empty flag of the plan."""
    return [a for a in plan(obs) if isinstance(a, (Clone, MarkEmpty))]


def unreachable() -> VmFailure:
    """A failed probe that gave no reason (the probes here are sets)."""
    return VmFailure(failures.UNREACHABLE,
                     f"port {SERVICE.ready_check_port} could not be reached")


def with_pool(**changes: object) -> PoolConfig:
    return dataclasses.replace(POOL, **changes)  # type: ignore[arg-type]


def with_service(**changes: object) -> ServiceConfig:
    return dataclasses.replace(SERVICE, **changes)  # type: ignore[arg-type]


NO_PROBE = with_service(ready_check_port=0)


class FailedInventoryTests(SynchronousTestCase):
    def test_plans_nothing(self) -> None:
        obs = observe(pending("p1", age=HOUR), ready("r1"), running("x1", out=100 * HOUR),
                      tracked("c1", "completed"), tracked("d1", "discovered"),
                      failed=True, slots=10)
        self.assertEqual(plan(obs), [])

    def test_not_even_the_empty_flag(self) -> None:
        self.assertEqual(plan(observe(failed=True, slots=3)), [])
        self.assertEqual(plan(observe(ready("r1"), failed=True, empty=True)), [])

    def test_probes_nothing(self) -> None:
        self.assertEqual(to_probe(observe(pending("p1"), ready("r1", checked=None),
                                          failed=True)), frozenset())

    def test_empty_inventory_is_not_a_failure(self) -> None:
        self.assertEqual(transitions(observe(ready("r1"), inventory=[])),
                         [Forget("r1", "ready")])


class DiscoverTests(SynchronousTestCase):
    def test_untracked_vm_is_discovered(self) -> None:
        self.assertEqual(transitions(observe(inventory=[seen("stray")])),
                         [Discover("stray")])

    def test_powered_off_untracked_vm_too(self) -> None:
        self.assertEqual(transitions(observe(inventory=[seen("stray", power="poweredOff")])),
                         [Discover("stray")])

    def test_templates_are_ignored(self) -> None:
        self.assertEqual(transitions(observe(inventory=[seen("tpl", template=True)])), [])

    def test_tracked_vms_are_not_discovered(self) -> None:
        vms = [pending("p1"), ready("r1"), running("x1"), tracked("c1", "completed"),
               tracked("d1", "discovered")]
        actions = transitions(observe(*vms))
        self.assertFalse([a for a in actions if isinstance(a, Discover)])

    def test_an_on_demand_vm_is_neither_discovered_nor_counted(self) -> None:
        obs = observe(ready("r1"), inventory=[seen("r1"), seen("od1")], ondemand=["od1"],
                      pool=with_pool(size=2), slots=10)
        self.assertEqual(plan(obs), [Clone(1)])

    def test_clone_in_flight_is_not_discovered(self) -> None:
        self.assertEqual(transitions(observe(inventory=[seen("new")], cloning=["new"])), [])

    def test_sorted_by_name(self) -> None:
        obs = observe(inventory=[seen("c"), seen("a"), seen("b")])
        self.assertEqual(transitions(obs), [Discover("a"), Discover("b"), Discover("c")])


class PendingTests(SynchronousTestCase):
    def test_booted_and_reachable_is_ready(self) -> None:
        self.assertEqual(transitions(observe(pending("p1", age=90))), [Ready("p1", 90.0)])

    def test_unknown_clone_time_boots_in_zero(self) -> None:
        self.assertEqual(transitions(observe(pending("p1", age=None))), [Ready("p1", 0.0)])

    def test_clone_time_in_the_future_boots_in_zero(self) -> None:
        # Another daemon's clock runs ahead: no negative boot times.
        self.assertEqual(transitions(observe(pending("p1", age=-5))), [Ready("p1", 0.0)])

    def test_booted_but_unreachable_waits(self) -> None:
        self.assertEqual(transitions(observe(pending("p1"), reachable=[])), [])

    def test_a_probe_that_could_not_say_is_taken_again(self) -> None:
        obs = observe(ready("r1", checked=None), reachable=[], unknown=["r1"])
        self.assertEqual(transitions(obs), [])
        booting = observe(pending("p1"), reachable=[], unknown=["p1"])
        self.assertEqual(transitions(booting), [])

    def test_port_zero_needs_no_probe(self) -> None:
        obs = observe(pending("p1", age=30), reachable=[], service=NO_PROBE)
        self.assertEqual(transitions(obs), [Ready("p1", 30.0)])

    def test_port_zero_needs_no_hostname_either(self) -> None:
        obs = observe(pending("p1", age=30), inventory=[seen("p1", hostname=None)],
                      service=NO_PROBE)
        self.assertEqual(transitions(obs), [Ready("p1", 30.0)])

    def test_a_template_that_never_reports_a_hostname_becomes_ready(self) -> None:
        """Only the port counts for a new VM; its hostname is a
        ready VM's matter (Note [A foreign hostname])."""
        for hostname in (None, "", "localhost"):
            obs = observe(pending("p1", age=30), inventory=[seen("p1", hostname=hostname)])
            self.assertEqual(to_probe(obs), {"p1"}, hostname)
            self.assertEqual(transitions(obs), [Ready("p1", 30.0)], hostname)

    def test_reachable_but_not_powered_on_waits(self) -> None:
        self.assertEqual(transitions(observe(pending("p1"), inventory=[
            seen("p1", power="suspended")])), [])
        # Powered off while its clone runs (it is powered on at its end).
        self.assertEqual(transitions(observe(pending("p1"), cloning=["p1"], inventory=[
            seen("p1", power="poweredOff", hostname=None)])), [])

    def test_powered_off_with_its_clone_over_is_completed(self) -> None:
        """Its daemon died between the clone and the power-on."""
        obs = observe(pending("p1"), inventory=[seen("p1", power="poweredOff", hostname=None)],
                      slots=1)
        self.assertEqual(plan(obs)[:2], [
            Complete("p1", "pending", "powered off", VmFailure(
                failures.CLONE, "powered off with its clone over (its daemon died before "
                "powering it on?)")), Clone(1)])

    def test_timeout_boundary(self) -> None:
        self.assertEqual(transitions(observe(pending("p1", age=15 * MINUTE),
                                             reachable=[])), [])
        self.assertEqual(transitions(observe(pending("p1", age=15 * MINUTE + 0.5),
                                             reachable=[])),
                         [Complete("p1", "pending", "timeout", unreachable())])

    def test_timeout_while_unreachable(self) -> None:
        obs = observe(pending("p1", age=16 * MINUTE), reachable=[])
        self.assertEqual(transitions(obs), [Complete("p1", "pending", "timeout", unreachable())])

    def test_timeout_while_still_cloning(self) -> None:
        obs = observe(pending("p1", age=16 * MINUTE), inventory=[], cloning=["p1"])
        self.assertEqual(transitions(obs), [Complete("p1", "pending", "timeout", VmFailure(
            failures.BOOT_TIMEOUT, "not in vSphere after 15 minutes, its clone still running"))])

    def test_ready_wins_over_timeout(self) -> None:
        self.assertEqual(transitions(observe(pending("p1", age=HOUR))),
                         [Ready("p1", HOUR)])

    def test_pool_timeout_overrides_service(self) -> None:
        obs = observe(pending("p1", age=6 * MINUTE), reachable=[],
                      pool=with_pool(timeout_minutes=5.0))
        self.assertEqual(transitions(obs), [Complete("p1", "pending", "timeout", unreachable())])
        obs = observe(pending("p1", age=20 * MINUTE), reachable=[],
                      pool=with_pool(timeout_minutes=30.0))
        self.assertEqual(transitions(obs), [])

    def test_service_timeout(self) -> None:
        obs = observe(pending("p1", age=0.06 * MINUTE), reachable=[],
                      service=with_service(timeout_minutes=0.05))
        self.assertEqual(transitions(obs), [Complete("p1", "pending", "timeout", unreachable())])

    def test_unknown_clone_time_never_times_out(self) -> None:
        obs = observe(pending("p1", age=None), reachable=[])
        self.assertEqual(transitions(obs), [])

    def test_clone_lost(self) -> None:
        self.assertEqual(transitions(observe(pending("p1"), inventory=[])),
                         [Complete("p1", "pending", "clone lost")])

    def test_clone_lost_without_clone_time(self) -> None:
        self.assertEqual(transitions(observe(pending("p1", age=None), inventory=[])),
                         [Complete("p1", "pending", "clone lost")])

    def test_clone_in_flight_is_not_lost(self) -> None:
        self.assertEqual(transitions(observe(pending("p1"), inventory=[], cloning=["p1"])),
                         [])

    def test_in_inventory_and_not_cloning_is_not_lost(self) -> None:
        """Booting with no clone in flight (a dead daemon's, adopted): waited for."""
        obs = observe(pending("p1"), reachable=[])
        self.assertEqual(transitions(obs), [])


class FailureTests(SynchronousTestCase):
    """Note [Failures explained]: a timed-out or failed VM says why."""

    def timed_out(self, **seen_as: object) -> VmFailure | None:
        failed_probes = seen_as.pop("failed_probes", None)
        obs = observe(pending("p1", age=HOUR), inventory=[seen("p1", **seen_as)],  # type: ignore[arg-type]
                      reachable=[], failed_probes=failed_probes)  # type: ignore[arg-type]
        [action] = transitions(obs)
        assert isinstance(action, Complete)
        return action.failure

    def test_the_probe_says_why(self) -> None:
        refused = VmFailure(failures.PORT_REFUSED, "port 22 refused the connection")
        self.assertEqual(self.timed_out(failed_probes={"p1": refused}), refused)
        obs = observe(ready("r1", checked=None), reachable=[], failed_probes={"r1": refused})
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "unreachable", refused)])

    def test_what_vsphere_shows_says_why(self) -> None:
        self.assertEqual(self.timed_out(power="poweredOff"), VmFailure(
            failures.BOOT_TIMEOUT, "not powered on after 15 minutes"))
        # A new VM's hostname is no reason (Note [Judging a pending VM]).
        self.assertEqual(self.timed_out(hostname="localhost"), unreachable())

    def test_ends_of_lifetime_are_no_failures(self) -> None:
        obs = observe(running("x1", out=30 * HOUR))
        self.assertEqual(transitions(obs), [Complete("x1", "running", "lifetime")])


class LiveSizeTests(SynchronousTestCase):
    """A pool's live size and template (the config API, its demand)."""

    def test_a_smaller_size_destroys_the_oldest_ready_vms_a_few_a_cycle(self) -> None:
        vms = [ready(f"r{i}", since=i * MINUTE) for i in range(1, 7)]
        obs = observe(*vms, running("x1"), pool=with_pool(size=2), slots=10)
        self.assertEqual(plan(obs), [Complete(f"r{i}", "ready", "pool shrunk")
                                     for i in (6, 5, 4)])

    def test_pending_vms_are_left_to_become_ready_first(self) -> None:
        obs = observe(ready("r1"), ready("r2"), ready("r3"), pending("p1"), pending("p2"),
                      reachable=["r1", "r2", "r3"], pool=with_pool(size=2), slots=10)
        self.assertEqual(plan(obs), [Complete("r1", "ready", "pool shrunk")])
        obs = observe(ready("r1"), pending("p1"), pending("p2"), reachable=["r1"],
                      pool=with_pool(size=2), slots=10)
        self.assertEqual(plan(obs), [])

    def test_a_drain_is_all_a_cycle_does(self) -> None:
        obs = observe(ready("r1"), pending("p1", age=HOUR), running("x1", out=30 * HOUR),
                      drain="pool reset", slots=10)
        self.assertEqual(plan(obs), [Drain("pool reset")])


class ReadyTests(SynchronousTestCase):
    def test_gone_from_vsphere_is_forgotten(self) -> None:
        self.assertEqual(transitions(observe(ready("r1"), inventory=[])),
                         [Forget("r1", "ready")])

    def test_powered_off_even_when_not_due(self) -> None:
        for power in ("poweredOff", "suspended"):
            obs = observe(ready("r1", checked=MINUTE), inventory=[seen("r1", power=power)])
            self.assertEqual(transitions(obs), [Complete("r1", "ready", "powered off")])

    def test_not_due_does_nothing(self) -> None:
        obs = observe(ready("r1", checked=15 * MINUTE - 1),
                      inventory=[seen("r1", hostname="other")], reachable=[])
        self.assertEqual(transitions(obs), [])

    def test_due_at_exactly_checktime(self) -> None:
        self.assertEqual(transitions(observe(ready("r1", checked=15 * MINUTE))),
                         [Check("r1")])

    def test_never_checked_is_due(self) -> None:
        self.assertEqual(transitions(observe(ready("r1", checked=None))), [Check("r1")])

    def test_service_checktime(self) -> None:
        obs = observe(ready("r1", checked=4), service=with_service(vm_checktime_minutes=0.05))
        self.assertEqual(transitions(obs), [Check("r1")])

    def test_hostname_mismatch(self) -> None:
        obs = observe(ready("r1", checked=None), inventory=[seen("r1", hostname="localhost")])
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "hostname mismatch", VmFailure(
            failures.HOSTNAME, "its hostname is 'localhost', not its name"))])

    def test_a_foreign_hostname_is_kept_for_a_minute_then_replaced(self) -> None:
        """Note [A foreign hostname]: not before 60 s after it became ready;
        then completed, and the refill clones its replacement."""
        foreign = [seen("r1", hostname="localhost")]
        young = observe(ready("r1", checked=None, since=MINUTE), inventory=foreign,
                        pool=with_pool(size=1), slots=1)
        self.assertEqual(to_probe(young), {"r1"})
        self.assertEqual(plan(young), [Check("r1")])
        old = observe(ready("r1", checked=None, since=MINUTE + 1), inventory=foreign,
                      pool=with_pool(size=1), slots=1)
        self.assertEqual(to_probe(old), frozenset())
        self.assertEqual(plan(old), [
            Complete("r1", "ready", "hostname mismatch", VmFailure(
                failures.HOSTNAME, "its hostname is 'localhost', not its name")),
            Clone(1), MarkEmpty(True)])

    def test_a_foreign_hostname_with_no_ready_time_is_checked(self) -> None:
        obs = observe(ready("r1", checked=None, since=None),
                      inventory=[seen("r1", hostname="localhost")])
        self.assertEqual([type(a) for a in transitions(obs)], [Complete])

    def test_the_hostname_switches(self) -> None:
        """The pool's check_hostname_for_mismatch, else :config:
        check_ready_vm_hostname_for_mismatch."""
        off, on = with_service(check_ready_vm_hostname_for_mismatch=False), SERVICE
        for pool, service, checked in (
                (POOL, on, True), (POOL, off, False),
                (with_pool(check_hostname_for_mismatch=False), on, False),
                (with_pool(check_hostname_for_mismatch=True), off, True)):
            obs = observe(ready("r1", checked=None), inventory=[seen("r1", hostname="other")],
                          pool=pool, service=service)
            self.assertEqual(to_probe(obs), frozenset() if checked else {"r1"})
            self.assertEqual([type(a) for a in transitions(obs)],
                             [Complete] if checked else [Check], (pool, service))

    def test_no_hostname_goes_on_to_the_probe(self) -> None:
        """VMware Tools restarting, or a template that never sets it: as vmpooler 3.x."""
        for hostname in (None, ""):
            obs = observe(ready("r1", checked=None), inventory=[seen("r1", hostname=hostname)])
            self.assertEqual(to_probe(obs), {"r1"})
            self.assertEqual(transitions(obs), [Check("r1")])
            self.assertEqual(transitions(dataclasses.replace(obs, reachable=frozenset())),
                             [Complete("r1", "ready", "unreachable", unreachable())])

    def test_unreachable(self) -> None:
        self.assertEqual(transitions(observe(ready("r1", checked=None), reachable=[])),
                         [Complete("r1", "ready", "unreachable", unreachable())])

    def test_port_zero_needs_no_probe(self) -> None:
        obs = observe(ready("r1", checked=None), reachable=[], service=NO_PROBE)
        self.assertEqual(transitions(obs), [Check("r1")])

    def test_no_ready_ttl_by_default(self) -> None:
        self.assertEqual(transitions(observe(ready("r1", since=1000 * HOUR))), [])

    def test_service_ready_ttl_boundary(self) -> None:
        service = with_service(ready_ttl_minutes=60.0)
        self.assertEqual(transitions(observe(ready("r1", since=HOUR), service=service)), [])
        self.assertEqual(transitions(observe(ready("r1", since=HOUR + 1), service=service)),
                         [Complete("r1", "ready", "ready_ttl")])

    def test_pool_ready_ttl_overrides_service(self) -> None:
        service = with_service(ready_ttl_minutes=60.0)
        obs = observe(ready("r1", since=11 * MINUTE), service=service,
                      pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "ready_ttl")])
        obs = observe(ready("r1", since=2 * HOUR), service=service,
                      pool=with_pool(ready_ttl_minutes=180.0))
        self.assertEqual(transitions(obs), [])

    def test_pool_ready_ttl_without_service_ttl(self) -> None:
        obs = observe(ready("r1", since=11 * MINUTE), pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "ready_ttl")])

    def test_unknown_ready_time_never_expires(self) -> None:
        obs = observe(ready("r1", since=None), pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(transitions(obs), [])

    def test_ready_ttl_before_the_check(self) -> None:
        obs = observe(ready("r1", checked=None, since=HOUR), reachable=[],
                      pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "ready_ttl")])

    def test_powered_off_before_ready_ttl(self) -> None:
        obs = observe(ready("r1", since=HOUR), inventory=[seen("r1", power="poweredOff")],
                      pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(transitions(obs), [Complete("r1", "ready", "powered off")])


class RunningTests(SynchronousTestCase):
    def test_gone_from_vsphere_is_forgotten(self) -> None:
        self.assertEqual(transitions(observe(running("x1"), inventory=[])),
                         [Forget("x1", "running")])

    def test_service_lifetime_boundary(self) -> None:
        self.assertEqual(transitions(observe(running("x1", out=24 * HOUR))), [])
        self.assertEqual(transitions(observe(running("x1", out=24 * HOUR + 1))),
                         [Complete("x1", "running", "lifetime")])

    def test_service_lifetime(self) -> None:
        obs = observe(running("x1", out=2 * HOUR + 1),
                      service=with_service(vm_lifetime_hours=2.0))
        self.assertEqual(transitions(obs), [Complete("x1", "running", "lifetime")])

    def test_own_lifetime_overrides_service(self) -> None:
        self.assertEqual(transitions(observe(running("x1", out=30 * HOUR, lifetime=48))), [])
        self.assertEqual(transitions(observe(running("x1", out=2 * HOUR + 1, lifetime=2))),
                         [Complete("x1", "running", "lifetime")])

    def test_unknown_checkout_never_expires(self) -> None:
        self.assertEqual(transitions(observe(running("x1", out=None, lifetime=1))), [])

    def test_power_and_reachability_do_not_matter(self) -> None:
        obs = observe(running("x1"), inventory=[seen("x1", power="poweredOff",
                                                     hostname=None)], reachable=[])
        self.assertEqual(transitions(obs), [])


class DoomedTests(SynchronousTestCase):
    def test_in_vsphere_is_destroyed(self) -> None:
        for state in ("completed", "discovered"):
            self.assertEqual(transitions(observe(tracked("v1", state))),
                             [Destroy("v1", state)])

    def test_powered_off_is_destroyed_too(self) -> None:
        obs = observe(tracked("v1", "completed"), inventory=[seen("v1", power="poweredOff")])
        self.assertEqual(transitions(obs), [Destroy("v1", "completed")])

    def test_gone_is_forgotten(self) -> None:
        for state in ("completed", "discovered"):
            self.assertEqual(transitions(observe(tracked("v1", state), inventory=[])),
                             [Forget("v1", state)])

    def test_work_in_flight_is_left_to_its_end(self) -> None:
        """Note [Doomed VMs with work in flight]."""
        for state in ("completed", "discovered"):
            for inventory in ([], [seen("v1")]):  # destroyed already, or not yet
                self.assertEqual(transitions(observe(tracked("v1", state), inventory=inventory,
                                                     cloning=["v1"])), [])


class HeldTests(SynchronousTestCase):
    """Note [Held discovered VMs]."""

    def test_in_doubt_discovered_vms_are_held_not_destroyed(self) -> None:
        vms = (tracked("d1", "discovered"), tracked("c1", "completed"),
               tracked("gone", "discovered"))
        inventory = [seen("d1"), seen("c1"), seen("stray")]
        obs = observe(*vms, inventory=inventory, doubt="lost data")
        self.assertEqual(transitions(obs), [Destroy("c1", "completed"), Forget("gone",
                                            "discovered"), Discover("stray")])
        self.assertEqual(held(obs), {"d1", "stray"})
        trusted = observe(*vms, inventory=inventory)
        self.assertEqual(held(trusted), frozenset())
        self.assertIn(Destroy("d1", "discovered"), transitions(trusted))

    def test_a_discovered_vm_in_a_live_set_leaves_discovered_even_in_doubt(self) -> None:
        obs = observe(tracked("v1", "discovered"), ready("v1"), doubt="lost data")
        self.assertEqual(transitions(obs), [Undiscover("v1")])
        self.assertEqual(held(obs), frozenset())

    def test_a_few_discovered_vms_are_destroyed_per_cycle(self) -> None:
        names = [f"d{i}" for i in range(MAX_DISCOVERED_DESTROYS + 3)]
        obs = observe(*(tracked(n, "discovered") for n in names),
                      tracked("c1", "completed"), tracked("c2", "completed"))
        self.assertEqual(transitions(obs), [Destroy("c1", "completed"),
                                            Destroy("c2", "completed")]
                         + [Destroy(n, "discovered")
                            for n in sorted(names)[:MAX_DISCOVERED_DESTROYS]])


class DuplicateTests(SynchronousTestCase):
    """A VM in discovered and another set, as vmpooler could leave it."""

    def test_a_discovered_vm_also_running_leaves_discovered_only(self) -> None:
        obs = observe(running("x1"), tracked("x1", "discovered"), inventory=[seen("x1")])
        self.assertEqual(transitions(obs), [Undiscover("x1")])

    def test_also_pending_or_ready(self) -> None:
        obs = observe(pending("p1"), tracked("p1", "discovered"),
                      ready("r1"), tracked("r1", "discovered"), inventory=[seen("r1")])
        self.assertEqual([a for a in transitions(obs) if isinstance(a, Undiscover)],
                         [Undiscover("p1"), Undiscover("r1")])

    def test_counted_in_its_live_set(self) -> None:
        obs = observe(tracked("r1", "discovered"), ready("r1"), ready("r2"), slots=5)
        self.assertEqual(tail(obs), [Clone(1)])
        self.assertEqual(states_after(obs.tracked, plan(obs))["ready"], 2)

    def test_also_completed_is_destroyed_as_usual(self) -> None:
        obs = observe(tracked("c1", "completed"), tracked("c1", "discovered"))
        self.assertEqual(transitions(obs), [Destroy("c1", "completed"),
                                            Destroy("c1", "discovered")])


class UnknownStateTests(SynchronousTestCase):
    def test_left_alone_and_not_counted(self) -> None:
        obs = observe(tracked("v1", "weird"), slots=5)
        self.assertEqual(plan(obs), [Clone(3), MarkEmpty(True)])


class ToProbeTests(SynchronousTestCase):
    def test_pending_that_looks_booted(self) -> None:
        obs = observe(pending("p1"), pending("p2"), pending("p3"), pending("p4"),
                      inventory=[seen("p1"), seen("p2", hostname=None),
                                 seen("p3", power="poweredOff")])
        self.assertEqual(to_probe(obs), {"p1", "p2"})

    def test_ready_due_a_check(self) -> None:
        obs = observe(ready("r1", checked=None), ready("r2", checked=15 * MINUTE),
                      ready("r3", checked=MINUTE))
        self.assertEqual(to_probe(obs), {"r1", "r2"})

    def test_ready_that_do_not_reach_the_probe(self) -> None:
        obs = observe(ready("off", checked=None), ready("other", checked=None),
                      ready("gone", checked=None), ready("old", checked=None, since=HOUR),
                      inventory=[seen("off", power="poweredOff"),
                                 seen("other", hostname="x"), seen("old")],
                      pool=with_pool(ready_ttl_minutes=10.0))
        self.assertEqual(to_probe(obs), frozenset())

    def test_other_states_are_never_probed(self) -> None:
        obs = observe(running("x1"), tracked("c1", "completed"),
                      tracked("d1", "discovered"), inventory=[
                          seen("x1"), seen("c1"), seen("d1"), seen("stray")])
        self.assertEqual(to_probe(obs), frozenset())

    def test_port_zero_probes_nothing(self) -> None:
        obs = observe(pending("p1"), ready("r1", checked=None), service=NO_PROBE)
        self.assertEqual(to_probe(obs), frozenset())

    def test_exactly_what_reachability_decides(self) -> None:
        """Taking any VM out of ``reachable`` changes the plan iff it was probed."""
        vms = [pending("p1"), pending("p2"), pending("p3", age=HOUR),
               ready("r1", checked=None, since=MINUTE), ready("r2", since=MINUTE),
               ready("r3", checked=None, since=2 * MINUTE),
               ready("r4", checked=None, since=HOUR),
               ready("r5", checked=None, since=MINUTE), running("x1"),
               tracked("c1", "completed")]
        inventory = [seen("p1"), seen("p2", hostname=None), seen("p3"), seen("r1"),
                     seen("r2"), seen("r3", hostname="x"), seen("r4"),
                     seen("r5", power="poweredOff"), seen("x1"), seen("c1")]
        pool = with_pool(ready_ttl_minutes=30.0)
        everyone = [vm.name for vm in vms]
        base = plan(observe(*vms, inventory=inventory, reachable=everyone, pool=pool))
        decided = set()
        for name in everyone:
            others = [n for n in everyone if n != name]
            if plan(observe(*vms, inventory=inventory, reachable=others, pool=pool)) != base:
                decided.add(name)
        probed = to_probe(observe(*vms, inventory=inventory, pool=pool))
        self.assertEqual(probed, {"p1", "p2", "p3", "r1"})
        self.assertEqual(decided, probed)


class RefillTests(SynchronousTestCase):
    def test_empty_pool_is_filled(self) -> None:
        self.assertIn(Clone(3), plan(observe(slots=10)))

    def test_capped_by_clone_slots(self) -> None:
        self.assertIn(Clone(2), plan(observe(slots=2)))

    def test_no_slots_no_clone(self) -> None:
        for slots in (0, -1):
            self.assertFalse([a for a in plan(observe(slots=slots)) if isinstance(a, Clone)])

    def test_ready_and_pending_count(self) -> None:
        obs = observe(ready("r1"), pending("p1"), reachable=["r1"], slots=10)
        self.assertEqual(tail(obs), [Clone(1)])

    def test_full_pool_clones_nothing(self) -> None:
        obs = observe(ready("r1"), ready("r2"), pending("p1"), reachable=[], slots=10)
        self.assertEqual(tail(obs), [])

    def test_over_size_clones_nothing(self) -> None:
        obs = observe(*(ready(f"r{i}") for i in range(5)), slots=10)
        self.assertEqual(tail(obs), [])

    def test_running_completed_and_discovered_do_not_count(self) -> None:
        obs = observe(ready("r1"), running("x1"), tracked("c1", "completed"),
                      tracked("d1", "discovered"), slots=10)
        self.assertEqual(tail(obs), [Clone(2)])

    def test_readied_pending_still_counts(self) -> None:
        obs = observe(ready("r1"), pending("p1"), pending("p2"), slots=10)
        self.assertEqual(plan(obs), [Ready("p1", MINUTE), Ready("p2", MINUTE)])

    def test_completed_pending_no_longer_counts(self) -> None:
        obs = observe(ready("r1"), pending("p1"), pending("p2", age=HOUR),
                      reachable=[], slots=10)
        self.assertEqual(plan(obs), [Complete("p2", "pending", "timeout", unreachable()),
                                     Clone(1)])

    def test_completed_or_forgotten_ready_no_longer_counts(self) -> None:
        obs = observe(ready("r1"), ready("r2", checked=None), ready("r3"),
                      inventory=[seen("r1"), seen("r2")], reachable=["r1"], slots=10)
        self.assertEqual(plan(obs), [Complete("r2", "ready", "unreachable", unreachable()),
                                     Forget("r3", "ready"), Clone(2)])

    def test_lost_clone_is_replaced(self) -> None:
        obs = observe(pending("p1"), inventory=[], slots=1, empty=True)
        self.assertEqual(plan(obs), [Complete("p1", "pending", "clone lost"), Clone(1)])

    def test_pool_size(self) -> None:
        obs = observe(ready("r1"), pool=with_pool(size=10), slots=100)
        self.assertEqual(tail(obs), [Clone(9)])


class EmptyFlagTests(SynchronousTestCase):
    def test_set_when_no_vm_is_ready(self) -> None:
        self.assertEqual(tail(observe(pending("p1"), reachable=[])), [MarkEmpty(True)])

    def test_left_set(self) -> None:
        self.assertEqual(tail(observe(pending("p1"), reachable=[], empty=True)), [])

    def test_cleared_when_a_vm_is_ready(self) -> None:
        self.assertEqual(tail(observe(*(ready(f"r{i}") for i in range(3)), empty=True)),
                         [MarkEmpty(False)])

    def test_left_clear(self) -> None:
        self.assertEqual(tail(observe(*(ready(f"r{i}") for i in range(3)))), [])

    def test_set_when_the_last_ready_vm_leaves(self) -> None:
        obs = observe(ready("r1"), pending("p1"), pending("p2"),
                      inventory=[seen("p1"), seen("p2")], reachable=[])
        self.assertEqual(plan(obs), [Forget("r1", "ready"), MarkEmpty(True)])

    def test_cleared_by_a_vm_made_ready(self) -> None:
        obs = observe(pending("p1"), pending("p2"), pending("p3"), reachable=["p2"],
                      empty=True)
        self.assertEqual(plan(obs), [Ready("p2", MINUTE), MarkEmpty(False)])

    def test_failed_inventory_leaves_it(self) -> None:
        self.assertEqual(plan(observe(failed=True)), [])


class OrderTests(SynchronousTestCase):
    VMS = (
        tracked("d2", "discovered"), tracked("d1", "discovered"),
        tracked("c2", "completed"), tracked("c1", "completed"),
        running("x2", out=100 * HOUR), running("x1", out=100 * HOUR),
        ready("r2", checked=None), ready("r1", checked=None),
        pending("p2"), pending("p1"),
    )
    EXPECTED: Sequence[Action] = (
        Ready("p1", MINUTE), Ready("p2", MINUTE), Check("r1"), Check("r2"),
        Complete("x1", "running", "lifetime"), Complete("x2", "running", "lifetime"),
        Destroy("c1", "completed"), Destroy("c2", "completed"),
        Destroy("d1", "discovered"), Destroy("d2", "discovered"),
        Discover("s1"), Discover("s2"), Clone(1), MarkEmpty(False),
    )

    def observe(self, vms: Sequence[TrackedVm]) -> Observation:
        inventory = [seen(vm.name) for vm in vms] + [seen("s2"), seen("s1")]
        return observe(*vms, inventory=inventory, slots=1, empty=True,
                       pool=with_pool(size=5))

    def test_states_in_order_names_sorted_refill_last(self) -> None:
        self.assertEqual(plan(self.observe(self.VMS)), list(self.EXPECTED))

    def test_whatever_order_redis_gave(self) -> None:
        for seed in range(20):
            vms = list(self.VMS)
            random.Random(seed).shuffle(vms)
            self.assertEqual(plan(self.observe(vms)), list(self.EXPECTED))


class IsQuietTests(SynchronousTestCase):
    def test_nothing_is_quiet(self) -> None:
        self.assertTrue(is_quiet([]))

    def test_checks_are_quiet(self) -> None:
        self.assertTrue(is_quiet([Check("r1"), Check("r2")]))

    def test_anything_else_is_not(self) -> None:
        for action in (Ready("p1", 1.0), Complete("r1", "ready", "unreachable"),
                       Discover("s1"), Destroy("c1", "completed"), Forget("r1", "ready"),
                       Clone(1), MarkEmpty(True), MarkEmpty(False)):
            self.assertFalse(is_quiet([Check("r1"), action]), action)

    def test_full_healthy_pool_is_quiet(self) -> None:
        obs = observe(ready("r1", checked=None), ready("r2"), ready("r3"), slots=10)
        self.assertEqual(plan(obs), [Check("r1")])
        self.assertTrue(is_quiet(plan(obs)))

    def test_booting_pool_without_slots_is_quiet(self) -> None:
        obs = observe(ready("r1"), pending("p1"), reachable=[], slots=0)
        self.assertTrue(is_quiet(plan(obs)))


class StatesAfterTests(SynchronousTestCase):
    def test_counts_after_the_actions(self) -> None:

        vms = [pending("p1"), pending("p2"), ready("r1"), ready("r2"),
               tracked("c1", "completed"), tracked("d1", "discovered")]
        actions: list[Action] = [
            Ready("p1", 30.0), Complete("r1", "ready", "powered off"), Forget("c1", "completed"),
            Destroy("d1", "discovered"), Discover("stray"), Clone(3)]
        self.assertEqual(dict(states_after(vms, actions)),
                         {"pending": 4, "ready": 2, "completed": 1, "discovered": 2})


class ShortOfSlotsTests(SynchronousTestCase):
    """Note [Waiting for a clone slot] in vmpoolerd/manager/clones.py."""

    def test_a_pool_wanting_more_than_the_slots_left_waits(self) -> None:
        for slots, short in ((0, True), (1, True), (POOL.size, False), (POOL.size + 5, False)):
            obs = observe(slots=slots)
            self.assertEqual(short_of_slots(obs, plan(obs)), short, slots)
