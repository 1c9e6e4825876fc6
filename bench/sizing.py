"""
Demand-driven sizing against a static size (part of `make bench`).

A synthetic week of checkouts (bench/demand_week.py, seeded) is replayed,
at accelerated time (bench/accelerated.py), against two pools of the same
template served by one manager from the vSphere simulator:

- "static": a fixed size, the smallest that meets a 99% hit rate in the
  busiest hour of the two weeks before (Erlang B, as a site sizing for its
  peak would);
- "demand": ``size_policy: demand`` with that size as its ceiling, its
  history holding those two weeks (as it would after running through them).

Every checkout asks each pool for one VM at once, and gives it back at
once.  Printed: each pool's hit rate, idle VM-hours (ready VMs, integrated
over the week) and clones made, and the demand pool's saving.  Goal: the
same or better hit rate with at least 30% fewer idle VM-hours.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any

import yaml
from twisted.internet import defer, task

from tests.processes import stop_process
from tests.vcsim_server import inventory, start_vcsim
from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager import sizing_plan as sizing
from vmpoolerd.manager.service import Manager
from vmpoolerd.names import new_hostname
from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.connection import connect
from vmpoolerd.store.errors import NotEnoughVms
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.telemetry.metrics import Metrics
from vmpoolerd.timefmt import format_time, hour_of, utc_offset
from vmpoolerd.vsphere.provider import Provider

from . import demand_week
from .servers import start_redis
from .accelerated import Accelerated

SPEED = float(os.environ.get("BENCH_SIZING_SPEED", "2400"))  # simulated s per real s
TEMPLATE = "Templates/centos-7-plain"
POOLS = {"static": "Pools/static", "demand": "Pools/demand"}
CLONE_MS, BOOT_MS = 100, 100
TARGET = 0.99
SAMPLE = 300.0  # simulated seconds between two counts of ready VMs


def monday(weeks_ahead: int = 1) -> float:
    """A Monday 00:00, local time, some weeks from now."""
    today = datetime.date.today()
    day = today + datetime.timedelta(days=7 * weeks_ahead - today.weekday())
    return datetime.datetime.combine(day, datetime.time()).timestamp()


def config(redis_port: int, ceiling: int) -> Config:
    raw = {
        ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
        ":redis": {"server": "127.0.0.1", "port": redis_port},
        ":config": {"ready_check_port": 0, "prefix": "s-", "task_limit": 20,
                    "check_loop_delay_min": 60, "check_loop_delay_max": 300,
                    "timeout": 600, "vm_checktime": 100_000},
        ":pools": [
            {"name": "static", "template": TEMPLATE, "folder": POOLS["static"],
             "datastore": "LocalDS_0", "size": ceiling},
            {"name": "demand", "template": TEMPLATE, "folder": POOLS["demand"],
             "datastore": "LocalDS_0", "size": ceiling, "size_policy": "demand",
             "min_size": 1, "hit_rate": TARGET},
        ],
    }
    return parse_config(yaml.safe_dump(raw), {})


async def replenish_seconds(reactor: Any, provider: Provider) -> float:
    """Real seconds from a clone's start to its VM booted, once."""
    name = new_hostname("ref-")
    start = time.monotonic()
    await provider.clone(TEMPLATE, POOLS["static"], "LocalDS_0", name)
    while not any(vm.name == name and vm.hostname == name
                  for vm in await provider.inventory(POOLS["static"])):
        await task.deferLater(reactor, 0.02)
    seconds = time.monotonic() - start
    await provider.destroy(POOLS["static"], name)
    return seconds


def history(start: float, replenish: float) -> sizing.History:
    """Two weeks of the generator's demand (seeds 1 and 2) before ``start``."""
    demand = sizing.Demand()
    offset = utc_offset(start)
    for week, seed in ((-2, 1), (-1, 2)):
        base = start + week * demand_week.WEEK
        for hour, count in enumerate(demand_week.per_hour(demand_week.week(seed))):
            demand = sizing.count(demand, hour_of(base + hour * 3600, offset), count)
    return sizing.History(sizing.fold(demand, hour_of(start, offset)), replenish)


