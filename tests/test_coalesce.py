"""Coalescing of checkouts that arrive together or while others are in flight."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.coalesce import Coalescer


class CoalescerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.batches: list[list[int]] = []
        self.pending: list[tuple[list[int], Deferred[list[int]]]] = []

        def run(batch: list[int]) -> Deferred[list[int]]:
            self.batches.append(batch)
            d: Deferred[list[int]] = Deferred()
            self.pending.append((batch, d))
            return d

        self.abandoned: list[int] = []
        self.coalescer: Coalescer[int, int] = Coalescer(run, self.clock, self.abandoned.append,
                                                        max_batch=3)

    def finish(self, index: int = 0) -> None:
        """Redis answers the ``index``-th batch still in flight."""
        batch, d = self.pending.pop(index)
        d.callback([x * 10 for x in batch])

    def test_goes_at_the_end_of_the_reactor_iteration(self) -> None:
        d = self.coalescer.submit(1)
        self.assertEqual(self.batches, [])
        self.clock.advance(0)
        self.assertEqual(self.batches, [[1]])
        self.finish()
        self.assertEqual(self.successResultOf(d), 10)

    def test_arrivals_of_one_iteration_go_together(self) -> None:
        ds = [self.coalescer.submit(n) for n in (1, 2, 3, 4)]
        self.clock.advance(0)
        # max_batch 3; with two batches in flight at most, the rest go at once.
        self.assertEqual(self.batches, [[1, 2, 3], [4]])
        self.finish(1)
        self.assertEqual(self.successResultOf(ds[3]), 40)
        self.assertNoResult(ds[0])
        self.finish(0)
        self.assertEqual([self.successResultOf(d) for d in ds[:3]], [10, 20, 30])

    def test_at_most_two_in_flight(self) -> None:
        first = self.coalescer.submit(1)
        self.clock.advance(0)
        second = self.coalescer.submit(2)
        self.clock.advance(0)
        later = [self.coalescer.submit(n) for n in (3, 4, 5, 6)]
        self.clock.advance(0)
        self.assertEqual(self.batches, [[1], [2]])
        self.finish(0)
        self.assertEqual(self.successResultOf(first), 10)
        self.assertEqual(self.batches[-1], [3, 4, 5])
        self.finish(0)
        self.assertEqual(self.successResultOf(second), 20)
        self.assertEqual(self.batches[-1], [6])
        self.finish(0)
        self.finish(0)
        self.assertEqual([self.successResultOf(d) for d in later], [30, 40, 50, 60])
        self.assertEqual(self.pending, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_failed_call_fails_its_batch_only(self) -> None:
        first = self.coalescer.submit(1)
        self.clock.advance(0)
        second = self.coalescer.submit(2)
        self.clock.advance(0)
        self.pending.pop(0)[1].errback(RuntimeError("redis went away"))
        self.failureResultOf(first, RuntimeError)
        self.finish(0)
        self.assertEqual(self.successResultOf(second), 20)

    def test_a_cancelled_request_stays_in_its_batch_and_its_result_is_abandoned(self) -> None:
        kept, cancelled = self.coalescer.submit(1), self.coalescer.submit(2)
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.clock.advance(0)
        self.assertEqual(self.batches, [[1, 2]])
        self.finish()
        self.assertEqual(self.successResultOf(kept), 10)
        self.assertEqual(self.abandoned, [20])

    def test_a_cancelled_request_of_a_failed_batch_is_failed_once(self) -> None:
        cancelled = self.coalescer.submit(1)
        cancelled.cancel()
        self.clock.advance(0)
        self.pending.pop(0)[1].errback(RuntimeError("redis went away"))
        self.failureResultOf(cancelled, CancelledError)
        self.assertEqual(self.abandoned, [])
