"""Coalescing of checkouts that arrive while one is in flight."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.coalesce import Coalescer


class CoalescerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.batches: list[list[int]] = []
        self.pending: list[Deferred[list[int]]] = []

        def run(batch: list[int]) -> Deferred[list[int]]:
            self.batches.append(batch)
            d: Deferred[list[int]] = Deferred()
            self.pending.append(d)
            return d

        self.coalescer: Coalescer[int, int] = Coalescer(run, max_batch=3)

    def finish(self) -> None:
        batch, d = self.batches[len(self.batches) - 1], self.pending.pop(0)
        d.callback([x * 10 for x in batch])

    def test_alone_goes_at_once(self) -> None:
        d = self.coalescer.submit(1)
        self.assertEqual(self.batches, [[1]])
        self.finish()
        self.assertEqual(self.successResultOf(d), 10)

    def test_arrivals_during_a_call_go_together(self) -> None:
        first = self.coalescer.submit(1)
        rest = [self.coalescer.submit(n) for n in (2, 3, 4, 5)]
        self.assertEqual(self.batches, [[1]])
        self.finish()
        self.assertEqual(self.successResultOf(first), 10)
        self.assertEqual(self.batches, [[1], [2, 3, 4]])
        self.assertNoResult(rest[0])
        self.finish()
        self.assertEqual([self.successResultOf(d) for d in rest[:3]], [20, 30, 40])
        self.assertEqual(self.batches[-1], [5])
        self.finish()
        self.assertEqual(self.successResultOf(rest[3]), 50)
        self.assertEqual(self.pending, [])

    def test_a_failed_call_fails_its_batch_only(self) -> None:
        first = self.coalescer.submit(1)
        second = self.coalescer.submit(2)
        self.pending.pop(0).errback(RuntimeError("redis went away"))
        self.failureResultOf(first, RuntimeError)
        self.assertEqual(self.batches, [[1], [2]])
        self.finish()
        self.assertEqual(self.successResultOf(second), 20)
