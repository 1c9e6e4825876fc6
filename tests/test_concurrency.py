"""
Many clients, several daemons, one Redis: every VM is handed out at most
once, a refused request takes nothing, and every VM stays in exactly one
set.
"""

from __future__ import annotations

import random
from collections import Counter

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.connection import connect

from .fixtures import fill_ready, make_config, sets_of
from .http import Client
from .redis_server import fresh_redis, redis_server

POOLS = {"debian-7-i386": 40, "debian-7-x86_64": 30, "centos-7-x86_64": 20}
DAEMONS = 4
REQUESTS = 240


class ConcurrentCheckoutTests(TestCase):
    async def test_mixed_multi_pool_requests(self) -> None:
        redis = await fresh_redis(self)
        config = make_config()
        hosts = {pool: await fill_ready(redis, pool, n) for pool, n in POOLS.items()}
        everything = {h for pool in hosts.values() for h in pool}

        clients = []
        for _ in range(DAEMONS):
            connection = connect(redis_server().config, 5)
            self.addCleanup(connection.disconnect)
            api = VmpoolerApi(config, ApiStore(connection, reactor, 5), Clock())
            clients.append(Client(api.resource()))

        rng = random.Random(42)
        names = list(POOLS) + ["debian-7-32", "debian", "debian-7-64"]

        def request(i: int):  # type: ignore[no-untyped-def]
            client = clients[i % DAEMONS]
            wanted = {name: rng.randint(1, 4) for name in rng.sample(names, rng.randint(1, 3))}
            if i % 2:
                return client.post("/api/v1/vm", wanted)
            path = "+".join(name for name, n in wanted.items() for _ in range(n))
            return client.post(f"/api/v1/vm/{path}")

        answers = await gatherResults([ensureDeferred(request(i)) for i in range(REQUESTS)])

        handed: list[str] = []
        for answer in answers:
            self.assertIn(answer.code, (200, 503), answer.body)
            if answer.code == 200:
                for name, value in answer.body.items():
                    if name not in ("ok", "domain"):
                        got = value["hostname"]
                        handed.extend([got] if isinstance(got, str) else got)
        codes = Counter(a.code for a in answers)
        self.assertGreater(codes[200], 10)
        self.assertGreater(codes[503], 10)
        self.assertEqual(len(handed), len(set(handed)), "a VM was handed out twice")

        sets = await sets_of(redis, config)
        placed = Counter(h for members in sets.values() for h in members)
        self.assertEqual(set(placed), everything, "a VM is in no set")
        self.assertEqual(max(placed.values()), 1, "a VM is in two sets")
        running = {h for key, m in sets.items() if "__running__" in key for h in m}
        self.assertEqual(running, set(handed), "running VMs are exactly those handed out")
        for pool in POOLS:
            active = await redis.hgetall(f"vmpooler__active__{pool}")
            self.assertEqual(set(active), sets[f"vmpooler__running__{pool}"])
