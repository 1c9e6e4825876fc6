"""
Connecting to Redis: the command connections (which log in themselves),
the checkout wake-up subscription, and the service that closes the
connection when the daemon stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import txredisapi
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTCP
from twisted.logger import Logger

from ..config import RedisConfig
from . import keys
from .scripts import RedisClient

if TYPE_CHECKING:
    from .api_store import ApiStore

log = Logger()


class LogsIn(txredisapi.RedisProtocol):
    """
    A connection that logs in (AUTH, SELECT) as its factory's ``login``
    (a RedisConfig) says.

    Note [Reconnecting]: txredisapi's own login stops its factory from ever
    reconnecting when AUTH or SELECT fails or times out, as they do while
    Redis is stalled (a long script, a fork, a pause) or loading its data:
    the daemon would answer 503 until restarted.  Here a failed login drops
    that connection only, and txredisapi tries again after its back-off
    (1 s, growing to 10 s).
    """

    def connectionMade(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._log_in(self.factory.login))

    async def _log_in(self, login: RedisConfig) -> None:
        try:
            if login.password is not None:
                await self.auth(login.password)
            if login.db:
                await self.select(login.db)
        except Exception as e:  # the reply, a timeout, a lost connection
            log.warn("Redis: logging in on a new connection failed ({error}); trying again",
                     error=str(e) or type(e).__name__)
            self.transport.loseConnection()
            return
        # Without a password or a database of its factory's, txredisapi's
        # login only marks the connection ready (whenConnected fires).
        await super().connectionMade()


class _Connection(LogsIn):
    """
    One connection of the pool.  Commands go out at once: TCP_NODELAY, as
    with two checkout batches in flight Nagle's algorithm would hold the
    second until the first's answer is acknowledged; and each command is
    written as it is made, where Twisted would buffer it until the
    reactor's next turn, while Redis could already be running the script
    (README, "Performance": ``python -m bench.ab`` compares such changes).
    """

    def connectionMade(self) -> Deferred[None]:
        self.transport.setTcpNoDelay(True)
        return super().connectionMade()

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().execute_command(*args, **kwargs)
        transport = self.transport
        # What doWrite cannot send now stays buffered for the reactor, and
        # a send that fails is found again there: its return is the
        # reactor's business.  A closing transport is left to the reactor.
        if not self.pipelining and not transport.disconnecting:
            transport.doWrite()
        return answer


def connect(config: RedisConfig, timeout: float) -> txredisapi.ConnectionHandler:
    """A lazy, self-reconnecting txredisapi connection pool."""
    redis = txredisapi.lazyConnectionPool(
        host=config.server, port=config.port, poolsize=2, convertNumbers=False,
        connectTimeout=timeout, replyTimeout=timeout)
    # Before any connection is made: they are made by the reactor, later.
    redis._factory.protocol = _Connection
    redis._factory.login = config
    return redis


class _Wakeups(LogsIn, txredisapi.SubscriberProtocol):
    """
    Listens on the checkout channel (keys.CHECKOUT_CHANNEL) and wakes the pool named.  A refused
    login is tried again (LogsIn); txredisapi's subscriber has no reply
    timeout, so a login that never gets an answer waits.  Wake-ups only
    hurry the maintainers: their own loops refill the pools meanwhile.
    """

    def connectionMade(self) -> Any:
        self.whenConnected().addCallback(lambda _: self.subscribe(keys.CHECKOUT_CHANNEL))
        return super().connectionMade()

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.on_checkout(message)


def subscribe_checkouts(config: RedisConfig, reactor: IReactorTCP,
                        on_checkout: Callable[[str], None]) -> Any:
    """A self-reconnecting subscription; call ``.disconnect()`` on the result to end it."""
    factory = txredisapi.SubscriberFactory()
    factory.protocol = _Wakeups
    factory.login = config  # see LogsIn
    factory.on_checkout = on_checkout
    factory.startConnecting(HostnameEndpoint(reactor, config.server, config.port))
    return factory


class RedisService(Service):
    """Owns the Redis connection: closes it once the API has drained."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self.stores: list[ApiStore] = []

    def stopService(self) -> Deferred[Any]:  # type: ignore[override]
        super().stopService()
        for store in self.stores:
            store.stop()
        return self.redis.disconnect()
