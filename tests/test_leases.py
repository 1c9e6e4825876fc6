"""
Pool leases (Note [Pool leases] in vmpoolerd/manager/leases.py), against a
real Redis: the checked writes, the spreading of pools between managers,
takeover, and the clone reservations the lease timer renews.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from vmpoolerd.manager.leases import LEASE, RENEW, RESERVATION, Leases
from vmpoolerd.manager.maintainer import Maintainer
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.errors import LeaseLost
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider

from .manager_case import CENTOS, DEBIAN, ManagerCase
from .redis_server import fresh_redis
from .waiting import until

POOLS = ["a", "b", "c", "d"]


class LeaseStoreTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.store = PoolStore(self.redis, reactor)

    async def round(self, who: str, pools: list[str] = POOLS, lease: float = LEASE
                    ) -> frozenset[str]:
        return await self.store.leases.round(who, pools, lease, [], 0)

    async def test_a_write_without_the_lease_changes_nothing(self) -> None:
        mine = self.store.under_lease("a", "me")
        with self.assertRaises(LeaseLost):
            await mine.set_empty("a", True)  # a plain write, through command.lua
        with self.assertRaises(LeaseLost):
            await mine.reserve_clones("a", ["x"], 5, 5, "2026-01-01 00:00:00 +0000", 0, 10)
        await self.redis.set("vmpooler__lease__a", "other")
        with self.assertRaises(LeaseLost):
            await mine.complete("a", "x", "pending")
        self.assertEqual(await self.redis.keys("vmpooler__*"), ["vmpooler__lease__a"])
        await self.redis.set("vmpooler__lease__a", "me")
        await mine.set_empty("a", True)
        self.assertEqual(await mine.reserve_clones(
            "a", ["x"], 5, 5, "2026-01-01 00:00:00 +0000", 0, 10), ["x"])
        self.assertTrue(await mine.complete("a", "x", "pending"))
        self.assertEqual(await self.redis.smembers("vmpooler__completed__a"), {"x"})
        self.assertEqual(await self.redis.get("vmpooler__empty__a"), "true")
        # The same store unchecked (a single manager's tests, the API) writes freely.
        await self.redis.delete("vmpooler__lease__a")
        await self.store.set_empty("a", False)
        self.assertEqual(await self.redis.exists("vmpooler__empty__a"), 0)

    async def test_managers_spread_the_pools(self) -> None:
        self.assertEqual(await self.round("m1"), frozenset(POOLS))
        # m2 joins: m1 holds more than its share (2) and gives the rest
        # back; m2 takes them on its next round.
        self.assertEqual(await self.round("m2"), frozenset())
        first = await self.round("m1")
        self.assertEqual(len(first), 2)
        second = await self.round("m2")
        self.assertEqual(second, frozenset(POOLS) - first)
        for pool in first:
            self.assertEqual(await self.redis.get(f"vmpooler__lease__{pool}"), "m1")
        # Steady: each keeps its own.
        self.assertEqual((await self.round("m1"), await self.round("m2")), (first, second))
        # A third: shares of two, one, one; then all four are held.
        await self.round("m3")
        held = [await self.round(m) for m in ("m1", "m2", "m3")]
        self.assertEqual(sorted(len(h) for h in held), [1, 1, 2])
        self.assertEqual(frozenset().union(*held), frozenset(POOLS))

    async def test_a_dead_managers_pools_are_taken_once_its_leases_run_out(self) -> None:
        await self.round("m1", lease=0.3)
        await self.round("m2", lease=0.3)
        first = await self.round("m1", lease=0.3)
        second = await self.round("m2", lease=0.3)
        self.assertEqual(len(first), 2)
        # m1 dies (no more rounds): until its leases run out, m2 holds its own.
        self.assertEqual(await self.round("m2", lease=0.3), second)
        await deferLater(reactor, 0.5)  # real time: the leases end in Redis's time
        # m1 no longer counts as alive: m2's share is all four.
        self.assertEqual(await self.round("m2"), frozenset(POOLS))
        self.assertEqual(await self.redis.smembers("vmpooler__managers"), {"m2"})

    async def test_a_stopping_manager_gives_its_pools_back_at_once(self) -> None:
        await self.round("m1")
        await self.round("m2")
        await self.round("m1")
        await self.store.leases.release("m1", POOLS)
        self.assertEqual(await self.round("m2"), frozenset(POOLS))
        # A round serving no pool (a manager still ending its clones) holds
        # nothing and does not count as alive.
        self.assertEqual(await self.round("m1", pools=[]), frozenset())
        self.assertEqual(await self.redis.smembers("vmpooler__managers"), {"m2"})

    async def test_rounds_renew_the_reservations_of_clones_in_flight(self) -> None:
        await self.redis.hset("vmpooler__cloning", "x", "100")
        await self.redis.hset("vmpooler__cloning", "y", "100")
        await self.store.leases.round("m1", POOLS, LEASE, ["x", "gone"], 500)
        self.assertEqual(await self.redis.hgetall("vmpooler__cloning"), {"x": "500", "y": "100"})
        self.assertEqual(await self.store.cloning(300), frozenset({"x"}))


class LeaseTimerTests(TestCase):
    """The timer, on a Clock, against a real Redis."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.clock = Clock()
        self.changes: list[frozenset[str]] = []
        self.leases = Leases("m1", POOLS, PoolStore(self.redis, reactor).leases, self.clock,
                             lambda: ["x"], self.changes.append)
        self.addCleanup(self.leases.stop)

    async def wait_rounds(self, count: int) -> None:
        await until(f"{count} rounds", lambda: self.leases.rounds >= count,
                    seconds=2, interval=0.01)

    async def test_takes_renews_and_stops_acting_when_it_cannot_renew(self) -> None:
        await self.redis.hset("vmpooler__cloning", "x", "0")
        self.leases.start()
        await self.wait_rounds(1)
        self.assertEqual(self.changes, [frozenset(POOLS)])
        self.assertEqual(await self.redis.hget("vmpooler__cloning", "x"), str(int(RESERVATION)))
        self.clock.advance(RENEW)
        await self.wait_rounds(2)
        self.assertEqual(len(self.changes), 1)  # renewed: nothing changed
        # Another takes a pool (the lease ran out under a pause, say): the
        # next round says so.
        await self.redis.set("vmpooler__lease__b", "m2")
        self.clock.advance(RENEW)
        await self.wait_rounds(3)
        self.assertEqual(self.changes[-1], frozenset(POOLS) - {"b"})
        # Redis stops answering: once the last renewal is LEASE old, the
        # manager acts on none, before another could take them.
        self.assertIsNone(self.leases.trouble())
        self.leases._store = PoolStore(_Silent(), reactor, timeout=0.05).leases  # type: ignore[arg-type]
        for _ in range(int(LEASE / RENEW) - 1):
            self.clock.advance(RENEW)
            # real time: the silent Redis's 0.05 s timeout must fire
            await deferLater(reactor, 0.1)
        self.assertEqual(self.changes[-1], frozenset(POOLS) - {"b"})
        self.assertEqual(self.leases.trouble(), "pool leases not renewed (Redis did not "
                         "answer: TimeoutError); pools still maintained: a, c, d")
        self.clock.advance(RENEW)
        await deferLater(reactor, 0.1)  # real time: the store's timeout, as above
        self.assertEqual(self.changes[-1], frozenset())
        self.assertIn("pools still maintained: none", self.leases.trouble() or "")


