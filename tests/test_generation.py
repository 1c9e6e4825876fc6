"""
Noticing a Redis that lost data or went back in time (Note [Redis
generations] in vmpoolerd/store/generation.py), against real Redis servers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.errors import NotEnoughVms, OtherOwner, StoreUnavailable
from vmpoolerd.store.generation import GenerationCheck, GenerationStore, GenerationWatch

from .fixtures import fill_ready
from .logs import captured_events
from .redis_server import fresh_redis, private_redis
from .waiting import until

POOLS = ("debian-7-i386", "centos-7-x86_64")
D32 = POOLS[0]


class GenerationTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = GenerationStore(self.redis, reactor)

    def watch(self) -> GenerationWatch:
        return GenerationWatch(self.store, POOLS)

    async def members(self, state: str, pool: str = D32) -> set[str]:
        return set(await self.redis.smembers(f"vmpooler__{state}__{pool}"))

    async def test_a_redis_with_pools_and_no_marker_is_trusted(self) -> None:
        """As a vmpooler leaves it: the daemon marks it and carries on."""
        await fill_ready(self.redis, D32, 2)
        found = await self.watch().check()
        self.assertIsNone(found.doubt)
        self.assertEqual(found.count, 1)
        self.assertEqual(len(await self.members("ready")), 2)

    async def test_an_empty_redis_is_in_doubt(self) -> None:
        watch = self.watch()
        self.assertIn("no pool state", (await watch.check()).doubt or "")
        # The doubt stays, for every daemon, until an operator acts.
        self.assertIn("no pool state", (await self.watch().check()).doubt or "")
        self.assertEqual(await self.store.doubt(), watch.doubt)

    async def test_counts_grow_and_raise_no_doubt(self) -> None:
        await fill_ready(self.redis, D32, 1)
        first, second = self.watch(), self.watch()
        counts = []
        for _ in range(3):
            counts += [(await first.check()).count, (await second.check()).count]
        self.assertEqual(counts, [1, 2, 3, 4, 5, 6])
        self.assertIsNone(first.doubt)

    async def test_lost_data(self) -> None:
        await fill_ready(self.redis, D32, 1)
        watch = self.watch()
        await watch.check()
        await self.redis.flushall()
        self.assertIn("lost its data", (await watch.check()).doubt or "")

    async def test_a_marker_gone_with_pool_state_holds_ready_and_pending_vms(self) -> None:
        """Note [A marker gone is a rollback]: a restore from before the
        marker existed, or the marker deleted, leaves pool state of unknown
        age; its ready and pending VMs are held as for a stale marker."""
        ready = await fill_ready(self.redis, D32, 2)
        await self.redis.sadd(f"vmpooler__pending__{D32}", "pending1")
        await self.redis.sadd(f"vmpooler__running__{D32}", "running1")
        watch = self.watch()
        await watch.check()
        await self.redis.delete("vmpooler__generation")
        self.assertIn("lost its data", (await watch.check()).doubt or "")
        self.assertEqual(await self.members("ready"), set())
        self.assertEqual(await self.members("pending"), set())
        self.assertEqual(await self.members("discovered"), {*ready, "pending1"})
        self.assertEqual(await self.members("running"), {"running1"})
        self.assertEqual(await self.redis.get(f"vmpooler__empty__{D32}"), "true")

    async def test_another_redis(self) -> None:
        await fill_ready(self.redis, D32, 1)
        watch = self.watch()
        await watch.check()
        await self.redis.hset("vmpooler__generation", "id", "another")
        self.assertIn("not the one", (await watch.check()).doubt or "")

    async def test_a_rollback_holds_ready_and_pending_vms(self) -> None:
        ready = await fill_ready(self.redis, D32, 3)
        await self.redis.sadd(f"vmpooler__pending__{D32}", "pending1")
        await self.redis.sadd(f"vmpooler__running__{D32}", "running1")
        watch = self.watch()
        for _ in range(5):
            await watch.check()
        await self.redis.hset("vmpooler__generation", "n", 2)  # an older state
        self.assertIn("back in time", (await watch.check()).doubt or "")
        self.assertEqual(await self.members("ready"), set())
        self.assertEqual(await self.members("pending"), set())
        self.assertEqual(await self.members("discovered"), {*ready, "pending1"})
        self.assertEqual(await self.members("running"), {"running1"})
        self.assertEqual(await self.redis.get(f"vmpooler__empty__{D32}"), "true")
        # Acted on once: VMs made ready afterwards are not held in turn.
        await self.redis.sadd(f"vmpooler__ready__{D32}", "fresh1")
        await watch.check()
        self.assertEqual(await self.members("ready"), {"fresh1"})

    async def test_adopt_makes_held_vms_running(self) -> None:
        await self.watch().check()  # an empty Redis: in doubt; then a VM is discovered
        self.assertIsNotNone(await self.store.doubt())
        await self.redis.sadd(f"vmpooler__discovered__{D32}", "held1")
        await self.redis.hset("vmpooler__vm__held1", "token:user", "someone")
        await self.redis.expire("vmpooler__vm__held1", 100)
        self.assertEqual(await self.store.adopt(POOLS, "2026-11-28 06:00:00 +0000"), 1)
        self.assertIsNone(await self.store.doubt())
        self.assertEqual(await self.members("running"), {"held1"})
        self.assertEqual(await self.members("discovered"), set())
        vm: dict[str, Any] = await self.redis.hgetall("vmpooler__vm__held1")
        # Note [Adopted owners]: its owner stays its owner.
        self.assertEqual(vm, {"template": D32, "checkout": "2026-11-28 06:00:00 +0000",
                              "token:user": "someone"})
        self.assertEqual(await self.redis.ttl("vmpooler__vm__held1"), -1)
        self.assertEqual(await self.redis.hget(f"vmpooler__active__{D32}", "held1"),
                         "2026-11-28 06:00:00 +0000")

    async def test_adopted_vms_keep_their_owners(self) -> None:
        """Note [Adopted owners] (issue 23, item 10): after the doubt, only
        the owner may hand the VM back, and its token's status shows it."""
        await self.watch().check()
        token = "t" * 32
        for host in ("owned1", "nobodys1"):
            await self.redis.sadd(f"vmpooler__discovered__{D32}", host)
            await self.redis.hset(f"vmpooler__vm__{host}", "lifetime", "48")
        await self.redis.hmset("vmpooler__vm__owned1", {
            "token:token": token, "token:user": "jdoe", "token:user_dn": "uid=jdoe,dc=x"})
        self.assertEqual(await self.store.adopt(POOLS, "2026-11-28 06:00:00 +0000"), 2)
        owned: dict[str, Any] = await self.redis.hgetall("vmpooler__vm__owned1")
        self.assertEqual({k: owned.get(k) for k in ("token:token", "token:user_dn", "lifetime")},
                         {"token:token": token, "token:user_dn": "uid=jdoe,dc=x",
                          "lifetime": "48"})
        self.assertIsNone(await self.redis.hget("vmpooler__vm__nobodys1", "lifetime"))
        api = ApiStore(self.redis, reactor)
        self.assertEqual(await api.token_vms(token, POOLS), [("owned1", D32)])
        with self.assertRaises(OtherOwner):
            await api.return_vm("owned1", "uid=mallory,dc=x")
        await api.return_vm("owned1", "uid=jdoe,dc=x")

    async def test_release_ends_the_doubt_only(self) -> None:
        await self.watch().check()
        await self.redis.sadd(f"vmpooler__discovered__{D32}", "held1")
        await self.store.release_held()
        self.assertIsNone(await self.store.doubt())
        self.assertEqual(await self.members("discovered"), {"held1"})


