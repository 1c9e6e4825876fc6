"""
Answers reused while they are recent.

Note [Status once a second]: ``/status`` reports on every pool, so its
cost grows with the pools (at a thousand, tens of milliseconds of Redis's
time), and dashboards, monitors and scripts poll it.  So one daemon reads
it at most once a second: requests that come while it is read wait for
that read, and those that come within a second after it get its answer.
In the second after that, a request gets that answer too, and starts a
fresh read for those after it (nobody waits for the read a poller's
next request would otherwise pay for: at a thousand pools it was the
95th percentile's 100-150 ms).  An answer is never reused once this
daemon's API has changed something ``/status`` shows
(``ApiStore.changes`` moved since the read began): a client sees its own
checkout at once.  What other daemons change shows within two seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Read(Generic[V]):
    began: float
    version: int
    waiting: list[Deferred[V]] = field(default_factory=list)


class Recent(Generic[K, V]):
    """Each key's answer, read again once ``max_age`` seconds old (served
    for another ``max_age`` while read), or at once when ``version()`` has
    moved (Note [Status once a second])."""

    def __init__(self, seconds: Callable[[], float], version: Callable[[], int],
                 max_age: float) -> None:
        self._seconds = seconds
        self._version = version
        self._max_age = max_age
        self._answers: dict[K, tuple[_Read[V], V]] = {}  # the last read done, and its answer
        self._reading: dict[K, _Read[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        version = self._version()
        answer = self._answers.get(key)
        if answer is not None and answer[0].version == version:
            age = self._seconds() - answer[0].began
            if age < self._max_age:
                return answer[1]
            if age < 2 * self._max_age:
                if key not in self._reading:  # for those after: its failure is theirs
                    ensureDeferred(self._read(key, read)).addErrback(lambda _: None)
                return answer[1]
        reading = self._reading.get(key)
        if reading is not None and reading.version == version:
            waiter: Deferred[V] = Deferred()
            reading.waiting.append(waiter)
            return await waiter
        return await self._read(key, read)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        this: _Read[V] = _Read(self._seconds(), self._version())
        self._reading[key] = this
        try:
            value = await read()
        except BaseException as e:
            for waiter in this.waiting:
                waiter.errback(e)
            raise
        finally:
            if self._reading.get(key) is this:
                del self._reading[key]
        if this.version == self._version():  # else changed while read: not reused
            self._answers[key] = (this, value)
        for waiter in this.waiting:
            waiter.callback(value)
        return value
