"""
The maintainer's loop: one step at a time, on an injected clock.

Note [Maintainer loop]: a loop never runs two steps at once.  After a step
in which something happened it runs again after ``minimum`` seconds; after
a quiet one the delay grows by ``decay`` up to ``maximum``.  A checkout
anywhere (any daemon sharing the Redis) publishes the pool's name on the
checkout channel; the maintainer then wakes its loop, which runs at once,
so that the replacement clone starts within a round trip or two; but a
loop's steps start at least ``WAKE_SPACING`` seconds apart, so that a
storm of checkouts costs each pool two cycles a second, not one per
checkout.  A wake during a step runs another right after it.  A step that
fails is logged by its owner and counts as quiet: the loop backs off and
never dies.

Note [Spread loops]: a manager starts every pool's loop in the same turn
of the reactor (the lease round hands it its pools at once), and fixed
delays would keep their cycles bunched: a thousand pools would cycle
together, every cycle waiting on the same Redis and the same threads, and
the daemon would be idle one second and saturated the next.  So each
delay is drawn within JITTER of its value (with the loop's ``rng``), and
the first step of a loop waits up to ``minimum``.  The bounds of the
Note above hold on average; tests that count steps on a fake clock pass
no ``rng`` and get the exact delays.
"""

from __future__ import annotations

import random
from typing import Awaitable, Callable, Iterable

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime

WAKE_SPACING = 0.5
JITTER = 0.2  # Note [Spread loops]: a delay is drawn within this share of its value


def next_delay(delay: float, quiet: bool, minimum: float, maximum: float,
               decay: float) -> float:
    """The next delay: back to ``minimum`` when something happened."""
    return min(delay * decay, maximum) if quiet else minimum


class Loop:
    """Runs ``step`` (which answers whether it was quiet) until stopped."""

    def __init__(self, clock: IReactorTime, step: Callable[[], Awaitable[bool]],
                 minimum: float, maximum: float, decay: float,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng
        self._step = step
        self._minimum, self._maximum, self._decay = minimum, maximum, decay
        self._delay = minimum
        self._call: IDelayedCall | None = None
        self._running = False
        self._again = False
        self._last_start = float("-inf")
        self._parked = False
        self._stopped = True
        self.current: Deferred[None] | None = None  # the step running, if any
        self.steps = 0

    def start(self) -> None:
        """Run steps, the first at once (or, started again while a step
        still runs, right after it)."""
        if not self._stopped:
            return
        self._stopped = False
        if self._running:
            self._again = True
        else:
            self._schedule(0 if self._rng is None else self._rng.uniform(0, self._minimum))

    def wake(self) -> None:
        """Run a step now (or right after the one running)."""
        if self._stopped:
            return
        self._delay = self._minimum
        self._parked = False
        if self._running:
            self._again = True
        elif self._call is not None:
            soon = self._soonest()
            if self._call.getTime() - self._clock.seconds() > soon:
                self._call.reset(soon)

    def park(self) -> None:
        """Wait ``maximum`` before the next step unless woken: the owner
        knows what will wake it (Note [Waiting for a clone slot])."""
        self._parked = True

    def stop(self) -> None:
        """No new step (the one running, ``current``, goes on)."""
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _soonest(self) -> float:
        """Seconds until a step may start (see WAKE_SPACING)."""
        return max(0.0, self._last_start + WAKE_SPACING - self._clock.seconds())

    def _schedule(self, delay: float) -> None:
        self._call = self._clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        self._running = True
        self._last_start = self._clock.seconds()
        self.current = ensureDeferred(self._guarded())

    async def _guarded(self) -> None:
        quiet = await self._step()
        self._running = False
        self.steps += 1
        if self._stopped:
            return
        self._delay = self._maximum if self._parked and not self._again else next_delay(
            self._delay, quiet and not self._again, self._minimum, self._maximum, self._decay)
        self._parked = False
        self._schedule(self._soonest() if self._again else self._spread(self._delay))
        self._again = False

    def _spread(self, delay: float) -> float:
        """``delay``, drawn within JITTER of itself (Note [Spread loops])."""
        if self._rng is None:
            return delay
        return delay * self._rng.uniform(1 - JITTER, 1 + JITTER)


async def finish(loop: Loop, work: Iterable[Deferred[None]], grace: float,
                 clock: IReactorTime) -> bool:
    """Stop ``loop`` and give its running step and ``work`` ``grace``
    seconds to end; whether they did."""
    loop.stop()
    pending = [d for d in [loop.current, *work] if d is not None and not d.called]
    if not pending:
        return True
    wait = gatherResults(pending, consumeErrors=True)
    wait.addTimeout(grace, clock)
    try:
        await wait
    except Exception:
        return False
    return True
