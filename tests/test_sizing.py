"""
A pool's demand-driven size kept in a real Redis (vmpoolerd.manager.sizing):
counts folded once whatever the number of managers, the history and the
measured replenish time outliving a restart, the decision saved for every
daemon to show.
"""

from __future__ import annotations

import dataclasses
import json

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.config import PoolConfig
from vmpoolerd.manager.sizing import EVERY, PoolSizer
from vmpoolerd.manager.sizing_plan import BURST_WINDOW, MAX_BOOST
from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.demand import Demand
from vmpoolerd.store.errors import NotEnoughVms
from vmpoolerd.store.scripts import Scripts
from vmpoolerd.timefmt import hour_of, utc_offset

from .fixtures import fill_ready
from .redis_server import fresh_redis

POOL = PoolConfig(name="demanded", template="t", folder="f", datastore="d", size=20,
                  size_policy="demand", min_size=2, hit_rate=0.99)
KEY = "vmpooler__demand__demanded"
D32 = "debian-7-i386"
T0 = 1_700_000_000.0


class SizerTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = Demand(Scripts(self.redis, reactor))
        self.hour = hour_of(T0, utc_offset(T0))

    def sizer(self, pool: PoolConfig = POOL) -> PoolSizer:
        return PoolSizer(pool, self.store, self.clock)

    async def saved(self, field: str = "model") -> dict[str, object]:
        model = json.loads(await self.redis.hget(KEY, field))
        assert isinstance(model, dict)
        return model

    async def test_no_demand_is_the_floor_and_demand_raises_it(self) -> None:
        sizer = self.sizer()
        await sizer.update()
        self.assertEqual(sizer.size, 2)
        self.assertIsNone(sizer.achieved)
        await self.redis.hincrby(KEY, f"asked:{self.hour}", 30)
        await self.redis.hincrby(KEY, f"hit:{self.hour}", 20)
        await sizer.update()  # too soon: nothing read
        self.assertEqual(sizer.size, 2)
        self.clock.advance(EVERY)
        await sizer.update()
        self.assertGreater(sizer.size or 0, 2)
        self.assertAlmostEqual(sizer.achieved or 0, 2 / 3)
        shown = await self.saved("shown")
        self.assertEqual(shown["size"], sizer.size)
        # 30 so far this hour, at the hour's pace (Note [Demand estimate]),
        # raised as 10 of them were missed (Note [Sizing feedback]).
        into_hour = (self.clock.seconds() + utc_offset(T0)) / 3600 - self.hour
        self.assertAlmostEqual(shown["rate_per_hour"],  # type: ignore[arg-type]
                               30 / max(into_hour, BURST_WINDOW) * MAX_BOOST, places=1)
        self.assertEqual((shown["policy"], shown["min_size"], shown["max_size"]),
                         ("demand", 2, 20))
        self.assertAlmostEqual(shown["achieved_hit_rate"], 2 / 3)  # type: ignore[arg-type]

    async def test_a_static_pool_keeps_its_size_and_its_hit_rate_is_kept(self) -> None:
        sizer = self.sizer(dataclasses.replace(POOL, size_policy="static"))
        await self.redis.hincrby(KEY, f"asked:{self.hour}", 4)
        await self.redis.hincrby(KEY, f"hit:{self.hour}", 4)
        await sizer.update()
        self.assertIsNone(sizer.size)
        self.assertEqual(sizer.achieved, 1.0)
        self.assertEqual(await self.saved("shown"),
                         {"policy": "static", "achieved_hit_rate": 1.0})

    async def test_two_managers_fold_an_hour_once(self) -> None:
        first, second = self.sizer(), self.sizer()
        await self.redis.hincrby(KEY, f"asked:{self.hour}", 12)
        await first.update()
        await second.update()
        self.clock.advance(3600)
        await first.update()
        await second.update()
        history = (await self.saved())["history"]
        assert isinstance(history, dict)
        day = history["demand"]["day"]
        self.assertEqual(day[self.hour % 24], [12.0, 1])
        self.assertEqual(sum(samples for _, samples in day), 1)

    async def test_replenish_time_outlives_a_restart(self) -> None:
        sizer = self.sizer()
        sizer.replenished(120.0)
        await sizer.update()
        self.assertEqual(sizer.sizing and sizer.sizing.replenish, 120.0)
        restarted = self.sizer()
        self.clock.advance(EVERY)
        await restarted.update()
        self.assertEqual(restarted.sizing and restarted.sizing.replenish, 120.0)

    async def test_old_counts_go_and_a_damaged_model_costs_only_history(self) -> None:
        await self.redis.hincrby(KEY, f"asked:{self.hour - 30}", 5)
        await self.redis.hset(KEY, "model", "{not json")
        sizer = self.sizer()
        await sizer.update()
        self.assertEqual(sizer.size, 2)
        self.assertFalse(await self.redis.hexists(KEY, f"asked:{self.hour - 30}"))


class RefusalCountTests(TestCase):
    """Note [Refusals counted] (issue 23, item 7): what refused checkouts
    add to a pool's demand is bounded by its size, once per client per
    window; checkouts served count in full."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = ApiStore(self.redis, reactor, sizes={D32: 5})
        self.addCleanup(self.store.stop)

    async def ask(self, count: int, fields: dict[str, str] | None = None) -> None:
        try:
            await self.store.checkout(Request(((D32, count, (D32,)),), "now", fields or {}))
        except NotEnoughVms:
            pass

    async def asked(self) -> int:
        fields = await self.redis.hgetall(f"vmpooler__demand__{D32}")
        return sum(int(v) for k, v in fields.items() if k.startswith("asked:"))

    async def test_an_anonymous_loop_of_large_asks_adds_one_pools_worth(self) -> None:
        for _ in range(50):
            await self.ask(100)
        self.assertEqual(await self.asked(), 5)

    async def test_each_token_owner_counts_once_and_served_checkouts_in_full(self) -> None:
        await self.ask(100)
        for _ in range(3):
            await self.ask(2, {"token:token": "t" * 32, "token:user": "jdoe"})
        self.assertEqual(await self.asked(), 5 + 2)
        await fill_ready(self.redis, D32, 4)
        await self.ask(4)
        self.assertEqual(await self.asked(), 5 + 2 + 4)

    async def test_a_live_size_bounds_it(self) -> None:
        await self.redis.hset("vmpooler__config__poolsize", D32, "3")
        await self.ask(100)
        self.assertEqual(await self.asked(), 3)