class RedisTimeTests(TestCase):
    async def test_the_leases_end_in_redis_time_not_the_maintainers(self) -> None:
        """A benchmark's sped-up clock runs the rounds; the leases still
        last LEASE of Redis's seconds."""
        redis = await fresh_redis(self)
        fast, real = Clock(), Clock()
        changes: list[frozenset[str]] = []
        leases = Leases("m1", POOLS, PoolStore(redis, reactor).leases, fast, lambda: [],
                        changes.append, redis_time=real)
        self.addCleanup(leases.stop)
        leases.start()
        await until("the first round", lambda: leases.rounds == 1, seconds=5)
        leases._store = PoolStore(_Silent(), reactor, timeout=0.05).leases  # type: ignore[arg-type]
        for _ in range(3):
            fast.advance(10 * LEASE)  # rounds try, and fail
            await deferLater(reactor, 0.1)  # real time: the store's 0.05 s timeout
        self.assertEqual(changes, [frozenset(POOLS)])
        real.advance(LEASE)
        self.assertEqual(changes[-1], frozenset())


class _Silent:
    """A Redis that never answers."""

    def execute_command(self, *args: object) -> Deferred[object]:
        return Deferred()


class MaintainerLeaseTests(ManagerCase):
    async def test_a_maintainer_without_the_lease_changes_nothing(self) -> None:
        """Another manager holds the pool: a cycle writes nothing, clones
        nothing, halts and says so."""
        lost: list[str] = []
        pool = self.config.pool(DEBIAN)
        maintainer = Maintainer(pool, self.config, self.store, self.provider, reactor,
                                identity="me", lost=lost.append)
        await self.redis.set(f"vmpooler__lease__{DEBIAN}", "other")
        maintainer.start()
        # real time: a halted maintainer runs no second cycle, which only
        # waiting can show
        await deferLater(reactor, 1.0)
        await maintainer.stop(5)
        self.assertEqual(lost, [DEBIAN])
        self.assertEqual(maintainer.cycles, 1)  # halted after its first
        self.assertEqual(await self.redis.scard(f"vmpooler__pending__{DEBIAN}"), 0)
        self.assertEqual(self.vsphere.inventory(pool.folder), [])
        # With the lease it fills the pool.
        await self.redis.set(f"vmpooler__lease__{DEBIAN}", "me")
        await maintainer.cycle()
        self.assertEqual(await self.redis.scard(f"vmpooler__pending__{DEBIAN}"), pool.size)


