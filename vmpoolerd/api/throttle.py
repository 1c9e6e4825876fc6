"""
Note [Password guessing]: every request that carries a password (the
``/token`` routes) counts as an attempt, before the directory is asked,
against two limits: one per user name, as the directory would match it
(``JDOE`` and `` jdoe`` are one name), and one per client address.
Beyond either, the request is answered 429 with ``Retry-After`` and the
directory is not asked.  The counts are in Redis (store/ratelimit.py), so
every API daemon sharing it counts together.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..store.ratelimit import Limit, RateLimitStore
from .auth import folded

PER_USER = 10  # attempts per user name per WINDOW
PER_ADDRESS = 30  # attempts per client address per WINDOW
WINDOW = 60  # seconds


class PasswordThrottle:
    def __init__(self, store: RateLimitStore, clock: IReactorTime,
                 per_user: int = PER_USER, per_address: int = PER_ADDRESS,
                 window: int = WINDOW) -> None:
        self._store = store
        self._clock = clock
        self._per_user = per_user
        self._per_address = per_address
        self._window = window

    async def wait(self, user: str, address: str) -> int:
        """Count an attempt by *user* from *address*: 0 if it may go on,
        else the seconds to wait."""
        return await self._store.attempt(
            (Limit(f"password:user:{folded(user)}", self._per_user, self._window),
             Limit(f"password:address:{address}", self._per_address, self._window)),
            self._clock.seconds())
