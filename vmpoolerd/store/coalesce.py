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

Under ``make bench`` (8 connections) the batches hold three or four
checkouts: the connections fall into two groups that take turns, whatever
``in_flight`` is (1, 2 and 3 measured alike), and waiting longer to merge
the groups would leave the daemon idle while Redis runs the script.  The
daemon spends about 1.5 times the bare handler's CPU per request (~170 us
against ~115), and nearly all of the difference is the Redis round trip:
before the two changes below, the daemon spent ~180 us and one whose
batches were answered without Redis ~133 us.  A
faster script does not change it (one that only echoes its input measured
alike): the cost is the daemon's side of the trip.  Measured with ``python
-m bench.ab`` (source trees side by side), these were worth a few us each
at most: hiredis's parser (kept), a coroutine-free store and coalescer, no
per-call timeout, no PUBLISH of the wake-up, no in-flight count, no
metrics, the handler as chained Deferreds, larger collector thresholds,
SPOP without a count.  Two larger shares were found and taken: each Redis
command is sent as it is made, not on the reactor's next turn (the
protocol in store.py: rate +7-11%), and idle connections are closed by a
sweep, not by Twisted's timer re-armed for every request (Note [Idle
connections] in web.py: ~4-8 us).  Sending each HTTP answer at once as
well cost ~10 us less CPU but lowered the rate (5,190/s against 5,460/s in
the same run), so it was not kept.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Generic, Sequence, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]],
                 clock: IReactorTime, max_batch: int = 200, in_flight: int = 2) -> None:
        self._run = run
        self._clock = clock
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[tuple[T, Deferred[R]]] = []
        self._busy = 0
        self._flush: IDelayedCall | None = None

    def submit(self, item: T) -> Deferred[R]:
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
                d.errback(e)
            return
        for (_, d), result in zip(batch, results):
            d.callback(result)
