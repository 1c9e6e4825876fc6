"""Loopback sockets for tests, typed once: Twisted's stubs type a listening
port's address as any address and a protocol's transport as optional."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure


def listen(factory: Any) -> IListeningPort:
    """*factory* served on a free port of 127.0.0.1."""
    return reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[no-any-return]


def port_of(listening: IListeningPort) -> int:
    return cast(IPv4Address, listening.getHost()).port


def tcp(protocol: Protocol) -> ITCPTransport:
    """A connected protocol's TCP transport."""
    assert protocol.transport is not None, "not connected"
    return cast(ITCPTransport, protocol.transport)


async def stop_listening(listening: IListeningPort) -> None:
    await maybeDeferred(listening.stopListening)


class Client(Protocol):
    """A raw client: what it received, and a Deferred fired when it is disconnected."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


async def exchange(port: int, request: bytes) -> bytes:
    """Everything 127.0.0.1:``port`` answers ``request`` on a connection it closes."""
    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())
    tcp(client).write(request)
    await client.lost
    return client.received


def without_date(answer: bytes) -> bytes:
    """An HTTP answer without its Date header, which moves from run to run."""
    return b"\r\n".join(line for line in answer.split(b"\r\n")
                        if not line.lower().startswith(b"date:"))
