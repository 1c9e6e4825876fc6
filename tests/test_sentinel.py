"""
Redis Sentinel, with real redis-server processes: a master,
a replica and three Sentinels.  The daemon finds the master through the
Sentinels, follows a failover by itself, and answers a checkout only once
a replica has it (Note [Following the master] in store/connection.py,
Note [Replicated answers] in store/scripts.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from vmpoolerd.store.api_store import ApiStore, Request
from vmpoolerd.store.errors import StoreUnavailable

from .daemons import DaemonCase
from .fixtures import fill_ready
from .processes import free_port
from .sentinel_servers import SentinelGroup, connected
from .waiting import until

POOL = "debian-7"


def api_config(group: SentinelGroup, port: int) -> str:
    return (":vsphere:\n  server: '127.0.0.1'\n  username: 'u'\n  password: 'p'\n"
            + group.yaml()
            + f":config:\n  host: '127.0.0.1'\n  port: {port}\n  prefix: 't-'\n"
            ":pools:\n"
            f"  - name: '{POOL}'\n    template: 'Templates/debian'\n"
            f"    folder: 'Pools/{POOL}'\n    datastore: 'LocalDS_0'\n    size: 5\n")


class ReplicatedCheckoutTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.group = SentinelGroup()
        self.addCleanup(self.group.stop)
        self.redis = connected(self.group, self)
        self.store = ApiStore(self.redis, reactor)
        self.addCleanup(self.store.stop)

    def request(self) -> Request:
        return Request(entries=((POOL, 1, (POOL,)),), now="2026-11-29 00:00:00 +0000",
                       fields={})

    async def test_found_through_the_sentinels_and_answered_once_replicated(self) -> None:
        hosts = await fill_ready(self.redis, POOL, 3)
        handed = await self.store.checkout(self.request())
        (host,) = handed[POOL]
        # The replica had it before the answer: WAIT said so.
        self.assertEqual(self.group.replica.cli("SISMEMBER", f"vmpooler__running__{POOL}",
                                                host).strip(), "1")
        # A replica that stops answering: the checkout is not answered
        # (503), and its VM goes back to ready.
        assert self.group.replica.process is not None
        os.kill(self.group.replica.process.pid, signal.SIGSTOP)
        self.addCleanup(self._resume_replica)
        with self.assertRaises(StoreUnavailable):
            await self.store.checkout(self.request())
        await until("the unanswered checkout's VM back in ready", lambda: self.redis.scard(
            f"vmpooler__ready__{POOL}").addCallback(lambda n: n == 2), seconds=10)
        self.assertEqual(await self.redis.smembers(f"vmpooler__running__{POOL}"), {host})
        self.assertEqual(set(await self.redis.smembers(f"vmpooler__ready__{POOL}")),
                         set(hosts) - {host})

    async def test_role_is_asked_once_a_second_and_every_checkout_waits(self) -> None:
        """Note [Replicated answers]: ROLE at most once per ROLE_FOR per
        connection (the pool has two); WAIT for every checkout batch."""
        await fill_ready(self.redis, POOL, 7)
        await self.store.checkout(self.request())  # its connection asks ROLE
        self.group.master.cli("CONFIG", "RESETSTAT")
        for _ in range(5):
            await self.store.checkout(self.request())
        stats = self.group.master.cli("INFO", "commandstats")
        roles = re.search(r"cmdstat_role:calls=(\d+),", stats)
        self.assertLessEqual(int(roles.group(1)) if roles else 0, 1)  # the other connection's
        self.assertIn("cmdstat_wait:calls=5,", stats)

    def _resume_replica(self) -> None:
        assert self.group.replica.process is not None
        os.kill(self.group.replica.process.pid, signal.SIGCONT)


class FailoverTests(DaemonCase):
    timeout = 120

    async def test_a_killed_master_under_load(self) -> None:
        """kill -9 of the master under a steady load of checkouts through
        an API daemon: checkouts answer again within 15 s, without a
        restart; no VM is handed out twice, and every VM answered is
        checked out on the promoted replica."""
        group = SentinelGroup()
        self.addCleanup(group.stop)
        redis = connected(group, self)
        await fill_ready(redis, POOL, 2000)
        port = free_port()
        daemon = self.start(api_config(group, port), "--role", "api")
        await self.wait_listening(daemon, port)
        answers: list[tuple[float, float, int, Any]] = []  # sent, answered, code, body
        killed: list[float] = []

        async def client() -> None:
            while not killed or time.monotonic() < killed[0] + 20:
                sent = time.monotonic()
                response = await treq.post(f"http://127.0.0.1:{port}/api/v1/vm/{POOL}",
                                           persistent=False)
                body = json.loads(await response.content())
                answers.append((sent, time.monotonic(), response.code, body))
                if response.code != 200:
                    await deferLater(reactor, 0.05)
                if not killed and len(answers) >= 100:
                    group.kill_master()
                    killed.append(time.monotonic())
        await gatherResults([Deferred.fromCoroutine(client()) for _ in range(4)])
        self.assertTrue(group.promoted())
        handed = [body[POOL]["hostname"] for _, _, code, body in answers if code == 200]
        self.assertEqual(len(handed), len(set(handed)), "a VM was handed out twice")
        codes = {code for _, _, code, _ in answers}
        self.assertLessEqual(codes, {200, 503}, codes)
        # Asked for after the kill, and answered.
        after = sorted(t for sent, t, code, _ in answers if code == 200 and sent > killed[0])
        self.assertTrue(after, "no checkout answered after the failover")
        self.assertLess(after[0] - killed[0], 15)
        # Nothing answered was lost: the promoted replica has every VM
        # handed out as running, none of them ready.
        running = set(await redis.smembers(f"vmpooler__running__{POOL}"))
        ready = set(await redis.smembers(f"vmpooler__ready__{POOL}"))
        self.assertLessEqual(set(handed), running)
        self.assertFalse(set(handed) & ready)
        self.assertEqual(len(running) + len(ready), 2000)
