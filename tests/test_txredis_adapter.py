"""
What vmpoolerd/store/txredis_adapter.py relies on of txredisapi's private
parts: this fails the day an upgrade removes or changes one of them.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import txredisapi
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.store import txredis_adapter
from vmpoolerd.store.connection import _Connection, connect
from vmpoolerd.store.errors import StoreUnavailable
from vmpoolerd.store.scripts import Scripts

from .redis_server import fresh_redis, redis_server


class Protocol(txredisapi.RedisProtocol):
    pass


class PrivatePartsTests(SynchronousTestCase):
    def test_the_version_is_one_the_tests_ran(self) -> None:
        """setup.cfg pins txredisapi to the versions this test passed with."""
        self.assertTrue(version("txredisapi").startswith("1.6."), version("txredisapi"))

    def test_a_handler_holds_its_factory(self) -> None:
        """``_factory`` is an attribute of its own: a handler answers any
        other name with a wrapper for a Redis command."""
        handler = txredisapi.lazyConnectionPool(port=1, poolsize=1)
        self.addCleanup(handler.disconnect)
        self.assertIn("_factory", vars(handler))
        self.assertIsInstance(handler._factory, txredisapi.RedisFactory)

    def test_the_protocol_is_set_before_connecting(self) -> None:
        handler = txredisapi.lazyConnectionPool(port=1, poolsize=1)
        self.addCleanup(handler.disconnect)
        txredis_adapter.set_protocol(handler, Protocol, login="the config")
        self.assertIs(handler._factory.protocol, Protocol)
        self.assertEqual(handler._factory.login, "the config")

    def test_a_factory_lends_a_connection(self) -> None:
        self.assertIn("peek", inspect.signature(txredisapi.RedisFactory.getConnection).parameters)

    def test_the_sentinel_endpoint(self) -> None:
        factory = txredisapi.SentinelConnectionFactory(
            sentinel_manager=None, service_name="m", is_master=True, uuid=None, dbid=None,
            poolsize=1, isLazy=True)
        endpoint = txredis_adapter.sentinel_endpoint(factory)
        self.assertTrue(IStreamClientEndpoint.providedBy(endpoint))
        self.assertIs(endpoint.factory, factory)  # type: ignore[attr-defined]

    def test_a_closing_handler_closes_its_factory(self) -> None:
        self.assertTrue(issubclass(txredis_adapter.ClosingSentinels,
                                   txredisapi.ConnectionHandler))
        self.assertIn("sentinel_manager", inspect.signature(
            txredisapi.SentinelConnectionFactory.__init__).parameters)


class ConnectionTests(TestCase):
    async def test_one_connection_is_one_of_the_pool(self) -> None:
        redis = await fresh_redis(self)
        connection = await txredis_adapter.one_connection(redis)
        self.assertIsInstance(connection, txredisapi.RedisProtocol)
        self.assertIn(connection, redis._factory.pool)
        self.assertEqual(await connection.execute_command("PING"), "PONG")

    async def test_connected_fires_once_the_pool_is_up(self) -> None:
        redis = connect(redis_server().config, 3.0)
        self.addCleanup(redis.disconnect)
        self.assertIs(await txredis_adapter.connected(redis), redis)
        self.assertEqual(len(redis._factory.pool), 2)

    async def test_connections_are_of_the_protocol_set(self) -> None:
        redis = connect(redis_server().config, 3.0)
        self.addCleanup(redis.disconnect)
        connection = await txredis_adapter.one_connection(redis)
        self.assertEqual(type(connection).__name__, "_Connection")
    async def test_a_connection_that_is_up_is_lent_at_once(self) -> None:
        """No wait for one of the pool's connections that is already up."""
        redis = await fresh_redis(self)
        lent = txredis_adapter.one_connection(redis)
        self.assertTrue(lent.called)
        self.assertIn(await lent, redis._factory.connectionQueue.pending)
        self.assertIs(txredis_adapter.up_connection(redis), await lent)

    def test_no_connection_is_up_in_what_is_no_pool(self) -> None:
        self.assertIsNone(txredis_adapter.up_connection(object()))


#: What the stores send: names, keys, JSON, numbers; and what they may not.
ARGUMENTS = ("EVALSHA", "vmpooler__vm__ключ", "", b"\x00\xff\r\n", 0, -17, 2**70, 1.5,
             True, bytearray(b"ab"), None, ["a list"])


class CommandWritingTests(SynchronousTestCase):
    """connection.py writes commands faster than txredisapi, and the same bytes."""

    def test_the_same_bytes_as_txredisapi(self) -> None:
        for charset in ("utf-8", None, "latin-1"):
            ours, theirs = _Connection(charset), txredisapi.RedisProtocol(charset)
            for n in range(len(ARGUMENTS) + 1):
                args = ARGUMENTS[:n] if charset != "latin-1" else ARGUMENTS[:1]
                self.assertEqual(ours._build_command(*args), theirs._build_command(*args))

    def test_what_cannot_be_encoded_is_refused_as_txredisapi_refuses_it(self) -> None:
        for protocol in (_Connection(), txredisapi.RedisProtocol()):
            self.assertRaises(txredisapi.InvalidData, protocol._build_command, "GET", "\ud800")
        latin = _Connection("latin-1")
        self.assertRaises(txredisapi.InvalidData, latin._build_command, "GET", "ключ")


class TimerTests(TestCase):
    """A script's call on a connection that times out its own replies, as
    soon as the store would, starts no timer of the store's (Scripts._call)."""

    async def _timers_while_running(self, store_timeout: float, replicated: bool) -> int:
        redis = await fresh_redis(self, timeout=3.0)
        clock = Clock()
        store = Scripts(redis, clock, store_timeout)
        run = store._replicated if replicated else store._script
        running = ensureDeferred(run("checkout_undo", window=1, hosts="[]"))
        timers = len(clock.getDelayedCalls())
        await running
        self.assertEqual(clock.getDelayedCalls(), [])  # none left behind either
        return timers

    async def test_no_timer_within_the_connections_own(self) -> None:
        for replicated in (True, False):  # a script and its ROLE, or any script
            self.assertEqual(await self._timers_while_running(3.0, replicated), 0)

    async def test_a_timer_when_the_store_waits_less(self) -> None:
        # the script's (the ROLE sent with it is waited for once it has answered)
        for replicated in (True, False):
            self.assertEqual(await self._timers_while_running(2.0, replicated), 1)

    async def test_through_the_pool_when_no_connection_is_up(self) -> None:
        """With no connection up, a script waits for the pool to have
        one, bounded by the store's timeout."""
        redis = await fresh_redis(self, timeout=3.0)
        clock = Clock()
        store = Scripts(redis, clock, 3.0)
        for connection in redis._factory.connectionQueue.pending:
            connection.connected = 0  # as txredisapi marks one that was lost
        running = ensureDeferred(store._script("checkout_undo", window=1, hosts="[]"))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(3.0)
        with self.assertRaises(StoreUnavailable):
            await running
