"""
Graphite's plaintext protocol, from the reactor.

Note [Drop, never queue]: a metric is written to the connection if there is
one and its send buffer is not full (the transport pauses us, as a
producer, past its buffer size); otherwise it is dropped and counted.  So a
Graphite that is down or slow costs the daemon nothing but the count, and
nothing ever waits on it.  The connection comes back by itself
(``ClientService``, with backoff).
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..config import GraphiteConfig


@implementer(IPushProducer)
class _Line(Protocol):
    def __init__(self, sender: GraphiteSender) -> None:
        self.sender = sender
        self.paused = False

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.registerProducer(self, True)
        self.sender.connection = self

    def connectionLost(self, reason: Failure = Failure(Exception("lost"))) -> None:
        if self.sender.connection is self:
            self.sender.connection = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True


class GraphiteSender(Service):
    def __init__(self, config: GraphiteConfig, reactor: Any) -> None:
        self._prefix = config.prefix
        self._clock: IReactorTime = reactor
        self.connection: _Line | None = None
        self.sent = 0
        self.dropped = 0
        self._client = ClientService(
            HostnameEndpoint(reactor, config.server, config.port),
            Factory.forProtocol(lambda: _Line(self)),
            retryPolicy=backoffPolicy(maxDelay=30.0), clock=reactor)

    def send(self, name: str, value: float) -> None:
        """``<prefix>.<name> <value> <epoch>``, or a drop (Note [Drop, never queue])."""
        connection = self.connection
        if connection is None or connection.paused or connection.transport is None:
            self.dropped += 1
            return
        line = f"{self._prefix}.{name} {value:g} {int(self._clock.seconds())}\n"
        connection.transport.write(line.encode())
        self.sent += 1

    def startService(self) -> None:
        super().startService()
        self._client.startService()

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return self._client.stopService()
