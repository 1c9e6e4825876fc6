"""
Coalescing: requests that arrive while a batch is in flight go out
together as the next batch.

Note [Coalesced checkouts]: a checkout is one Lua script call.  Under load,
one call per request makes Redis round trips the bottleneck; instead the
first request goes out at once, alone, and every request that arrives
while it is in flight waits and goes out with the others in the next call.
Nothing waits for a timer: an idle daemon answers each checkout after one
round trip, a busy one amortises the round trip over the batch.  The
script treats each request of a batch on its own (all or nothing each).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Generic, Sequence, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]],
                 max_batch: int = 200, in_flight: int = 1) -> None:
        self._run = run
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[tuple[T, Deferred[R]]] = []
        self._busy = 0

    def submit(self, item: T) -> Deferred[R]:
        d: Deferred[R] = Deferred()
        self._waiting.append((item, d))
        if self._busy < self._in_flight:
            self._next()
        return d

    def _next(self) -> None:
        batch, self._waiting = (self._waiting[:self._max_batch],
                                self._waiting[self._max_batch:])
        if not batch:
            return
        self._busy += 1
        call = ensureDeferred(self._call(batch))
        call.addBoth(self._done)

    def _done(self, _: object) -> None:
        self._busy -= 1
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
