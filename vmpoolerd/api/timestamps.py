"""The time as the API writes it."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..timefmt import format_time, local_date


class Timestamps:
    """The time as the API writes it: whole seconds, each formatted once
    (and its day, once)."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._stamp = (-1, "")
        self._day = (-1, "")

    def seconds(self) -> float:
        return self._clock.seconds()

    def now(self) -> str:
        second = int(self._clock.seconds())
        if second != self._stamp[0]:
            self._stamp = (second, format_time(second))
        return self._stamp[1]

    def today(self) -> str:
        second = int(self._clock.seconds())
        if second != self._day[0]:
            self._day = (second, local_date(second).isoformat())
        return self._day[1]
