"""
Attempts and requests counted in Redis, so that every API daemon sharing
it counts them together: password attempts (lua/password_try.lua and
lua/password_settle.lua, Note [Password guessing] in api/throttle.py) and
API requests by vmpooler 3.x's kinds and keys (lua/request_limit.lua).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import keys
from .scripts import Scripts

@dataclass(frozen=True)
class PasswordLimits:
    """Failures allowed per ``window`` seconds: per (user, address group),
    per address group, per user; and how long an address a user's password
    passed from stays known (seconds)."""

    per_pair: int
    per_address: int
    per_user: int
    window: int
    known_for: int


@dataclass(frozen=True)
class Attempt:
    """A password attempt counted (as a failure until settled otherwise)."""

    user: str  # folded
    address: str  # its group (api/clients.py)
    window: int  # the window it was counted in


class RateLimitStore(Scripts):
    async def try_password(self, user: str, address: str, limits: PasswordLimits,
                           now: float) -> tuple[int, Attempt]:
        """Count an attempt by ``user`` from ``address``: 0 and the attempt if
        its buckets allow it, else the seconds to wait (nothing counted)."""
        wait, window = await self._script(
            "password_try", now=int(now), user=user, address=address,
            per_pair=limits.per_pair, per_address=limits.per_address,
            per_user=limits.per_user, window=limits.window)
        return int(wait), Attempt(user, address, int(window))

    async def settle_password(self, attempt: Attempt, passed: bool,
                              limits: PasswordLimits) -> None:
        """Take back an attempt that was no failure: the password ``passed``,
        or the directory did not answer."""
        await self._script(
            "password_settle", user=attempt.user, address=attempt.address,
            window_index=attempt.window, outcome="passed" if passed else "unanswered",
            known_for=limits.known_for)

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