async def replay(reactor: Any, clock: Accelerated, store: ApiStore, start: float,
                 times: list[float], counted: dict[str, list[int]],
                 alone: dict[str, int]) -> None:
    """Each checkout at its time: one VM of each pool, given back at once;
    ``alone`` counts the checkouts only that pool answered."""
    for t in times:
        wait = (start + t - clock.seconds()) / clock.speed
        if wait > 0:
            await task.deferLater(reactor, wait)
        hits = set()
        for pool in POOLS:
            counted[pool][0] += 1
            try:
                got = await store.checkout(Request(((pool, 1, (pool,)),),
                                                   format_time(clock.seconds()), {}))
            except NotEnoughVms:
                continue
            counted[pool][1] += 1
            hits.add(pool)
            for host in got[pool]:
                await store.return_vm(host)
        if len(hits) == 1:
            alone[hits.pop()] += 1


async def sample(reactor: Any, clock: Accelerated, redis: Any, end: float,
                 idle: dict[str, float]) -> None:
    """Ready VMs of each pool every SAMPLE simulated seconds, as VM-hours."""
    while clock.seconds() < end:
        for pool in POOLS:
            idle[pool] += await redis.scard(f"vmpooler__ready__{pool}") * SAMPLE / 3600
        await task.deferLater(reactor, SAMPLE / clock.speed)


async def main(reactor: Any) -> None:
    port, redis_process = start_redis()
    server = start_vcsim(inventory(folders=list(POOLS.values())), clone_delay_ms=CLONE_MS,
                         boot_delay_ms=BOOT_MS)
    try:
        await task.deferLater(reactor, 0.5)
        provider = Provider(server.client(), reactor)
        provider.startService()
        replenish = await replenish_seconds(reactor, provider) * SPEED
        peak = max(demand_week.per_hour(demand_week.week(1))
                   + demand_week.per_hour(demand_week.week(2)))
        ceiling = sizing.size_for(peak, replenish, TARGET, 1, 1000)
        start = monday()
        clock = Accelerated(reactor, SPEED, start - 3600)  # an hour to fill first
        cfg = config(port, ceiling)
        redis = connect(cfg.redis, 10)
        await redis.flushall()
        await redis.hset("vmpooler__demand__demand", "model",
                         json.dumps({"history": history(start, replenish).to_json()}))
        metrics = Metrics()
        # The leases last real seconds in Redis: their end is timed so.
        manager = Manager(cfg, PoolStore(redis, reactor), provider, clock, grace=5,
                          metrics=metrics, redis_time=reactor)
        # Its Redis calls are bounded in the clock's seconds: 3 real ones.
        store = ApiStore(redis, clock, timeout=3 * SPEED)
        manager.startService()
        times = demand_week.week(3)
        counted = {pool: [0, 0] for pool in POOLS}  # asked, hit
        alone = {pool: 0 for pool in POOLS}
        idle = {pool: 0.0 for pool in POOLS}
        await task.deferLater(reactor, 3600 / SPEED)
        before = {pool: metrics.registry.get_sample_value(
            "vmpooler_clone_seconds_count", {"pool": pool}) or 0 for pool in POOLS}
        await defer.gatherResults([
            defer.ensureDeferred(replay(reactor, clock, store, start, times, counted, alone)),
            defer.ensureDeferred(sample(reactor, clock, redis, start + demand_week.WEEK,
                                        idle))])
        clones = {pool: (metrics.registry.get_sample_value(
            "vmpooler_clone_seconds_count", {"pool": pool}) or 0) - before[pool]
            for pool in POOLS}
        store.stop()
        await manager.stopService()
        await provider.stopService()
        await redis.disconnect()
        rates = {pool: hit / asked for pool, (asked, hit) in counted.items()}
        print(f"sizing: a synthetic week ({len(times)} checkouts, peak {peak}/h), "
              f"{SPEED:g}x accelerated, replenish {replenish / 60:.1f} min, size {ceiling}:")
        for pool in POOLS:
            print(f"sizing:   {pool:6s} hit rate {rates[pool]:.2%}, idle VM-hours "
                  f"{idle[pool]:.0f}, clones {clones[pool]:.0f}")
        print(f"sizing: demand/static idle VM-hours {idle['demand'] / idle['static']:.2f} "
              f"({1 - idle['demand'] / idle['static']:.0%} fewer), hit rate "
              f"{rates['demand']:.2%} vs {rates['static']:.2%} "
              f"(goal: at least 30% fewer, hit rate the same or better)")
        # The same checkouts asked both pools: the ones only one answered
        # tell a difference from chance (a sign test: with n such
        # checkouts, chance alone moves the split by about sqrt(n)).
        split = alone["static"] + alone["demand"]
        print(f"sizing: checkouts only the static pool answered {alone['static']}, only the "
              f"demand pool {alone['demand']} (chance alone: +-{split ** 0.5:.0f})")
    finally:
        server.stop()
        stop_process(redis_process)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
