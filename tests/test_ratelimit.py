"""Password attempts counted in Redis (vmpoolerd/store/ratelimit.py,
Note [Password guessing]), against a real Redis."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.store.ratelimit import PasswordLimits, RateLimitStore

from .redis_server import fresh_redis

T0 = 1_800_000_000  # a window boundary for 60 s windows
LIMITS = PasswordLimits(per_pair=2, per_address=3, per_user=4, window=60, known_for=600)


class PasswordCountTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = RateLimitStore(self.redis, reactor)

    async def guess(self, user: str, address: str, now: float = T0) -> int:
        wait, _ = await self.store.try_password(user, address, LIMITS, now)
        return wait

    async def test_failures_then_told_how_long_to_wait(self) -> None:
        self.assertEqual([await self.guess("jdoe", "a", T0 + 10) for _ in range(3)], [0, 0, 50])
        self.assertEqual(await self.guess("jdoe", "a", T0 + 59.5), 1)
        self.assertEqual(await self.guess("jdoe", "a", T0 + 60), 0)  # a new window

    async def test_a_refused_attempt_is_not_counted(self) -> None:
        for _ in range(5):
            await self.guess("jdoe", "a")
        self.assertEqual(await self.redis.get("vmpooler__ratelimit__password:address:a__"
                                              f"{T0 // 60}"), "2")

    async def test_settled_attempts_are_taken_back_and_known(self) -> None:
        for _ in range(3):
            _, attempt = await self.store.try_password("jdoe", "a", LIMITS, T0)
            await self.store.settle_password(attempt, True, LIMITS)
        self.assertEqual(await self.guess("jdoe", "a"), 0)
        keys = await self.redis.keys("vmpooler__ratelimit__password:known:*")
        self.assertEqual(keys, ["vmpooler__ratelimit__password:known:jdoe:a__known"])
        self.assertTrue(590 < await self.redis.ttl(keys[0]) <= 600)

    async def test_a_known_address_is_fenced_by_its_pair_alone(self) -> None:
        _, attempt = await self.store.try_password("jdoe", "a", LIMITS, T0)
        await self.store.settle_password(attempt, True, LIMITS)
        for address in ("b", "c", "d"):  # the user's bucket fills elsewhere
            await self.guess("jdoe", address)
            await self.guess("jdoe", address)
        self.assertEqual(await self.guess("jdoe", "e"), 60)
        self.assertEqual(await self.guess("jdoe", "a"), 0)

    async def test_counts_expire_with_their_window(self) -> None:
        await self.guess("jdoe", "a")
        keys = await self.redis.keys("vmpooler__ratelimit__*")
        self.assertEqual(len(keys), 3)
        for key in keys:
            self.assertTrue(0 < await self.redis.ttl(key) <= 61)
