"""
The token index (Note [Token index] in vmpoolerd/store/lua/preamble/vms.lua):
a token's status costs Redis the token's VMs, not the fleet's; the scripts
that check out, hand back and destroy keep it; the start-up build adds what
was running before.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, ensureDeferred
from twisted.trial.unittest import TestCase

from vmpoolerd.store.api_store import ApiStore, Owner, Request
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.store.token_index import TokenIndexBuild

from .fixtures import fill_ready
from .redis_server import fresh_redis
from .waiting import until

D32 = "debian-7-i386"
C7 = "centos-7-x86_64"
POOLS = (D32, C7)
TOKEN = "a" * 32
OTHER = "b" * 32
NOW = "2026-11-28 06:00:00 +0000"
# Scripts and the commands that measure them, not counted as their work.
NOT_COUNTED = {"eval", "evalsha", "info", "config|resetstat", "config", "script"}

# Fills the pool ARGV[1]'s running set with ARGV[2] VMs named ARGV[3]..i,
# checked out with the token ARGV[4], as a busy site (or a vmpooler) leaves it.
FILL_RUNNING = """
for i = 1, tonumber(ARGV[2]) do
  local host = ARGV[3] .. i
  redis.call('SADD', 'vmpooler__running__' .. ARGV[1], host)
  redis.call('HSET', 'vmpooler__vm__' .. host, 'template', ARGV[1], 'token:token', ARGV[4],
    'token:user', 'someone', 'checkout', ARGV[5])
end
"""


async def commands_run(redis: Any, call: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """What ``call`` answered, and the Redis commands it ran (scripts'
    commands counted one by one; INFO commandstats)."""
    await redis.execute_command("CONFIG", "RESETSTAT")
    answer = await call()
    stats = await redis.execute_command("INFO", "commandstats")
    total = 0
    for line in str(stats).splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_"):].partition(":")
            if name not in NOT_COUNTED:
                total += int(dict(f.split("=") for f in fields.split(","))["calls"])
    return answer, total


class TokenIndexTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.redis = await fresh_redis(self)
        self.store = ApiStore(self.redis, reactor)
        self.addCleanup(self.store.stop)

    async def fill_running(self, pool: str, count: int, prefix: str, token: str) -> None:
        await self.redis.execute_command("EVAL", FILL_RUNNING, 0, pool, count, prefix, token, NOW)

    async def check_out(self, pool: str, count: int, token: str = TOKEN) -> list[str]:
        await fill_ready(self.redis, pool, count, prefix=f"{token[:3]}{pool[:3]}")
        handed = await self.store.checkout(Request(
            ((pool, count, (pool,)),), NOW,
            {"token:token": token, "token:user": "jdoe", "lifetime": "12"}))
        return sorted(handed[pool])

    async def index(self, token: str = TOKEN) -> set[str]:
        return set(await self.redis.smembers(f"vmpooler__tokenvms__{token}"))

    async def test_a_tokens_status_costs_its_own_vms_not_the_fleets(self) -> None:
        """Issue 23, item 2: with 30,000 running VMs of other tokens, the
        status of a token with 3 VMs runs as many Redis commands as with
        none (before the index: two per running VM of the fleet)."""
        mine = await self.check_out(D32, 3)
        expected = [(host, D32) for host in mine]
        small, alone = await commands_run(self.redis, lambda: self.store.token_vms(TOKEN, POOLS))
        self.assertEqual(sorted(small), expected)
        await self.fill_running(D32, 20000, "fleet", OTHER)
        await self.fill_running(C7, 10000, "fleet7-", OTHER)
        found, among = await commands_run(self.redis, lambda: self.store.token_vms(TOKEN, POOLS))
        self.assertEqual(sorted(found), expected)
        self.assertEqual(among, alone)
        self.assertLessEqual(among, 3 * 3 + 2)

    async def test_checkouts_returns_and_expiry_keep_it(self) -> None:
        d32 = await self.check_out(D32, 2)
        c7 = await self.check_out(C7, 1)
        await self.check_out(D32, 1, token=OTHER)
        self.assertEqual(await self.index(), {*d32, *c7})
        self.assertEqual(await self.store.token_vms(TOKEN, POOLS),
                         [(d32[0], D32), (d32[1], D32), (c7[0], C7)])
        await self.store.return_vm(d32[0])
        pools = PoolStore(self.redis, reactor)
        self.assertTrue(await pools.complete(D32, d32[1], "running"))  # its lifetime ended
        self.assertEqual(await self.index(), set(c7))
        self.assertEqual(await self.store.token_vms(TOKEN, POOLS), [(c7[0], C7)])

    async def test_a_checkout_given_back_leaves_it(self) -> None:
        hosts = await self.check_out(D32, 2)
        await self.store._script("checkout_undo", window=30, hosts=f'["{hosts[0]}"]')
        self.assertEqual(await self.index(), {hosts[1]})

    async def test_a_deleted_token_takes_its_index(self) -> None:
        await self.redis.hset(f"vmpooler__token__{TOKEN}", "user", "jdoe")
        await self.check_out(D32, 1)
        await self.store.delete_token(TOKEN, Owner("jdoe"))
        self.assertEqual(await self.index(), set())

    async def test_stale_members_are_dropped_when_read(self) -> None:
        """Changed by a writer that keeps no index (a vmpooler): handed
        back, or given to another token."""
        back, other, kept = await self.check_out(D32, 3)
        await self.redis.smove(f"vmpooler__running__{D32}", f"vmpooler__completed__{D32}", back)
        await self.redis.hset(f"vmpooler__vm__{other}", "token:token", OTHER)
        self.assertEqual(await self.store.token_vms(TOKEN, POOLS), [(kept, D32)])
        self.assertEqual(await self.index(), {kept})

    async def test_the_start_up_build_adds_what_was_running(self) -> None:
        """As a vmpooler (or a vmpoolerd before the index) left it; built by
        several daemons at once, in small steps."""
        await self.fill_running(D32, 40, "old", TOKEN)
        await self.fill_running(C7, 5, "old7-", OTHER)
        self.assertEqual(await self.store.token_vms(TOKEN, POOLS), [])
        calls = await gatherResults([ensureDeferred(self.store.index_token_vms(POOLS, step=7))
                                     for _ in range(3)])
        self.assertGreater(min(calls), 2 * len(POOLS))  # more than one step per pool
        found = await self.store.token_vms(TOKEN, POOLS)
        self.assertEqual(sorted(found), sorted((f"old{i}", D32) for i in range(1, 41)))
        self.assertEqual(len(await self.index(OTHER)), 5)

    async def test_the_daemon_builds_it_at_its_start(self) -> None:
        await self.fill_running(D32, 3, "old", TOKEN)
        build = TokenIndexBuild(self.store, POOLS, reactor)
        build.startService()
        self.addCleanup(build.stopService)
        await until("the index built", lambda: self.store.token_vms(TOKEN, POOLS))
