"""
Tests of :mod:`vmpoolerd.probe`, on loopback only.

Nothing here may leave the machine, so no real DNS query is made (the
configured name server is not on loopback): names are resolved by a fake
resolver given to ``HostnameEndpoint`` through a reactor that provides
``IReactorPluggableNameResolver``; IP literals go through the real reactor.

"No answer" (a firewall dropping SYNs) is made on loopback with a listening
socket whose accept queue is full: ``listen(0)`` queues one connection, and
nothing accepts it; Linux then drops further SYNs (``tcp_abort_on_overflow``
is 0 by default), so a connect neither succeeds nor is refused.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import time
from typing import Any, Sequence

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from .processes import free_port
from vmpoolerd.manager import failures
from vmpoolerd.manager.failures import VmFailure
from vmpoolerd.manager.probe import probe_address, tcp_probe


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class FakeNames:
    """Answers from a table; a name outside it does not exist; ``hang`` never answers."""

    def __init__(self, table: dict[str, str], hang: Sequence[str] = ()) -> None:
        self.table = table
        self.hang = hang
        self.asked: list[str] = []

    def resolveHostName(
        self,
        receiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.asked.append(hostName)
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        if hostName not in self.hang:
            if hostName in self.table:
                receiver.addressResolved(IPv4Address("TCP", self.table[hostName], portNumber))
            receiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver, IReactorTime)
class NamedReactor:
    """The global reactor (its clock included), with names resolved by ``nameResolver``."""

    def __init__(self, names: FakeNames) -> None:
        self.nameResolver = names

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class Server(Protocol):
    factory: Counting

    def connectionMade(self) -> None:
        self.factory.made += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.factory.lost.called:  # the first connection's end
            self.factory.lost.callback(None)


class Counting(ServerFactory):
    protocol = Server  # type: ignore[assignment]

    def __init__(self) -> None:
        self.made = 0
        self.lost: Deferred[None] = Deferred()


class TcpProbeTests(TestCase):
    def setUp(self) -> None:
        self.factory = Counting()
        self.listener = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.listener.stopListening)
        self.port = self.listener.getHost().port  # type: ignore[attr-defined]

    async def test_listening(self) -> None:
        self.assertTrue(await tcp_probe(reactor, "127.0.0.1", self.port, timeout=2))
        self.assertEqual(self.factory.made, 1)
        # The probe closed its end: the server sees the connection go.
        await self.factory.lost.addTimeout(2, reactor)

    async def test_out_of_descriptors_is_unknown_not_unreachable(self) -> None:
        """Note [Unknown probes]: this host's fault says nothing of the VM."""
        # Once first, so that name resolution has imported what it needs.
        self.assertIs(await tcp_probe(reactor, "127.0.0.1", self.port, timeout=2), True)
        await self.factory.lost.addTimeout(2, reactor)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8,
                                                        hard))
            while True:
                try:
                    held.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    break
            answer = await tcp_probe(reactor, "127.0.0.1", self.port, timeout=2)
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.assertIsNone(answer)
        self.assertEqual(self.factory.made, 1)
        self.assertIs(await tcp_probe(reactor, "127.0.0.1", self.port, timeout=2), True)

    async def test_closed_port(self) -> None:
        started = time.monotonic()
        port = free_port()
        self.assertEqual(await tcp_probe(reactor, "127.0.0.1", port, timeout=2), VmFailure(
            failures.PORT_REFUSED, f"port {port} refused the connection"))
        self.assertLess(time.monotonic() - started, 1)  # refused, not timed out

    async def test_hostname_is_resolved(self) -> None:
        names = FakeNames({"vm1.example.test": "127.0.0.1"})
        self.assertTrue(
            await tcp_probe(NamedReactor(names), "vm1.example.test", self.port, timeout=2)
        )
        self.assertEqual(names.asked, ["vm1.example.test"])

    async def test_unknown_hostname(self) -> None:
        names = FakeNames({})
        self.assertEqual(
            await tcp_probe(NamedReactor(names), "nonexistent.invalid", self.port, timeout=2),
            VmFailure(failures.UNREACHABLE, "the name 'nonexistent.invalid' could not be resolved"))
        self.assertEqual(names.asked, ["nonexistent.invalid"])

    async def test_dns_never_answers(self) -> None:
        names = FakeNames({}, hang=["slow.example.test"])
        started = time.monotonic()
        self.assertEqual(
            await tcp_probe(NamedReactor(names), "slow.example.test", self.port, timeout=0.3),
            VmFailure(failures.PORT_TIMEOUT, f"port {self.port} did not answer within 0.3 s"))
        self.assertLess(time.monotonic() - started, 2)

    async def test_no_answer(self) -> None:
        listening = socket.socket()
        self.addCleanup(listening.close)
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        address = listening.getsockname()
        for _ in range(5):  # fill the accept queue: until a connection does not complete
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(address)
            if not select.select([], [filler], [], 0.2)[1]:
                break
        else:
            self.fail("could not fill the accept queue")
        started = time.monotonic()
        self.assertEqual(await tcp_probe(reactor, "127.0.0.1", address[1], timeout=0.5),
                         VmFailure(failures.PORT_TIMEOUT,
                                   f"port {address[1]} did not answer within 0.5 s"))
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 2)


class ProbeAddressTests(SynchronousTestCase):
    def test_hostname(self) -> None:
        self.assertEqual(
            probe_address("abc123", "example.com", "10.0.0.5", "hostname"), "abc123.example.com"
        )

    def test_hostname_without_domain(self) -> None:
        self.assertEqual(probe_address("abc123", None, "10.0.0.5", "hostname"), "abc123")
        self.assertEqual(probe_address("abc123", "", None, "hostname"), "abc123")

    def test_ip(self) -> None:
        self.assertEqual(probe_address("abc123", "example.com", "10.0.0.5", "ip"), "10.0.0.5")

    def test_ip_not_reported_yet(self) -> None:
        self.assertIsNone(probe_address("abc123", "example.com", None, "ip"))
        self.assertIsNone(probe_address("abc123", "example.com", "", "ip"))

    def test_unknown_mode(self) -> None:
        self.assertRaises(ValueError, probe_address, "abc123", "example.com", None, "dns")
