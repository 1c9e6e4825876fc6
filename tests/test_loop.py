"""The maintainer's loop, on a clock the tests drive."""

from __future__ import annotations

import random

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.manager.loop import JITTER, WAKE_SPACING, Loop, next_delay


class LoopTests(SynchronousTestCase):
    def test_next_delay(self) -> None:
        self.assertEqual(next_delay(5, True, 5, 60, 2.0), 10)
        self.assertEqual(next_delay(40, True, 5, 60, 2.0), 60)
        self.assertEqual(next_delay(60, True, 5, 60, 2.0), 60)
        self.assertEqual(next_delay(60, False, 5, 60, 2.0), 5)

    def setUp(self) -> None:
        self.clock = Clock()
        self.steps: list[Deferred[bool]] = []
        self.loop = Loop(self.clock, self.step, minimum=1, maximum=8, decay=2)
        self.addCleanup(self.loop.stop)

    def step(self) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.steps.append(d)
        return d

    def run_steps(self, quiet: bool, delays: list[float]) -> None:
        """Answer each step ``quiet``; the next starts after each of ``delays``."""
        for delay in delays:
            self.steps[-1].callback(quiet)
            count = len(self.steps)
            self.clock.advance(delay - 0.001)
            self.assertEqual(len(self.steps), count, f"started before {delay}")
            self.clock.advance(0.001)
            self.assertEqual(len(self.steps), count + 1, f"not started after {delay}")

    def test_quiet_steps_back_off_and_busy_ones_do_not(self) -> None:
        self.loop.start()
        self.clock.advance(0)
        self.run_steps(True, [2, 4, 8, 8])
        self.run_steps(False, [1, 1])
        self.assertEqual(self.loop.steps, 6)

    def test_a_parked_loop_waits_its_longest_unless_woken(self) -> None:
        self.loop.start()
        self.clock.advance(0)
        self.loop.park()  # during the step: it did something, yet waits 8 s
        self.run_steps(False, [8])
        self.run_steps(False, [1])  # parked for one step only
        self.loop.park()
        self.steps[-1].callback(False)
        self.clock.advance(WAKE_SPACING)
        count = len(self.steps)
        self.loop.wake()  # a slot freed: at once
        self.clock.advance(0)
        self.assertEqual(len(self.steps), count + 1)

    def test_a_wake_brings_the_next_step_forward_but_spaced(self) -> None:
        self.loop.start()
        self.clock.advance(0)
        self.run_steps(True, [2, 4])
        self.steps[-1].callback(True)  # the next in 8 s
        self.clock.advance(0.1)
        self.loop.wake()
        self.assertEqual(len(self.steps), 3)  # at most one step per WAKE_SPACING
        self.clock.advance(WAKE_SPACING - 0.1)
        self.assertEqual(len(self.steps), 4)

    def test_a_wake_during_a_step_runs_another_after_it(self) -> None:
        self.loop.start()
        self.clock.advance(0)
        self.loop.wake()
        self.clock.advance(WAKE_SPACING)
        self.steps[-1].callback(True)  # quiet, but woken meanwhile
        self.assertEqual(len(self.steps), 1)
        self.clock.advance(0)
        self.assertEqual(len(self.steps), 2)

    def test_stopped_no_step_and_no_wake(self) -> None:
        self.loop.start()
        self.loop.stop()
        self.loop.wake()
        self.clock.advance(10)
        self.assertEqual(self.steps, [])


class SpreadTests(SynchronousTestCase):
    """Note [Spread loops]."""

    def test_loops_started_together_spread_their_steps(self) -> None:
        clock, rng = Clock(), random.Random(7)
        starts: list[list[float]] = []

        def loop_of(times: list[float]) -> Loop:
            async def step() -> bool:
                times.append(clock.seconds())
                return True
            return Loop(clock, step, minimum=5, maximum=60, decay=2, rng=rng)

        loops = []
        for _ in range(50):
            starts.append([])
            loops.append(loop_of(starts[-1]))
            loops[-1].start()
        for _ in range(600):
            clock.advance(1)
        for loop in loops:
            loop.stop()
        firsts = sorted(times[0] for times in starts)
        self.assertTrue(0 <= firsts[0] and firsts[-1] <= 5)
        self.assertGreater(len(set(firsts)), 3, "first steps not spread over [0, 5]")
        for times in starts:
            gaps = [b - a for a, b in zip(times, times[1:])]
            # Each delay within JITTER of the exact one (5, 10, 20, 40, 60, 60...),
            # give or take the clock's whole-second steps.
            exact = [min(5 * 2 ** (i + 1), 60) for i in range(len(gaps))]
            for gap, want in zip(gaps, exact):
                self.assertTrue(want * (1 - JITTER) - 1 <= gap <= want * (1 + JITTER) + 1,
                                (gap, want))
        # Step times of different loops differ: no two loops in lockstep.
        self.assertEqual(len({tuple(times[:6]) for times in starts}), len(starts))