class RestoredRedisTests(TestCase):
    async def test_a_redis_restarted_from_an_older_dump(self) -> None:
        """SAVE, a checkout, kill -9, a restart from the dump: the VM checked
        out since the dump is not handed out again."""
        server, redis = await private_redis(self, 1.0)
        watch = GenerationWatch(GenerationStore(redis, reactor, timeout=1.0), POOLS)
        await fill_ready(redis, D32, 2)
        await watch.check()
        server.cli("SAVE")
        taken = await redis.spop(f"vmpooler__ready__{D32}")  # checked out after the dump
        await redis.sadd(f"vmpooler__running__{D32}", taken)
        await watch.check()
        server.crash_and_restart()

        async def checked() -> Any:
            try:
                return await watch.check()
            except Exception:
                return None
        found = await until("Redis to answer again", checked, seconds=30, interval=0.2)
        self.assertIn("back in time", found.doubt or "")
        self.assertNotIn(taken, set(await redis.smembers(f"vmpooler__ready__{D32}")))
        self.assertIn(taken, set(await redis.smembers(f"vmpooler__discovered__{D32}")))

    async def test_the_next_checkout_after_a_restore_hands_nothing_out_again(self) -> None:
        """Note [Checkouts and generations] in vmpoolerd/store/lua/checkout.lua:
        no generation check runs between the restore and the checkout."""
        server, redis = await private_redis(self, 1.0)
        watch = GenerationWatch(GenerationStore(redis, reactor, timeout=1.0), POOLS)
        store = ApiStore(redis, reactor, 1.0, generation=watch)
        self.addCleanup(store.stop)
        await fill_ready(redis, D32, 3)
        await watch.check()
        server.cli("SAVE")
        request = Request(((D32, 1, (D32,)),), "2026-11-28 12:00:00 +0000", {})
        (taken,) = (await store.checkout(request))[D32]  # after the dump
        server.crash_and_restart()

        async def refused() -> bool:
            try:
                await store.checkout(request)
            except StoreUnavailable as e:
                return "changed" in str(e)
            self.fail("a checkout was answered from the restored Redis")
        await until("a checkout to be refused", refused, seconds=30, interval=0.2)
        await until("the daemon's check", lambda: watch.doubt is not None)
        self.assertIn("back in time", watch.doubt or "")
        with self.assertRaises(NotEnoughVms):  # the restored ready VMs are held
            await store.checkout(request)
        self.assertIn(taken, set(await redis.smembers(f"vmpooler__discovered__{D32}")))


