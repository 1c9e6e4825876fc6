"""
What vmpoolerd.api.twisted_internals relies on in Twisted, driven as it is
used: these fail the day an upgrade removes or changes it.
"""

from __future__ import annotations

from twisted.internet.ssl import platformTrust
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.interface import InterfaceClass

from vmpoolerd.api.twisted_internals import HeadRefusingChannel, IOpenSSLTrustRoot


class RecordingChannel(HeadRefusingChannel):
    totalHeadersSize = 200
    maxHeaders = 3
    refused: tuple[int, int] | None = None

    def head_refused(self, head_size: int, header_count: int) -> None:
        self.refused = (head_size, header_count)
        self.transport.loseConnection()  # type: ignore[union-attr]


def feed(channel: HeadRefusingChannel, head: bytes) -> StringTransport:
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(head)
    return transport


class HeadRefusingChannelTests(SynchronousTestCase):
    def test_a_head_too_large_is_refused_with_its_size(self) -> None:
        channel = RecordingChannel()
        feed(channel, b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 300 + b"\r\n")
        assert channel.refused is not None
        size, count = channel.refused
        self.assertGreater(size, channel.totalHeadersSize)
        self.assertLessEqual(count, channel.maxHeaders)

    def test_too_many_headers_are_refused_with_their_count(self) -> None:
        channel = RecordingChannel()
        feed(channel, b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5)))
        assert channel.refused is not None
        size, count = channel.refused
        self.assertLessEqual(size, channel.totalHeadersSize)
        self.assertEqual(count, channel.maxHeaders + 1)

    def test_a_line_that_does_not_parse_is_refused_within_the_limits(self) -> None:
        channel = RecordingChannel()
        feed(channel, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        assert channel.refused is not None
        size, count = channel.refused
        self.assertLessEqual(size, channel.totalHeadersSize)
        self.assertLessEqual(count, channel.maxHeaders)

    def test_an_acceptable_head_is_not_refused(self) -> None:
        channel = RecordingChannel()
        feed(channel, b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.assertIsNone(channel.refused)

    def test_the_head_size_counts_the_head_being_read_only(self) -> None:
        channel = RecordingChannel()
        self.assertEqual(channel.head_size(), 0)
        feed(channel, b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.assertEqual(channel.head_size(), len(b"GET / HTTP/1.1") + len(b"Host: x"))

    def test_the_default_is_twisteds_bare_400(self) -> None:
        channel = HeadRefusingChannel()
        channel.maxHeaders = 1
        transport = feed(channel, b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 Bad Request"))
        self.assertTrue(transport.disconnecting)


class TrustRootTests(SynchronousTestCase):
    def test_the_platforms_trust_root_provides_the_interface(self) -> None:
        self.assertIsInstance(IOpenSSLTrustRoot, InterfaceClass)
        self.assertTrue(IOpenSSLTrustRoot.providedBy(platformTrust()))
