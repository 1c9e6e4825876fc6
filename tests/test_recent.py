"""Note [Status once a second] in vmpoolerd/api/recent.py."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.recent import Recent
from vmpoolerd.store.api_store import ApiStore

from .fixtures import fill_ready, make_config
from .http import Client
from .redis_server import fresh_redis


class RecentTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.version = 0
        self.reads: list[Deferred[int]] = []
        self.recent: Recent[str, int] = Recent(self.clock.seconds, lambda: self.version, 1.0)

    def read(self) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.reads.append(d)
        return d

    def get(self) -> Deferred[int]:
        return Deferred.fromCoroutine(self.recent.get("k", self.read))

    def test_reused_within_a_second_and_shared_while_read(self) -> None:
        first, second = self.get(), self.get()
        self.assertEqual(len(self.reads), 1)  # the second waits for the first's read
        self.reads[0].callback(7)
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (7, 7))
        self.clock.advance(0.9)
        self.assertEqual(self.successResultOf(self.get()), 7)
        self.assertEqual(len(self.reads), 1)

    def test_served_a_second_more_while_read_again_then_not(self) -> None:
        self.get()
        self.reads[0].callback(7)
        self.clock.advance(1.1)
        self.assertEqual(self.successResultOf(self.get()), 7)  # at once, and read again
        self.assertEqual(self.successResultOf(self.get()), 7)  # one read at a time
        self.assertEqual(len(self.reads), 2)
        self.reads[1].callback(8)
        self.assertEqual(self.successResultOf(self.get()), 8)
        self.clock.advance(2.0)  # two seconds old: read, and waited for
        third = self.get()
        self.assertNoResult(third)
        self.reads[2].callback(9)
        self.assertEqual(self.successResultOf(third), 9)

    def test_a_failed_read_again_is_not_served(self) -> None:
        self.get()
        self.reads[0].callback(7)
        self.clock.advance(1.1)
        self.assertEqual(self.successResultOf(self.get()), 7)
        self.reads[1].errback(RuntimeError("Redis"))  # nobody waited for it
        self.clock.advance(1.0)
        later = self.get()
        self.assertEqual(len(self.reads), 3)
        self.reads[2].errback(RuntimeError("Redis"))
        self.failureResultOf(later, RuntimeError)

    def test_a_change_is_never_hidden(self) -> None:
        first = self.get()
        self.version += 1  # a change while it is read
        self.reads[0].callback(7)
        self.assertEqual(self.successResultOf(first), 7)
        later = self.get()
        self.assertEqual(len(self.reads), 2)
        self.reads[1].callback(8)
        self.assertEqual(self.successResultOf(later), 8)
        self.version += 1  # a change after it was read
        self.get()
        self.assertEqual(len(self.reads), 3)

    def test_a_failure_is_not_reused(self) -> None:
        first, second = self.get(), self.get()
        self.reads[0].errback(RuntimeError("Redis"))
        self.failureResultOf(first, RuntimeError)
        self.failureResultOf(second, RuntimeError)
        self.get()
        self.assertEqual(len(self.reads), 2)


class StatusReuseTests(TestCase):
    async def test_a_checkout_shows_at_once_and_reads_are_shared(self) -> None:
        redis = await fresh_redis(self)
        clock = Clock()
        store = ApiStore(redis, reactor)
        client = Client(VmpoolerApi(make_config(), store, clock).resource())
        await fill_ready(redis, "debian-7-i386", 2)

        async def ready() -> int:
            body = (await client.get("/api/v1/status")).body
            return int(body["pools"]["debian-7-i386"]["ready"])
        self.assertEqual(await ready(), 2)
        await redis.srem("vmpooler__ready__debian-7-i386", (await redis.smembers(
            "vmpooler__ready__debian-7-i386")).pop())  # another daemon's change
        self.assertEqual(await ready(), 2)  # within the second: reused
        clock.advance(2.0)
        self.assertEqual(await ready(), 1)
        self.assertEqual((await client.post("/api/v1/vm/debian-7-i386")).code, 200)
        self.assertEqual(await ready(), 0)  # this daemon's own change: at once