class NeverClones:
    """A provider whose clones never reach vSphere (the daemon dies first)."""

    def __init__(self, real: Provider) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def clone(self, *args: Any, **kwargs: Any) -> Deferred[float]:
        return Deferred()


class DeadManagerTests(ManagerCase):
    service = {"timeout": 15}  # minutes: what a short pool would wait before

    async def test_a_dead_managers_clones_that_never_reached_vsphere_are_dropped(self) -> None:
        """A manager dies with every clone reserved and none started in
        vSphere.  Another takes its pools once its leases run out, drops
        the reservations once they do, and fills the pools: in seconds,
        not the pools' 15-minute timeout."""
        dead = Manager(self.config, self.store, NeverClones(self.provider),  # type: ignore[arg-type]
                       reactor, grace=0.1, identity="dead")
        dead.startService()
        self.addCleanup(dead.stopService)

        async def reserved() -> set[str]:
            names = (await self.members("pending", DEBIAN)) | await self.members(
                "pending", CENTOS)
            return names if len(names) == 5 else set()
        lost = await until("the doomed clones to be reserved", reserved, seconds=10)
        # It dies: no more rounds, no more cycles, nothing given back.
        dead.leases.stop()
        for maintainer in dead.maintainers.values():
            maintainer.halt()
        self.start()
        await until("the pools to fill again", self.full, seconds=45)
        for pool in (DEBIAN, CENTOS):
            self.assertEqual(await self.redis.get(f"vmpooler__lease__{pool}"),
                             self.manager.identity)
            self.assertFalse(lost & await self.members("pending", pool))
            self.assertFalse(lost & self.names_in(pool))
        self.assertFalse(lost & set(await self.redis.hkeys("vmpooler__cloning")))
