"""
The pool manager's benchmarks (part of `make bench`):

1. vSphere round trips per maintenance cycle, 10 pools of 3 VMs against 10
   pools of 30: a steady cycle (every VM ready, nothing to do) should cost
   the same, a fixed number per pool (goal: at most 3), whatever the number
   of VMs.  vmpooler reads each VM in its own round trip.
2. Time from a checkout to the start of its replacement clone, with the
   maintainers backed off (goal: under 1 s; vmpooler waits for its next
   loop, 5 s or more).

Both run against the vSphere simulator (tests/vcsim) and a private Redis.
"""

from __future__ import annotations

import statistics
from typing import Any

import yaml
from twisted.internet import defer, task
from twisted.internet.protocol import Factory, Protocol

from tests.processes import stop_process
from tests.vcsim_server import inventory, start_vcsim
from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider
from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.connection import connect
from vmpoolerd.timefmt import format_time

from .servers import start_redis

POOLS = 10


def config(redis_port: int, ready_port: int, size: int, **service: Any) -> Config:
    raw = {
        ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
        ":redis": {"server": "127.0.0.1", "port": redis_port},
        ":config": {"ready_check_port": ready_port, "ready_check_address": "ip",
                    "vm_checktime": 60, **service},
        ":pools": [{"name": f"pool{i}", "template": "Templates/centos-7-plain",
                    "folder": f"Pools/p{i}", "datastore": "LocalDS_0", "size": size}
                   for i in range(POOLS)],
    }
    return parse_config(yaml.safe_dump(raw), {})


async def round_trips(reactor: Any, redis_port: int, size: int) -> float:
    """vSphere round trips per pool in one steady maintenance cycle."""
    vms = [{"folder": f"Pools/p{i}", "prefix": f"p{i}-", "count": size, "power_on": True}
           for i in range(POOLS)]
    server = start_vcsim(inventory(folders=[f"Pools/p{i}" for i in range(POOLS)], vms=vms),
                         boot_delay_ms=0)
    redis = connect(config(redis_port, 1, size).redis, 5)
    try:
        await redis.flushall()
        cfg = config(redis_port, 0, size)
        client = server.client()
        for pool in cfg.pools:
            for vm in client.inventory(pool.folder):
                await redis.sadd(f"vmpooler__ready__{pool.name}", vm.name)
                await redis.hmset(f"vmpooler__vm__{vm.name}", {
                    "template": pool.name, "clone": format_time(reactor.seconds()),
                    "check": format_time(reactor.seconds()),
                    "ready": format_time(reactor.seconds())})
        provider = Provider(client, reactor)
        provider.startService()
        manager = Manager(cfg, PoolStore(redis, reactor), provider, reactor)
        # A cycle's scripts check the pool's lease (Note [Pool leases]): take
        # them, with the service stopped, so that no loop cycles beside these.
        manager.leases.start()
        while manager.leases.maintained != frozenset(cfg.pool_names):
            await task.deferLater(reactor, 0.05)
        await manager.maintainers["pool0"].cycle()  # log in, find the folders
        before = client.round_trips
        for maintainer in manager.maintainers.values():
            actions = await maintainer.cycle()
            assert all(type(a).__name__ == "Check" for a in actions), actions
        spent = client.round_trips - before
        manager.leases.stop()
        await provider.stopService()
        return spent / POOLS
    finally:
        await redis.disconnect()
        server.stop()


async def replacement_latency(reactor: Any, redis_port: int) -> list[float]:
    """Seconds from a checkout to its replacement's clone reservation."""
    server = start_vcsim(inventory(folders=[f"Pools/p{i}" for i in range(POOLS)]),
                         boot_delay_ms=100, clone_delay_ms=200)
    listener = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    cfg = config(redis_port, listener.getHost().port, 2, check_loop_delay_min=0.2,
                 check_loop_delay_max=60, check_loop_delay_decay=10, vm_checktime=60)
    redis = connect(cfg.redis, 5)
    provider = Provider(server.client(), reactor)
    provider.startService()
    manager = Manager(cfg, PoolStore(redis, reactor), provider, reactor)
    store = ApiStore(redis, reactor)
    try:
        await redis.flushall()
        manager.startService()

        async def full() -> bool:
            for pool in cfg.pool_names:
                if await redis.scard(f"vmpooler__ready__{pool}") < 2:
                    return False
            return True
        while not await full():
            await task.deferLater(reactor, 0.1)
        latencies = []
        for i in range(10):
            await task.deferLater(reactor, 2.0)  # the loops back off: 0.2, 2, 20 s
            pool = f"pool{i}"
            got = await store.checkout(Request(((pool, 1, (pool,)),),
                                               format_time(reactor.seconds()), {}))
            assert got, "no VM to check out"
            start = reactor.seconds()
            while not await redis.scard(f"vmpooler__pending__{pool}"):
                await task.deferLater(reactor, 0.005)
            latencies.append(reactor.seconds() - start)
        return latencies
    finally:
        await manager.stopService()
        await provider.stopService()
        await redis.disconnect()
        await listener.stopListening()
        server.stop()


async def main(reactor: Any) -> None:
    port, redis = start_redis()
    try:
        await task.deferLater(reactor, 0.5)
        small = await round_trips(reactor, port, 3)
        large = await round_trips(reactor, port, 30)
        print(f"manager: vSphere round trips per pool per steady cycle, {POOLS} pools: "
              f"{small:.1f} with 3 VMs each, {large:.1f} with 30 VMs each "
              f"(goal: at most 3, flat; vmpooler: one per VM, 30+)")
        latencies = await replacement_latency(reactor, port)
        print(f"manager: checkout to replacement clone start, 10 checkouts: median "
              f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
              f"(goal: under 1 s; vmpooler: its next loop, 5 s or more)")
    finally:
        stop_process(redis)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
