"""Attempts counted in Redis (vmpoolerd/store/ratelimit.py), against a real Redis."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.store.ratelimit import Limit, RateLimitStore

from .redis_server import fresh_redis

T0 = 1_800_000_000  # a window boundary for 60 s windows


class RateLimitTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = RateLimitStore(self.redis, reactor)

    async def test_within_the_limit_then_told_how_long_to_wait(self) -> None:
        user = [Limit("user:jdoe", 3, 60)]
        self.assertEqual([await self.store.attempt(user, T0 + 10) for _ in range(3)], [0, 0, 0])
        self.assertEqual(await self.store.attempt(user, T0 + 10), 50)
        self.assertEqual(await self.store.attempt(user, T0 + 59.5), 1)
        self.assertEqual(await self.store.attempt(user, T0 + 60), 0)  # a new window

    async def test_every_limit_counts_and_the_longest_wait_wins(self) -> None:
        both = [Limit("user:jdoe", 1, 60), Limit("address:10.0.0.1", 2, 600)]
        self.assertEqual(await self.store.attempt(both, T0), 0)
        self.assertEqual(await self.store.attempt(both, T0), 60)  # the user is over
        other_user = [Limit("user:asmith", 5, 60), Limit("address:10.0.0.1", 2, 600)]
        # The address is over for anyone, and its window is the longer wait.
        self.assertEqual(await self.store.attempt(other_user, T0 + 1), 599)
        self.assertEqual(await self.store.attempt([Limit("user:asmith", 5, 60)], T0 + 1), 0)

    async def test_counts_expire_with_their_window(self) -> None:
        await self.store.attempt([Limit("user:jdoe", 3, 60)], T0)
        keys = await self.redis.keys("vmpooler__ratelimit__*")
        self.assertEqual(len(keys), 1)
        self.assertTrue(0 < await self.redis.ttl(keys[0]) <= 61)
