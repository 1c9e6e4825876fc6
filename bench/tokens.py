"""
``python -m bench.tokens``: what one ``GET /token/<t>`` costs Redis, by
the number of running VMs of other tokens in it (issue 23, item 2; Note
[Token index] in vmpoolerd/store/lua/preamble/vms.lua).

Measured by Redis itself: the microseconds its scripts ran (INFO
commandstats, ``evalsha`` then ``eval``) over ROUNDS lookups of a token
holding 3 VMs, and the slowest call's time in SLOWLOG; for the index
(what the daemon runs) and for the scan of every running set it replaced
(SCAN_ALL, kept here as the reference).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

from tests.processes import stop_process
from vmpoolerd.config import RedisConfig
from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.connection import connect

from .servers import start_redis

POOLS = ("debian-7-i386", "centos-7-x86_64", "win-2019")
TOKEN = "t" * 32
FLEETS = (0, 10_000, 30_000, 60_000)
ROUNDS = 200
SCAN_ROUNDS = 20  # the reference is slow
NOW = "2026-11-28 06:00:00 +0000"

FILL = """
for i = 1, tonumber(ARGV[2]) do
  local host = ARGV[3] .. i
  redis.call('SADD', 'vmpooler__running__' .. ARGV[1], host)
  redis.call('HSET', 'vmpooler__vm__' .. host, 'template', ARGV[1], 'token:token',
    'o' .. (i % 500), 'token:user', 'someone', 'checkout', ARGV[4])
end
"""
# The token's status before the index: every pool's running set read whole.
SCAN_ALL = """
local hosts = {}
for i = 2, #ARGV do
  for _, host in ipairs(redis.call('SMEMBERS', 'vmpooler__running__' .. ARGV[i])) do
    if redis.call('HGET', 'vmpooler__vm__' .. host, 'token:token') == ARGV[1] then
      hosts[#hosts + 1] = {host, ARGV[i]}
    end
  end
end
return hosts
"""


def script_usec(stats: str) -> int:
    total = 0
    for line in stats.splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            fields = dict(f.split("=") for f in line.split(":", 1)[1].split(","))
            total += int(fields["usec"])
    return total


async def measure(redis: Any, call: Any, rounds: int = ROUNDS) -> tuple[float, int]:
    """Mean script microseconds per call and the slowest (SLOWLOG)."""
    await redis.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "0")
    await redis.execute_command("CONFIG", "SET", "slowlog-max-len", str(4 * rounds))
    await redis.execute_command("SLOWLOG", "RESET")
    await redis.execute_command("CONFIG", "RESETSTAT")
    for _ in range(rounds):
        await call()
    usec = script_usec(str(await redis.execute_command("INFO", "commandstats")))
    slow = await redis.execute_command("SLOWLOG", "GET", 4 * rounds)
    worst = max((int(entry[2]) for entry in slow
                 if str(entry[3][0]).lower() in ("evalsha", "eval")), default=0)
    return usec / rounds, worst


async def run(reactor: Any, port: int) -> None:
    redis = connect(RedisConfig(server="127.0.0.1", port=port), 30)
    store = ApiStore(redis, reactor, timeout=60)
    await redis.execute_command(
        "EVAL", "for i = 1, 3 do redis.call('SADD', 'vmpooler__ready__' .. ARGV[1], 'mine' .. i);"
        " redis.call('HSET', 'vmpooler__vm__mine' .. i, 'template', ARGV[1]) end", 0, POOLS[0])
    await store.checkout(Request(((POOLS[0], 3, (POOLS[0],)),), NOW, {"token:token": TOKEN}))
    print(f"GET /token/<t> for a token with 3 VMs, by running VMs of other tokens: "
          f"Redis's script time, mean of {ROUNDS} ({SCAN_ROUNDS} for the scan) and "
          "slowest (SLOWLOG), in us")
    filled = 0
    for fleet in FLEETS:
        for i, pool in enumerate(POOLS):
            share = (fleet - filled) // len(POOLS)
            if share:
                await redis.execute_command("EVAL", FILL, 0, pool, share, f"f{fleet}p{i}-", NOW)
        filled = fleet
        indexed = await measure(redis, lambda: store.token_vms(TOKEN, POOLS))
        scanned = await measure(redis, lambda: redis.execute_command(
            "EVAL", SCAN_ALL, 0, TOKEN, *POOLS), SCAN_ROUNDS)
        print(f"  {fleet:6d} running: index {indexed[0]:8.1f} mean {indexed[1]:7d} max | "
              f"scan of every pool {scanned[0]:9.1f} mean {scanned[1]:7d} max")
    store.stop()
    await redis.disconnect()


def main() -> None:
    port, process = start_redis()
    try:
        task.react(lambda reactor: defer.ensureDeferred(_wait_then_run(reactor, port)))
    finally:
        stop_process(process)


async def _wait_then_run(reactor: Any, port: int) -> None:
    await task.deferLater(reactor, 0.5)
    await run(reactor, port)


if __name__ == "__main__":
    main()
