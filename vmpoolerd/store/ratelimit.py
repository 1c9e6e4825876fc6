"""
Attempts counted in Redis, so that every API daemon sharing it counts them
together (lua/rate_limit.lua: fixed windows, one script call per attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .scripts import Scripts


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` per ``window`` seconds for ``subject``."""

    subject: str
    attempts: int
    window: int


class RateLimitStore(Scripts):
    async def attempt(self, limits: Sequence[Limit], now: float) -> int:
        """Count one attempt against every limit; 0 if all allow it, else
        the seconds to wait (the attempt counts either way)."""
        args: list[object] = [int(now)]
        for limit in limits:
            args += [limit.subject, limit.attempts, limit.window]
        return int(await self._script("rate_limit", args=args))
