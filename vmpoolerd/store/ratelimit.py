"""
Attempts and requests counted in Redis, so that every API daemon sharing
it counts them together: password attempts (lua/rate_limit.lua: fixed
windows, one script call per attempt) and API requests by vmpooler 3.x's
kinds and keys (lua/request_limit.lua).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from . import keys
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
        flat = [part for limit in limits
                for part in (limit.subject, limit.attempts, limit.window)]
        return int(await self._script("rate_limit", now=int(now), limits=flat))

    async def count_request(self, kind: str, token: str | None, address: str,
                            period: int) -> tuple[int, int]:
        """
        Count one request of ``kind``: by its token if that token exists,
        else by its address.  The count in the window, and the seconds
        left of that window (which began with the window's first request).
        """
        by_address = keys.ratelimit(kind, f"ip:{address}")
        counted = {"counter": by_address} if token is None else {
            "counter": keys.ratelimit(kind, f"token:{token}"), "token_key": keys.token(token),
            "address_counter": by_address}
        count, ttl = await self._script("request_limit", period=period, **counted)
        return int(count), int(ttl)
