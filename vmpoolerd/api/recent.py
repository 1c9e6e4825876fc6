"""
Answers reused while they are recent.

Note [Status once a second]: ``/status`` reports on every pool, so its
cost grows with the pools (at a thousand, tens of milliseconds of Redis's
time), and dashboards, monitors and scripts poll it.  So one daemon reads
it at most once a second: requests that come while it is read wait for
that read, and those that come within a second after it get its answer.
An answer is never reused once this daemon's API has changed something
``/status`` shows (``ApiStore.changes`` moved since the read began): a
client sees its own checkout at once.  What other daemons change shows
within the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from twisted.internet.defer import Deferred

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Read(Generic[V]):
    began: float
    version: int
    value: V | None = None
    done: bool = False
    waiting: list[Deferred[V]] = field(default_factory=list)


class Recent(Generic[K, V]):
    """Each key's answer, read again once ``max_age`` seconds old or once
    ``version()`` has moved (Note [Status once a second])."""

    def __init__(self, seconds: Callable[[], float], version: Callable[[], int],
                 max_age: float) -> None:
        self._seconds = seconds
        self._version = version
        self._max_age = max_age
        self._reads: dict[K, _Read[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        last = self._reads.get(key)
        if last is not None and last.version == self._version():
            if not last.done:
                waiter: Deferred[V] = Deferred()
                last.waiting.append(waiter)
                return await waiter
            if self._seconds() - last.began < self._max_age:
                return last.value  # type: ignore[return-value]
        return await self._read(key, read)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        this: _Read[V] = _Read(self._seconds(), self._version())
        self._reads[key] = this
        try:
            value = await read()
        except BaseException as e:
            if self._reads.get(key) is this:
                del self._reads[key]  # a failure is not reused
            for waiter in this.waiting:
                waiter.errback(e)
            raise
        this.value, this.done = value, True
        if this.version != self._version():
            this.version = -1  # changed while read: not reused
        for waiter in this.waiting:
            waiter.callback(value)
        return value
