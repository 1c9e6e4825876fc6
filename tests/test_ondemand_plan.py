"""The on-demand planner (vmpoolerd.manager.ondemand_plan): pure."""

from __future__ import annotations

import dataclasses
import datetime

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.manager import failures
from vmpoolerd.manager.failures import VmFailure
from vmpoolerd.manager.ondemand_plan import (
    MAX_FAILURES, CloneFor, End, HandOut, OdObservation, VmFailed, VmReady, plan, to_probe,
)
from vmpoolerd.store.ondemand import FAILED, PENDING, OdRequest, OdVm, Wanted
from vmpoolerd.vsphere.types import VmState

NOW = 1_700_000_000.0


def booted(name: str) -> VmState:
    return VmState(name, "poweredOn", name, "10.0.0.1",
                   datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc))


def request(*, pending: tuple[OdVm, ...] = (), ready: tuple[OdVm, ...] = (),
            handed: tuple[OdVm, ...] = (), failures_: int = 0, status: str = PENDING,
            age: float = 10) -> OdRequest:
    return OdRequest("r1", status, (Wanted("deb", "debian", 2), Wanted("cent", "centos", 1)),
                     NOW - age, failures_, "clone failed: no such template" if failures_ else "",
                     pending, ready, handed, {})


def observe(req: OdRequest, inventory: tuple[VmState, ...] = (), cloning: tuple[str, ...] = (),
            reachable: tuple[str, ...] = (), probing: bool = True) -> OdObservation:
    return OdObservation(req, NOW, 300.0, {"debian": 60.0, "centos": 60.0},
                         {vm.name: vm for vm in inventory}, frozenset(cloning), probing,
                         frozenset(reachable), {})


class OndemandPlanTests(SynchronousTestCase):
    def test_a_new_request_clones_what_it_asks_for(self) -> None:
        self.assertEqual(plan(observe(request())),
                         [CloneFor("cent", "centos", 1), CloneFor("deb", "debian", 2)])

    def test_booted_and_reachable_vms_become_ready_and_the_whole_is_handed_out(self) -> None:
        req = request(pending=(OdVm("d2", "debian", "deb", NOW - 5),),
                      ready=(OdVm("d1", "debian", "deb", None), OdVm("c1", "centos", "cent", None)))
        obs = observe(req, inventory=(booted("d2"),), reachable=("d2",))
        self.assertEqual(to_probe(obs), frozenset({"d2"}))
        self.assertEqual(plan(obs), [VmReady("d2", "debian"), HandOut()])
        # Not reachable yet: it waits, and nothing more is cloned.
        self.assertEqual(plan(dataclasses.replace(obs, reachable=frozenset())), [])

    def test_a_lost_or_late_vm_fails_and_is_replaced(self) -> None:
        req = request(pending=(OdVm("d1", "debian", "deb", NOW - 5),
                               OdVm("d2", "debian", "deb", NOW - 90)),
                      ready=(OdVm("c1", "centos", "cent", None),))
        actions = plan(observe(req, inventory=(booted("d2"),)))
        self.assertEqual([type(a) for a in actions], [VmFailed, VmFailed, CloneFor])
        lost, late, clone = actions
        assert isinstance(lost, VmFailed) and isinstance(late, VmFailed)
        self.assertEqual(lost.failure.kind, failures.CLONE)
        self.assertEqual(late.failure, VmFailure(failures.BOOT_TIMEOUT,
                                                 "not ready after 1 minutes"))
        self.assertEqual(clone, CloneFor("deb", "debian", 2))

    def test_a_clone_in_flight_is_waited_for(self) -> None:
        req = request(pending=(OdVm("d1", "debian", "deb", NOW - 5),))
        self.assertEqual(plan(observe(req, cloning=("d1",))),
                         [CloneFor("cent", "centos", 1), CloneFor("deb", "debian", 1)])

    def test_too_many_failures_end_it_with_the_last_reason(self) -> None:
        [end] = plan(observe(request(failures_=MAX_FAILURES)))
        assert isinstance(end, End)
        self.assertIn("no such template", end.reason)

    def test_past_its_ttl_it_ends(self) -> None:
        [end] = plan(observe(request(age=301)))
        assert isinstance(end, End)
        self.assertIn("ondemand_request_ttl", end.reason)

    def test_an_ended_request_is_left_alone(self) -> None:
        self.assertEqual(plan(observe(request(status=FAILED, age=1000))), [])

    def test_vms_vmpooler_3_handed_out_count_and_the_rest_is_made(self) -> None:
        """A request 3.x was filling at a switch-over (Note [On-demand
        records]): what it handed out is kept, only the rest is cloned."""
        req = request(handed=(OdVm("d1", "debian", "deb", None),))
        self.assertEqual(plan(observe(req)), [CloneFor("cent", "centos", 1),
                                              CloneFor("deb", "debian", 1)])
        req = request(handed=(OdVm("d1", "debian", "deb", None),),
                      ready=(OdVm("d2", "debian", "deb", None), OdVm("c1", "centos", "cent", None)))
        self.assertEqual(plan(observe(req)), [HandOut()])

    def test_entries_of_one_pool_under_two_aliases_are_counted_apart(self) -> None:
        req = dataclasses.replace(request(ready=(OdVm("d1", "debian", "deb", None),)),
                                  wanted=(Wanted("deb", "debian", 1), Wanted("d7", "debian", 1)))
        self.assertEqual(plan(observe(req)), [CloneFor("d7", "debian", 1)])

    def test_surplus_pending_vms_are_waited_for_before_the_hand_out(self) -> None:
        req = request(ready=(OdVm("d1", "debian", "deb", None), OdVm("d2", "debian", "deb", None),
                             OdVm("c1", "centos", "cent", None)),
                      pending=(OdVm("d3", "debian", "deb", NOW - 5),))
        self.assertEqual(plan(observe(req, cloning=("d3",))), [])
