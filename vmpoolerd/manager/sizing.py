"""
One pool's demand-driven size (Note [Sizing from demand] in sizing_plan.py): at
most once every ``EVERY`` seconds, its maintainer folds the checkouts
counted in Redis into the pool's history, saves it with what it decided
(shown by ``/status``, the dashboard and ``/metrics`` of every daemon),
and keeps the size for its plans.

Every pool's history is kept, whatever its policy: the hit rate achieved
is shown for all.  Only a pool with ``size_policy: demand`` gets a size
from it.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..config import PoolConfig
from ..store.demand import Demand
from ..timefmt import hour_of, utc_offset
from . import sizing_plan as sizing

# Seconds between two looks at the demand.
EVERY = 60.0
# The replenish time assumed until one is measured.
DEFAULT_REPLENISH = 300.0
# Seconds looked ahead beyond the replenish time, for the pool to be grown
# in time for a known peak: an hour, so that a pool is at its peak size
# before the peak's hour begins.
MARGIN = 3600.0


class PoolSizer:
    def __init__(self, pool: PoolConfig, store: Demand, clock: IReactorTime) -> None:
        self.pool = pool
        self._store = store
        self._clock = clock
        self._replenished: list[float] = []
        self._last: float | None = None
        self.sizing: sizing.Sizing | None = None
        self.achieved: float | None = None

    def replenished(self, seconds: float) -> None:
        """A VM of the pool became ready ``seconds`` after its clone started."""
        self._replenished.append(seconds)

    @property
    def size(self) -> int | None:
        """The size the policy sets; None: the pool's own."""
        return self.sizing.size if self.sizing is not None else None

    async def update(self) -> None:
        """Fold, decide and save, unless done less than EVERY seconds ago."""
        now = self._clock.seconds()
        if self._last is not None and now - self._last < EVERY:
            return
        self._last = now
        offset = utc_offset(now)
        hour = hour_of(now, offset)
        counts = await self._store.read(self.pool.name)
        saved = counts.model if isinstance(counts.model, dict) else {}
        measured, self._replenished = self._replenished, []
        history = sizing.absorb(sizing.History.from_json(saved.get("history")),
                                counts.asked, hour, measured)
        self.achieved = sizing.achieved(counts.asked, counts.hit, hour)
        pool = self.pool
        self.sizing = sizing.decide(
            sizing.counting(history, counts.asked, hour), now, offset,
            history.replenish or DEFAULT_REPLENISH, pool.hit_rate,
            min(pool.min_size, pool.size), pool.size, MARGIN, self.achieved,
        ) if pool.size_policy == "demand" else None
        shown = {"policy": pool.size_policy, "achieved_hit_rate": self.achieved}
        if self.sizing is not None:
            shown.update(size=self.sizing.size, rate_per_hour=round(self.sizing.rate, 2),
                         replenish_seconds=round(self.sizing.replenish, 1),
                         expected_hit_rate=round(self.sizing.expected_hits, 4),
                         hit_rate=pool.hit_rate, min_size=pool.min_size, max_size=pool.size)
        if not await self._store.save(pool.name, counts, {"history": history.to_json()},
                                             shown, hour - sizing.WINDOW_HOURS + 1):
            # Another manager saved first (it folded the same counts):
            # keep the measurements for the next look.
            self._replenished = measured + self._replenished
            self._last = None
