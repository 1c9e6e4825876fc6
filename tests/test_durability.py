"""Redis's persistence, checked at start (vmpoolerd/store/durability.py)."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.config import RedisConfig
from vmpoolerd.store.connection import connect
from vmpoolerd.store.durability import (
    RETRY, Persistence, PersistenceCheck, PersistenceStore, risks,
)
from vmpoolerd.store.errors import StoreUnavailable

from .processes import free_port
from .redis_server import RedisServer, private_redis
from .waiting import until


class RiskTests(SynchronousTestCase):
    def test_only_appendfsync_always_keeps_every_checkout(self) -> None:
        self.assertEqual(risks(Persistence("yes", "always")), [])
        self.assertIn("appendfsync everysec", risks(Persistence("yes", "everysec"))[0])
        self.assertIn("appendfsync no", risks(Persistence("yes", "no"))[0])
        (risk,) = risks(Persistence("no", "always"))
        self.assertIn("appendonly no", risk)
        self.assertIn("handed out again", risk)
        self.assertIn("unknown", risks(Persistence(None, None))[0])


class StoreTests(TestCase):
    async def persistence(self, *options: str) -> Persistence:
        server = RedisServer(*options)
        self.addCleanup(server.stop)
        redis = connect(server.config, 3.0)
        self.addCleanup(redis.disconnect)
        return await PersistenceStore(redis, reactor).persistence()

    async def test_reads_what_redis_runs_with(self) -> None:
        self.assertEqual(await self.persistence(), Persistence("no", "everysec"))
        self.assertEqual(await self.persistence("--appendonly", "yes", "--appendfsync", "always"),
                         Persistence("yes", "always"))

    async def test_a_redis_that_hides_config_is_unknown(self) -> None:
        self.assertEqual(await self.persistence("--rename-command", "CONFIG", ""),
                         Persistence(None, None))

    async def test_a_redis_that_does_not_answer_is_unavailable(self) -> None:
        redis = connect(RedisConfig(server="127.0.0.1", port=free_port()), 0.5)
        self.addCleanup(redis.disconnect)
        with self.assertRaises(StoreUnavailable):
            await PersistenceStore(redis, reactor, timeout=0.5).persistence()


class CheckTests(TestCase):
    async def test_warns_once_redis_answers(self) -> None:
        warnings: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") == LogLevel.warn and "risk" in event:
                warnings.append(event["risk"])
        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        server, redis = await private_redis(self, 0.5)
        server.stop()  # Redis down at start: the check tries again until it answers
        clock = Clock()
        check = PersistenceCheck(PersistenceStore(redis, clock, timeout=0.5), clock)
        check.startService()
        self.addCleanup(check.stopService)
        self.assertIsNone(check.found)
        self.assertEqual(warnings, [])
        server.start()

        def retried() -> Persistence | None:
            clock.advance(RETRY)
            return check.found
        await until("the check to read Redis's settings", retried, interval=0.2)
        self.assertEqual(check.found, Persistence("no", "everysec"))
        self.assertEqual(len(warnings), 1)
        self.assertIn("appendonly no", warnings[0])
        clock.advance(RETRY * 3)  # checked once: no more attempts, no more warnings
        self.assertEqual(len(warnings), 1)
