"""
A pool's demand in Redis: the checkouts counted by hour (checkout.lua,
Note [Counting demand]) and the history folded from them, shared by every
manager and kept across restarts (``lua/demand_save.lua``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from . import keys
from .scripts import Part

# A pool nobody asks for keeps its history this long.
KEEP_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class DemandCounts:
    """What the hash holds: the history's version and JSON (None before
    the first save), and the VMs asked for and handed out by hour."""
    version: str
    model: object
    asked: Mapping[int, int]
    hit: Mapping[int, int]


class Demand(Part):
    """``store.demand``."""

    async def read(self, pool: str) -> DemandCounts:
        fields = await self._call(self._redis.hgetall(keys.demand(pool))) or {}
        counts: dict[str, dict[int, int]] = {"asked": {}, "hit": {}}
        for field, value in fields.items():
            kind, _, hour = field.partition(":")
            if kind in counts and hour.isdigit():
                counts[kind][int(hour)] = int(value)
        try:
            model = json.loads(fields.get("model", "null"))
        except ValueError:
            model = None
        return DemandCounts(fields.get("version", "0"), model, counts["asked"], counts["hit"])

    async def save(self, pool: str, read: DemandCounts, model: object, shown: object,
                   keep_from: int) -> bool:
        """Save ``model`` and what ``/status`` shows of it unless another
        manager saved since ``read``; counts of hours before ``keep_from``
        are dropped."""
        return bool(await self._script(
            "demand_save", key=keys.demand(pool), model=json.dumps(model),
            version=read.version, keep_seconds=KEEP_SECONDS, keep_from=keep_from,
            shown=json.dumps(shown)))
