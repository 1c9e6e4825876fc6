"""
The dashboard's side of Redis: each pool's ready and running counts, and
the history sampled from them (Note [Dashboard history] in
``lua/dashboard_sample.lua``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from .scripts import Scripts

HORIZON = 3600  # seconds of history shown and kept
TTL = 2 * HORIZON  # a pool's history expires this long after its last sample


@dataclass(frozen=True)
class PoolSample:
    ready: int
    running: int
    history: list[list[int]] | None  # [epoch, ready, running], oldest first


class DashboardStore(Scripts):
    """The dashboard's side of Redis: counts, and the sampled history."""

    async def sample(self, pools: Sequence[str], now: float, interval: float) -> int:
        """
        Record ``[now, ready, running]`` for each pool; how many were
        recorded (none if any daemon sampled in the last half ``interval``).
        """
        if not pools:
            return 0
        return int(await self._script(
            "dashboard_sample", now=int(now), horizon=HORIZON, ttl=TTL, gap=interval / 2,
            pools=pools))

    async def read(self, pools: Sequence[str], history_since: float | None = None
                   ) -> list[PoolSample]:
        """Each pool's counts, and its samples since ``history_since`` if given."""
        if not pools:
            return []
        since = "" if history_since is None else int(history_since)
        rows = await self._script("dashboard_read", since=since, pool_names=pools)
        return [PoolSample(int(ready), int(running), json.loads(history) if history else None)
                for ready, running, history in rows]
