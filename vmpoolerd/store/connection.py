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
from . import keys, txredis_adapter
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
            # Through Sentinels (Note [Following the master]), a server
            # that is no longer the master is left at once.
            role = (await self.role())[0] if login.sentinels else "master"
        except Exception as e:  # the reply, a timeout, a lost connection
            log.warn("Redis: logging in on a new connection failed ({error}); trying again",
                     error=str(e) or type(e).__name__)
            self.transport.loseConnection()
            return
        if role != "master":
            log.warn("Redis: {peer} is a {role}, not the master; asking the Sentinels again",
                     peer=str(self.transport.getPeer()), role=role)
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

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        """The command as txredisapi writes it, byte for byte, in a few
        calls per argument where txredisapi makes a dozen (a checkout
        batch's script call has seventeen arguments: a tenth of its
        round trip's instructions).  What is not a str, bytes or int is
        txredisapi's to encode, as is a str it cannot."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                value = arg
            elif kind is int:
                value = b"%d" % arg
            elif kind is str and self.charset is not None:
                try:
                    value = arg.encode(self.charset, self.errors)
                except UnicodeEncodeError:
                    value = self._encode_value(arg)
            else:
                value = self._encode_value(arg)
            parts += (b"$%d\r\n" % len(value), value, b"\r\n")
        return b"".join(parts)

    def queue(self, *args: Any) -> Any:
        """A command written with the next one (execute_command), not at once."""
        return super().execute_command(*args)

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
    """A lazy, self-reconnecting txredisapi connection pool (to the master
    the Sentinels name, when ``config`` lists them)."""
    if config.sentinels:
        return _through_sentinels(config, timeout)
    redis = txredisapi.lazyConnectionPool(
        host=config.server, port=config.port, poolsize=2, convertNumbers=False,
        connectTimeout=timeout, replyTimeout=timeout)
    # Before any connection is made: they are made by the reactor, later.
    txredis_adapter.set_protocol(redis, _Connection, login=config)
    return redis


class _SentinelFactory(txredisapi.SentinelConnectionFactory):
    """
    Note [Following the master]: with ``:redis: sentinels:``, every
    connection attempt first asks the Sentinels which server is the master
    of ``master_name`` (txredisapi's Sentinel endpoint), and a connection
    made to a server that is not the master is dropped (LogsIn).  When the
    master dies its connections are lost, and the attempts go on, at most
    a second apart, until the Sentinels name the replica they promoted: no
    restart, no change of config.  A Sentinel that does not answer is
    skipped; one that has no healthy master to name is asked again.
    """

    maxDelay = 1  # seconds between attempts, at most (also each one's connect timeout)


def _sentinels(config: RedisConfig, timeout: float) -> txredisapi.Sentinel:
    sentinels = txredisapi.Sentinel(list(config.sentinels), connectTimeout=timeout,
                                    replyTimeout=timeout, convertNumbers=False)
    # How long one discovery waits for a Sentinel to name a healthy master.
    sentinels.discovery_timeout = timeout
    return sentinels


def _through_sentinels(config: RedisConfig, timeout: float) -> txredisapi.ConnectionHandler:
    factory = _SentinelFactory(
        sentinel_manager=_sentinels(config, timeout), service_name=config.master_name,
        is_master=True, uuid=None, dbid=None, poolsize=2, isLazy=True,
        handler=txredis_adapter.ClosingSentinels, convertNumbers=False, replyTimeout=timeout)
    factory.protocol = _Connection
    factory.login = config
    factory.startConnecting(txredis_adapter.sentinel_endpoint(factory))
    return factory.handler


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


class _WakeupFactory(txredisapi.SubscriberFactory):
    sentinel_manager: txredisapi.Sentinel | None = None

    async def _disconnect(self) -> None:
        await super().disconnect()
        if self.sentinel_manager is not None:
            await self.sentinel_manager.disconnect()

    def disconnect(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._disconnect())


def subscribe_checkouts(config: RedisConfig, reactor: IReactorTCP,
                        on_checkout: Callable[[str], None]) -> Any:
    """A self-reconnecting subscription; call ``.disconnect()`` on the result to end it."""
    factory = _WakeupFactory()
    factory.protocol = _Wakeups
    factory.login = config  # see LogsIn
    factory.on_checkout = on_checkout
    if config.sentinels:  # Note [Following the master]
        factory.sentinel_manager = _sentinels(config, 3.0)
        factory.service_name, factory.is_master = config.master_name, True
        factory.startConnecting(txredis_adapter.sentinel_endpoint(factory))
    else:
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
