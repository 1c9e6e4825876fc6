"""
A clock that runs ``speed`` times faster than the reactor's: what the
sizing benchmark gives the pool manager so that a week passes in minutes.
The vSphere simulator, Redis and the probes keep the real clock; a clone
that takes 0.3 s of real time thus takes 0.3 x ``speed`` seconds of the
manager's.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from zope.interface import implementer


@implementer(IDelayedCall)
class _Call:
    def __init__(self, clock: "Accelerated", call: DelayedCall) -> None:
        self._clock, self._call = clock, call

    def getTime(self) -> float:
        return self._clock.scaled(self._call.getTime())

    def cancel(self) -> None:
        self._call.cancel()

    def delay(self, secondsLater: float) -> None:
        self._call.delay(secondsLater / self._clock.speed)

    def reset(self, secondsFromNow: float) -> None:
        self._call.reset(secondsFromNow / self._clock.speed)

    def active(self) -> bool:
        return bool(self._call.active())


@implementer(IReactorTime, IReactorTCP)
class Accelerated:
    """Time, sped up; everything else (connecting, resolving) is the
    reactor's own."""

    def __init__(self, reactor: Any, speed: float, start: float) -> None:
        self._reactor = reactor
        self.speed = speed
        self._start = start
        self._real_start = reactor.seconds()

    def scaled(self, real: float) -> float:
        return self._start + (real - self._real_start) * self.speed

    def seconds(self) -> float:
        return self.scaled(self._reactor.seconds())

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> IDelayedCall:
        return _Call(self, self._reactor.callLater(max(delay, 0.0) / self.speed, callable,
                                                   *args, **kw))

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return [_Call(self, call) for call in self._reactor.getDelayedCalls()]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)
