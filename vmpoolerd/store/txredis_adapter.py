"""
The parts of txredisapi that are not its public API, touched here and
nowhere else.  tests/test_txredis_adapter.py checks each one against the
installed txredisapi, so that an upgrade that removes or changes one fails
there (setup.cfg pins the versions that test passed with).

- ``ConnectionHandler._factory``: the pool's factory.  The connections are
  made by the reactor after ``lazyConnectionPool`` returns, so a protocol
  class set on the factory first is the one every connection uses; and a
  script whose writes are then waited for (``WAIT``) must run on one
  connection of the pool, which only the factory hands out.
- ``RedisFactory.connectionQueue.pending``: the connections in the pool,
  for one that is up now (``getConnection(peek=True)``, which the pool's
  own commands wait on too, costs a generator and Deferreds per call).
- ``BaseRedisProtocol._build_command``, ``_encode_value``, ``charset`` and
  ``errors``: how a command is written (connection.py writes it faster,
  the same bytes).
- ``BaseRedisProtocol.replyTimeout``: how long a connection waits for a
  reply before it fails the command and drops itself.
- ``ConnectionHandler._connected``: fires once every connection of a
  pool is up (tests wait for it, so that none is still logging in).
- ``_SentinelEndpoint``: the endpoint that asks the Sentinels for the
  master before each connection attempt (Note [Following the master] in
  connection.py); txredisapi builds it only inside ``makeSentinel...``
  helpers that fix the protocol and the login.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint


def set_protocol(handler: txredisapi.ConnectionHandler, protocol: type,
                 **attributes: Any) -> None:
    """Make every connection of ``handler``'s pool a ``protocol``, its
    factory carrying ``attributes`` (before any connection is made)."""
    factory = handler._factory
    factory.protocol = protocol
    for name, value in attributes.items():
        setattr(factory, name, value)


def up_connection(handler: Any) -> Any | None:
    """The first connection of the pool that is up now, left in it; None
    when none is (Redis is down, or the pool still connecting), or when
    ``handler`` is no pool (any other RedisClient)."""
    factory = getattr(handler, "_factory", None)
    for connection in factory.connectionQueue.pending if factory is not None else ():
        if connection.connected:
            return connection
    return None


def one_connection(handler: Any) -> Deferred[Any]:
    """One connection of the pool, left in it (for commands that must
    share a connection): the first that is up, else the first to come up."""
    connection = up_connection(handler)
    if connection is not None:
        return succeed(connection)
    waiting: Deferred[Any] = handler._factory.getConnection(peek=True)
    return waiting


def reply_timeout(connection: Any) -> float:
    """Seconds ``connection`` (one of a pool's, or anything else: 0) waits
    for a reply before it fails the command; 0: no limit of its own."""
    return getattr(connection, "replyTimeout", None) or 0


def connected(handler: Any) -> Deferred[Any]:
    """Fires once every connection of ``handler``'s pool is up."""
    up: Deferred[Any] = handler._connected
    return up


def sentinel_endpoint(factory: Any) -> IStreamClientEndpoint:
    """An endpoint connecting ``factory`` to the master its
    ``sentinel_manager`` names for its ``service_name``."""
    endpoint: IStreamClientEndpoint = txredisapi._SentinelEndpoint(factory)
    return endpoint


class ClosingSentinels(txredisapi.ConnectionHandler):
    """A handler whose ``disconnect`` closes the Sentinel connections too."""

    async def _disconnect(self) -> None:
        await self._factory.disconnect()
        await self._factory.sentinel_manager.disconnect()

    def disconnect(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._disconnect())