class GenerationCheckTests(TestCase):
    async def test_a_flushed_redis_is_noticed_and_logged_within_seconds(self) -> None:
        redis = await fresh_redis(self)
        await fill_ready(redis, D32, 2)
        events = captured_events(self)
        check = GenerationCheck(GenerationWatch(GenerationStore(redis, reactor), POOLS),
                                reactor, every=0.1)
        check.startService()
        self.addCleanup(check.stopService)
        await until("the first check", lambda: check.watch.seen.count > 0)
        self.assertIsNone(check.watch.doubt)
        await redis.flushall()
        await until("the doubt", lambda: check.watch.doubt is not None)
        self.assertIn("lost", check.watch.doubt or "")
        await until("the warning", lambda: any("in doubt" in e.get("log_format", "")
                                               for e in events))
        warnings = [e for e in events if "in doubt" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)  # once, not at every check
        await GenerationStore(redis, reactor).release_held()
        await until("the doubt to end", lambda: check.watch.doubt is None)


class WithoutThePoolsTests(TestCase):
    """Note [Generations without the pools] in store/lua/generation.lua."""

    async def test_the_pools_are_sent_only_when_the_script_needs_them(self) -> None:
        redis = await fresh_redis(self)
        store = GenerationStore(redis, reactor)
        sent: list[int] = []
        replicated = store._replicated

        async def counting(name: str, **named: Any) -> Any:
            sent.append(len(named["pools"]))
            return await replicated(name, **named)
        store._replicated = counting  # type: ignore[method-assign,assignment]
        pools = [f"pool-{i}" for i in range(1000)]
        watch = GenerationWatch(store, pools)
        await watch.check()  # no marker yet: asked again, with the pools
        self.assertEqual(sent, [0, 1000])
        for _ in range(5):
            await watch.check()
        self.assertEqual(sent, [0, 1000] + [0] * 5)
        self.assertIn("no pool state", watch.doubt or "")  # a new Redis
        await redis.delete("vmpooler__doubtful")
        await redis.hset("vmpooler__generation", "n", 1)  # went back in time
        await redis.sadd("vmpooler__ready__pool-7", "stale")
        await watch.check()
        self.assertEqual(sent[-2:], [0, 1000])
        self.assertIn("back in time", watch.doubt or "")
        self.assertEqual(await redis.smembers("vmpooler__discovered__pool-7"), {"stale"})
