"""Loopback sockets for tests, typed once: Twisted's stubs type a listening
port's address as any address and a protocol's transport as optional."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.protocol import Protocol


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
