"""
Coalescing: requests that arrive together go out together.

Note [Coalesced checkouts]: a checkout is one Lua script call, and a Redis
round trip costs the daemon far more CPU than the script costs Redis (the
reactor wakes up, txredisapi parses, Deferreds fire: ~100 us here).  So
checkouts are batched: a request waits only for the end of the current
reactor iteration, so that the other requests read in that iteration join
it.  At most ``in_flight`` batches are at Redis at once (two: one is
gathered and sent while Redis runs the other); requests that arrive while
that many are in flight go out together as soon as one returns.  Nothing
waits for a timer with a delay: an idle daemon answers a checkout after
one round trip.  The script treats each request of a batch on its own
(all or nothing each).

A request cancelled by its caller stays in its batch (it may have gone
out already): its result, when it comes, is handed to ``abandoned``
instead, for the caller's owner to undo.

A batch's cost to the daemon is nearly all the Redis round trip, not the
script; how the checkout's time was measured, and what was tried, is in
the README's Performance section.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Generic, Sequence, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]],
                 clock: IReactorTime, abandoned: Callable[[R], object] = lambda _: None,
                 max_batch: int = 200, in_flight: int = 2) -> None:
        self._run = run
        self._abandoned = abandoned
        self._clock = clock
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[tuple[T, Deferred[R]]] = []
        self._busy = 0
        self._flush: IDelayedCall | None = None

    def submit(self, item: T) -> Deferred[R]:
        # Cancelled, it fails with CancelledError and stays in its batch.
        d: Deferred[R] = Deferred()
        self._waiting.append((item, d))
        if self._busy < self._in_flight and self._flush is None:
            self._flush = self._clock.callLater(0, self._next)
        return d

    def _next(self) -> None:
        self._flush = None
        while self._waiting and self._busy < self._in_flight:
            batch, self._waiting = (self._waiting[:self._max_batch],
                                    self._waiting[self._max_batch:])
            self._busy += 1
            ensureDeferred(self._call(batch)).addBoth(self._done)

    def _done(self, _: object) -> None:
        self._busy -= 1
        if self._flush is None:
            self._next()

    async def _call(self, batch: list[tuple[T, Deferred[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as e:
            for _, d in batch:
                if not d.called:
                    d.errback(e)
            return
        for (_, d), result in zip(batch, results):
            if d.called:  # cancelled
                self._abandoned(result)
            else:
                d.callback(result)

