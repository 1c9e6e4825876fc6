"""
On-demand requests (part of `make bench`): the time from posting a request
to every VM of it handed out, against the simulator's own clone and boot
time for as many VMs, measured in the same run (a reference: the same
clones started straight through the provider, and each VM's boot seen in
the inventory).  The difference is what vmpoolerd adds: queueing, the
manager's cycles, the readiness checks and the hand-out.

For 1, 5 and 20 VMs (20 is two waves of ondemand_clone_limit's 10), with
the default loop delays (check_loop_delay_min 5 s) and with 1 s.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import yaml
from twisted.internet import defer, task

from tests.processes import stop_process
from tests.vcsim_server import inventory, start_vcsim
from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager.service import Manager
from vmpoolerd.names import new_hostname
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.connection import connect
from vmpoolerd.store.ondemand import READY, Wanted
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.vsphere.provider import Provider

from .servers import start_redis

POOL, FOLDER, TEMPLATE = "od", "Pools/od", "Templates/centos-7-plain"
SIZES = (1, 5, 20)
ROUNDS = 3
POLL = 0.05


def config(redis_port: int, loop_min: float) -> Config:
    raw = {
        ":vsphere": {"server": "127.0.0.1", "username": "u", "password": "p"},
        ":redis": {"server": "127.0.0.1", "port": redis_port},
        ":config": {"ready_check_port": 0, "check_loop_delay_min": loop_min,
                    "prefix": "od-"},
        ":pools": [{"name": POOL, "template": TEMPLATE, "folder": FOLDER,
                    "datastore": "LocalDS_0", "size": 1}],
    }
    return parse_config(yaml.safe_dump(raw), {})


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds)


async def bare(reactor: Any, provider: Provider, count: int) -> float:
    """Seconds for ``count`` clones started at once to be booted (powered
    on, their names as hostnames), polled as the manager would see them."""
    names = {new_hostname("ref-") for _ in range(count)}
    start = time.monotonic()
    clones = [defer.ensureDeferred(provider.clone(TEMPLATE, FOLDER, "LocalDS_0", name))
              for name in names]
    while True:
        booted = {vm.name for vm in await provider.inventory(FOLDER)
                  if vm.name in names and vm.powered_on and vm.hostname == vm.name}
        if booted == names:
            break
        await sleep(reactor, POLL)
    elapsed = time.monotonic() - start
    await defer.gatherResults(clones)
    for name in names:
        await provider.destroy(FOLDER, name)
    return elapsed


async def ondemand(reactor: Any, store: ApiStore, count: int) -> float:
    """Seconds from a request of ``count`` VMs to it handed out."""
    rid = new_hostname("bench-")
    start = time.monotonic()
    await store.ondemand.create(rid, [Wanted(POOL, POOL, count)], reactor.seconds(), "user:bench",
                       (1, 1))
    while True:
        request = await store.ondemand.request(rid)
        assert request is not None and request.status in ("pending", READY), request
        if request.status == READY:
            return time.monotonic() - start
        await sleep(reactor, POLL)


async def measure(reactor: Any, redis_port: int, loop_min: float) -> dict[int, list[float]]:
    """Per size, each round's overhead: on-demand time minus the bare one."""
    server = start_vcsim(inventory(folders=[FOLDER]), boot_delay_ms=500, clone_delay_ms=500)
    cfg = config(redis_port, loop_min)
    redis = connect(cfg.redis, 10)
    provider = Provider(server.client(), reactor)
    provider.startService()
    manager = Manager(cfg, PoolStore(redis, reactor), provider, reactor, grace=5)
    store = ApiStore(redis, reactor)
    overheads: dict[int, list[float]] = {n: [] for n in SIZES}
    try:
        await redis.flushall()
        manager.startService()
        while not await redis.scard(f"vmpooler__ready__{POOL}"):
            await sleep(reactor, 0.1)
        for _ in range(ROUNDS):
            for n in SIZES:
                reference = await bare(reactor, provider, n)
                overheads[n].append(await ondemand(reactor, store, n) - reference)
        return overheads
    finally:
        store.stop()
        await manager.stopService()
        await provider.stopService()
        await redis.disconnect()
        server.stop()


async def main(reactor: Any) -> None:
    port, redis = start_redis()
    try:
        await sleep(reactor, 0.5)
        for loop_min in (5.0, 1.0):
            overheads = await measure(reactor, port, loop_min)
            shown = ", ".join(f"{n} VMs {statistics.median(o):+.2f} s"
                              for n, o in overheads.items())
            print(f"ondemand: request to every VM handed out, minus the simulator's own "
                  f"clone and boot of as many VMs (0.5 s + 0.5 s each), median of {ROUNDS}, "
                  f"check_loop_delay_min {loop_min:g} s: {shown}")
    finally:
        stop_process(redis)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
