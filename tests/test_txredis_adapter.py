"""
What vmpoolerd/store/txredis_adapter.py relies on of txredisapi's private
parts: this fails the day an upgrade removes or changes one of them.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import txredisapi
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.store import txredis_adapter
from vmpoolerd.store.connection import connect

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
