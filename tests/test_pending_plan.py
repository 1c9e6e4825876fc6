"""
A pending VM judged in each state (vmpoolerd.manager.pending_plan), through
both planners that ask it: a pool's (pool_plan) and an on-demand request's
(ondemand_plan).  One mixin, run for each (Note [Judging a pending VM]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.manager import ondemand_plan, pool_plan
from vmpoolerd.manager.pending_plan import (
    LOST, POWERED_OFF, TIMEOUT, Booted, Failed, Pending, judge,
)
from vmpoolerd.store.ondemand import OdVm
from vmpoolerd.vsphere.types import VmState

from . import test_ondemand_plan as od
from . import test_pool_plan as pools

READY, WAITS, FAILED = "ready", "waits", "failed"

if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class PendingStates(_Base):
    """Each pending state, for a planner: ``outcome`` says what it made
    of one pending VM named "p1" (READY, WAITS or FAILED)."""

    timeout: float  # the planner's timeout for p1's pool, in seconds

    def outcome(self, state: VmState | None, age: float, cloning: bool = False,
                reachable: bool = True) -> str:
        raise NotImplementedError

    def test_booted_and_reachable_is_ready(self) -> None:
        self.assertEqual(self.outcome(pools.seen("p1"), 60.0), READY)

    def test_hostname_does_not_matter(self) -> None:
        """A template that never reports a hostname (or reports another one)
        still fills its pool: only the port counts."""
        for hostname in (None, "", "localhost"):
            self.assertEqual(self.outcome(pools.seen("p1", hostname=hostname), 60.0), READY,
                             hostname)

    def test_still_booting_waits(self) -> None:
        self.assertEqual(self.outcome(pools.seen("p1"), 60.0, reachable=False), WAITS)

    def test_timed_out_fails(self) -> None:
        self.assertEqual(self.outcome(pools.seen("p1"), self.timeout + 1, reachable=False),
                         FAILED)
        self.assertEqual(self.outcome(None, self.timeout + 1, cloning=True), FAILED)

    def test_lost_gone_from_vsphere_fails(self) -> None:
        self.assertEqual(self.outcome(None, 60.0), FAILED)

    def test_powered_off_with_no_clone_in_flight_fails(self) -> None:
        self.assertEqual(self.outcome(pools.seen("p1", power="poweredOff"), 60.0), FAILED)

    def test_clone_in_flight_waits(self) -> None:
        self.assertEqual(self.outcome(None, 60.0, cloning=True), WAITS)
        self.assertEqual(self.outcome(pools.seen("p1", power="poweredOff", hostname=None),
                                      60.0, cloning=True), WAITS)


class PoolPendingTests(PendingStates, SynchronousTestCase):
    timeout = 60.0 * pools.SERVICE.timeout_minutes

    def outcome(self, state: VmState | None, age: float, cloning: bool = False,
                reachable: bool = True) -> str:
        obs = pools.observe(pools.pending("p1", age), inventory=[] if state is None else [state],
                            cloning=["p1"] if cloning else [],
                            reachable=["p1"] if reachable else [])
        match pools.transitions(obs):
            case []:
                return WAITS
            case [pool_plan.Ready("p1")]:
                return READY
            case [pool_plan.Complete("p1", pool_plan.PENDING)]:
                return FAILED
        raise AssertionError(pools.transitions(obs))


class OndemandPendingTests(PendingStates, SynchronousTestCase):
    timeout = 60.0  # test_ondemand_plan's pools'

    def outcome(self, state: VmState | None, age: float, cloning: bool = False,
                reachable: bool = True) -> str:
        req = od.request(pending=(OdVm("p1", "debian", "deb", od.NOW - age),))
        obs = od.observe(req, inventory=() if state is None else (state,),
                         cloning=("p1",) if cloning else (),
                         reachable=("p1",) if reachable else ())
        vm = [a for a in ondemand_plan.plan(obs)
              if isinstance(a, (ondemand_plan.VmReady, ondemand_plan.VmFailed))]
        match vm:
            case []:
                return WAITS
            case [ondemand_plan.VmReady("p1", "debian")]:
                return READY
            case [ondemand_plan.VmFailed("p1", "debian")]:
                return FAILED
        raise AssertionError(vm)


class JudgeTests(SynchronousTestCase):
    """The verdicts' reasons, which the pool's log shows."""

    def judge(self, state: VmState | None, age: float, reachable: bool = True) -> object:
        return judge(Pending("p1", pools.NOW - age, state, False, reachable, None),
                     pools.NOW, 900.0)

    def test_reasons(self) -> None:
        self.assertEqual(self.judge(pools.seen("p1", hostname=None), 30.0), Booted(30.0))
        self.assertIsNone(self.judge(pools.seen("p1"), 30.0, reachable=False))
        for state, age, reason in ((pools.seen("p1"), 901.0, TIMEOUT), (None, 30.0, LOST),
                                   (pools.seen("p1", power="poweredOff"), 30.0, POWERED_OFF)):
            verdict = self.judge(state, age, reachable=False)
            assert isinstance(verdict, Failed), verdict
            self.assertEqual(verdict.reason, reason)
