"""
Note [Password guessing]: a password is throttled by its *failures*, so
that guessing is slow and nobody can be locked out by guesses made
elsewhere.  Every request that carries one (the ``/token`` routes) belongs
to three buckets of failures, counted in fixed windows of ``window``
seconds in Redis (store/lua/password_try.lua), so that every API daemon
sharing it counts together:

- its user name and client address group (Note [Client addresses] in
  clients.py): ``per_pair``;
- its address group, whatever the name: ``per_address``;
- its user name, whatever the address: ``per_user``, well above one
  address's share, so that one address cannot fill it alone.

A user name is counted as the directory would match it (``JDOE`` and
`` jdoe`` are one name).  Before the directory is asked, a request whose
bucket is full is answered 429 with ``Retry-After`` and not counted.
Otherwise it is counted in all three at once, in the same script, and
taken back (store/lua/password_settle.lua) when the directory says the
password is right or gives no answer (503): what remains counted is the
failures, and the attempts still waiting on the directory, so that a burst
of concurrent guesses cannot pass one check together.

The rule that keeps a user in, enforced in password_try.lua: an address
group from which a user's password was right within ``known_for``
seconds is *known* for that user, and a request from it is held by its
(user, address) bucket alone; the user's and the address's buckets,
which others can fill, do not hold it.  So guesses at jdoe from anywhere
else, and guesses at other names from jdoe's own address, never refuse
jdoe at an address they have used; guesses at jdoe from that address do,
``per_pair`` a window, as they must.  A user at an address never used
before can be held by the user's bucket while someone guesses at them;
they get in from any address they used within ``known_for``.
"""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from twisted.internet.interfaces import IReactorTime

from ..store.ratelimit import PasswordLimits, RateLimitStore
from .auth import folded

PER_PAIR = 10  # failures per user name and address group per WINDOW
PER_ADDRESS = 30  # failures per address group per WINDOW
PER_USER = 100  # failures per user name per WINDOW, from anywhere
WINDOW = 60  # seconds
KNOWN_FOR = 30 * 24 * 3600  # seconds an address stays known for a user

DEFAULT_LIMITS = PasswordLimits(PER_PAIR, PER_ADDRESS, PER_USER, WINDOW, KNOWN_FOR)

T = TypeVar("T")


class TooManyFailures(Exception):
    """A bucket is full: try again in ``wait`` seconds."""

    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


class PasswordThrottle:
    def __init__(self, store: RateLimitStore, clock: IReactorTime,
                 limits: PasswordLimits = DEFAULT_LIMITS) -> None:
        self._store = store
        self._clock = clock
        self._limits = limits

    async def check(self, user: str, address: str,
                    bind: Callable[[], Awaitable[T | None]]) -> T | None:
        """
        ``bind()``'s answer (None: the password is wrong), if the buckets of
        ``user`` at ``address`` (a group) let it be asked; else
        :class:`TooManyFailures`.  Only a wrong password stays counted.
        """
        wait, attempt = await self._store.try_password(
            folded(user), address, self._limits, self._clock.seconds())
        if wait:
            raise TooManyFailures(wait)
        try:
            answer = await bind()
        except BaseException:
            await self._store.settle_password(attempt, False, self._limits)
            raise
        if answer is not None:
            await self._store.settle_password(attempt, True, self._limits)
        return answer
