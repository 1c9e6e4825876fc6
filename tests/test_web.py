"""
The API's site closes idle keep-alive connections by a sweep (Note [Idle
connections] in vmpoolerd/api/site.py) and refuses large bodies as they arrive
(Note [Large bodies]): real sockets, and an injected clock for the sweep.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Callable, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests import net
from tests.net import exchange, listen, port_of, stop_listening, tcp, without_date
from tests.waiting import until

from vmpoolerd.api.site import (
    BODY_TIMEOUT, HEAD_TIMEOUT, MAX_BODY, MAX_HEAD, MAX_LINE, ApiChannel, ApiSite, connection_cap,
)

IDLE = 60.0
BIG = 64 * 1024 * 1024  # more than the kernel's socket buffers hold


class Answers(Resource):
    """``/quick`` answers at once, ``/slow`` when the test says, ``/big``
    at once with BIG bytes."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.slow: list[Any] = []
        self.asked = 0

    def render_POST(self, request: Any) -> bytes:
        self.asked += 1
        return b"%d" % len(request.content.read())

    def render_GET(self, request: Any) -> Any:
        self.asked += 1
        if request.path == b"/slow":
            self.slow.append(request)
            return NOT_DONE_YET
        if request.path == b"/big":
            return b"x" * BIG
        return b"ok"


class Client(net.Client):
    def get(self, path: str) -> None:
        tcp(self).write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    def answers(self) -> int:
        return self.received.count(b"HTTP/1.1 200")


class SiteCase(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.clock = Clock()
        self.resource = Answers()
        self.site = ApiSite(self.resource, self.clock, idle_timeout=IDLE)
        self.port = listen(self.site)
        self.addCleanup(self.port.stopListening)

    async def connect(self) -> Client:
        before = len(self.site.channels)
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(self.port)), Client())

        async def close() -> None:
            if not client.lost.called:
                tcp(client).abortConnection()
                await client.lost
        self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        await self.until(lambda: len(self.site.channels) == before + 1)
        return client

    async def until(self, condition: Callable[[], bool]) -> None:
        """Turns of the real reactor until ``condition`` holds (at most 5 s)."""
        await until("the condition", condition, seconds=5, interval=0.01)

    async def settle(self) -> None:
        """A few turns of the real reactor, for what would happen to happen."""
        for _ in range(5):
            await deferLater(reactor, 0.01, lambda: None)



class IdleSweepTests(SiteCase):
    async def test_an_idle_connection_is_closed_after_the_timeout(self) -> None:
        client = await self.connect()
        client.get("/quick")
        await self.until(lambda: client.answers() == 1)
        self.clock.advance(IDLE - 1)
        await self.settle()
        self.assertFalse(client.lost.called)
        self.clock.advance(IDLE / 4)  # the sweep after the timeout
        await client.lost
        self.assertEqual(self.site.channels, set())

    async def test_a_connection_that_keeps_asking_stays_open(self) -> None:
        client = await self.connect()
        for n in range(1, 9):
            self.clock.advance(IDLE / 2)
            client.get("/quick")
            await self.until(lambda: client.answers() == n)
        self.assertFalse(client.lost.called)

    async def test_a_connection_that_never_asks_is_closed(self) -> None:
        client = await self.connect()
        self.clock.advance(IDLE)
        await client.lost

    async def test_a_request_that_stalls_is_cut(self) -> None:
        client = await self.connect()
        tcp(client).write(b"GET /quick HTTP/1.1\r\n")
        await self.settle()
        self.clock.advance(IDLE)
        await client.lost
        self.assertEqual(self.resource.asked, 0)

    async def test_a_request_begun_just_before_the_timeout_is_answered(self) -> None:
        client = await self.connect()
        client.get("/quick")
        await self.until(lambda: client.answers() == 1)
        self.clock.advance(IDLE - 1)
        tcp(client).write(b"GET /quick HTTP/1.1\r\n")
        await self.settle()
        self.clock.advance(HEAD_TIMEOUT / 2)  # sweeps come while the request arrives
        await self.settle()
        self.assertFalse(client.lost.called)
        tcp(client).write(b"Host: x\r\n\r\n")
        await self.until(lambda: client.answers() == 2)

    async def test_a_slow_answer_is_not_idleness(self) -> None:
        client = await self.connect()
        client.get("/slow")
        await self.until(lambda: len(self.resource.slow) == 1)
        self.clock.advance(5 * IDLE)
        await self.settle()
        self.assertFalse(client.lost.called)
        self.resource.slow[0].write(b"late")
        self.resource.slow[0].finish()
        await self.until(lambda: client.answers() == 1)
        self.clock.advance(IDLE - 1)
        await self.settle()
        self.assertFalse(client.lost.called)
        self.clock.advance(IDLE / 4)
        await client.lost

    async def test_a_client_that_does_not_read_is_aborted_a_sweep_later(self) -> None:
        client = await self.connect()
        cast(IPushProducer, tcp(client)).pauseProducing()  # reads nothing more
        client.get("/big")
        await self.until(lambda: self.resource.asked == 1)  # and answered: it is sync
        self.clock.advance(IDLE)
        await self.settle()
        self.assertEqual(len(self.site.closing), 1)  # closing, but the answer cannot go out
        self.clock.advance(IDLE / 4)
        await self.until(lambda: not self.site.closing)
        cast(IPushProducer, tcp(client)).resumeProducing()
        await client.lost
        self.assertLess(len(client.received), BIG)

    async def test_stopping_the_site_stops_its_sweep(self) -> None:
        self.assertTrue(self.clock.getDelayedCalls())
        await stop_listening(self.port)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LargeBodyTests(SiteCase):
    REFUSED = b'{"ok": false, "error": "the request body is larger than 1 MiB"}'

    def post(self, client: Client, headers: str) -> None:
        tcp(client).write(f"POST /body HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())

    def assert_answer(self, client: Client) -> None:
        head, _, body = client.received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 "), head)
        self.assertIn(b"Content-Type: application/json", head)
        self.assertEqual(body, self.REFUSED)
        self.assertNotIn(b"100 Continue", client.received)
        self.assertEqual(self.resource.asked, 0)

    async def assert_refused(self, client: Client) -> None:
        """Answered 413, then closed at the body's end."""
        await self.until(lambda: client.lost.called)
        self.assert_answer(client)

    async def test_a_declared_length_over_the_limit_is_refused_before_the_body(self) -> None:
        client = await self.connect()
        self.post(client, f"Content-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n")
        await self.until(lambda: client.received.endswith(self.REFUSED))
        self.assert_answer(client)

    async def test_a_client_sending_its_body_anyway_reads_the_answer(self) -> None:
        # As http.client does: the whole body sent, then the answer read.
        # Closed while the body still came in, the connection would be
        # reset, and the client's send would fail before it read the 413.
        port = port_of(self.port)
        size = 8 * MAX_BODY

        def post() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
                          .encode() + b"x" * size)
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
                return answer
        for _ in range(3):
            answer = await deferToThread(post)
            self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:100])
            self.assertTrue(answer.endswith(self.REFUSED))
        self.assertEqual(self.resource.asked, 0)

    async def test_a_body_past_the_linger_limit_is_cut(self) -> None:
        # More than `linger` of a longer body, then nothing: cut at `linger`,
        # not kept open for the rest.
        self.patch(ApiChannel, "linger", MAX_BODY)
        client = await self.connect()
        self.post(client, f"Content-Length: {8 * MAX_BODY}\r\n")
        tcp(client).write(b"x" * (2 * MAX_BODY))
        await self.until(lambda: client.lost.called)
        self.assertEqual(self.resource.asked, 0)

    async def test_a_chunked_body_is_refused_once_it_passes_the_limit(self) -> None:
        client = await self.connect()
        self.post(client, "Transfer-Encoding: chunked\r\n")
        tcp(client).write(b"%x\r\n%s\r\n" % (MAX_BODY, b"x" * MAX_BODY))
        await self.settle()
        # Bytes too many and the body's end, read at once: one answer.
        tcp(client).write(b"1\r\nx\r\n1\r\ny\r\n0\r\n\r\n")
        await self.assert_refused(client)

    async def test_a_body_at_the_limit_is_read_whole(self) -> None:
        client = await self.connect()
        self.post(client, f"Content-Length: {MAX_BODY}\r\n")
        tcp(client).write(b"x" * MAX_BODY)
        await self.until(lambda: client.received.endswith(b"%d" % MAX_BODY))
        self.post(client, "Transfer-Encoding: chunked\r\n")
        tcp(client).write(b"%x\r\n%s\r\n0\r\n\r\n" % (MAX_BODY, b"x" * MAX_BODY))
        await self.until(lambda: client.answers() == 2)
        self.assertTrue(client.received.endswith(b"%d" % MAX_BODY))
        self.assertEqual(self.resource.asked, 2)
        self.assertFalse(client.lost.called)


class SlowClientTests(SiteCase):
    """Note [Slow clients] and Note [Connection cap]."""

    async def refused_with(self, client: Client, code: int) -> dict[str, Any]:
        """The JSON of the refusal *client* received before its connection closed."""
        await self.until(lambda: client.lost.called)
        head, _, body = client.received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 %d " % code), head)
        self.assertIn(b"Content-Type: application/json", head)
        answer: dict[str, Any] = json.loads(body)
        self.assertIs(answer["ok"], False)
        self.assertEqual(self.resource.asked, 0)
        return answer

    async def test_a_head_sent_a_line_at_a_time_is_cut_at_its_deadline(self) -> None:
        client = await self.connect()
        tcp(client).write(b"GET /quick HTTP/1.1\r\n")
        for n in range(int(HEAD_TIMEOUT) - 1):  # a header line a second: always active
            self.clock.advance(1)
            tcp(client).write(b"X-Drip-%d: x\r\n" % n)
            await self.settle()
        self.assertFalse(client.lost.called)
        self.clock.advance(HEAD_TIMEOUT / 2)
        tcp(client).write(b"X-Late: x\r\n")
        answer = await self.refused_with(client, 408)
        self.assertEqual(answer["error"], "the request arrived too slowly")

    async def test_a_body_slower_than_its_deadline_is_cut(self) -> None:
        client = await self.connect()
        tcp(client).write(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        for _ in range(int(BODY_TIMEOUT) - 1):
            self.clock.advance(1)
            tcp(client).write(b"x")
            await self.settle()
        self.assertFalse(client.lost.called)
        self.clock.advance(BODY_TIMEOUT / 2)
        await self.refused_with(client, 408)

    async def test_a_request_in_time_is_answered_after_a_slow_one_was_cut(self) -> None:
        slow, quick = await self.connect(), await self.connect()
        tcp(slow).write(b"GET /quick HTTP/1.1\r\n")
        await self.settle()
        self.clock.advance(HEAD_TIMEOUT * 2)
        await self.refused_with(slow, 408)
        quick.get("/quick")
        await self.until(lambda: quick.answers() == 1)

    async def test_a_long_request_line_is_414_and_long_headers_431(self) -> None:
        client = await self.connect()
        tcp(client).write(b"GET /" + b"a" * (MAX_LINE + 4096) + b" HTTP/1.1\r\n\r\n")
        await self.refused_with(client, 414)
        client = await self.connect()
        tcp(client).write(b"GET / HTTP/1.1\r\nX-Big: " + b"b" * (MAX_LINE + 10) + b"\r\n\r\n")
        await self.refused_with(client, 431)
        client = await self.connect()
        lines = b"".join(b"X-%d: %s\r\n" % (n, b"c" * 900) for n in range(MAX_HEAD // 900 + 2))
        tcp(client).write(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")
        await self.refused_with(client, 431)
        client = await self.connect()
        many = b"".join(b"X-%d: c\r\n" % n for n in range(ApiChannel.maxHeaders + 1))
        tcp(client).write(b"GET / HTTP/1.1\r\n" + many + b"\r\n")
        await self.refused_with(client, 431)
        client = await self.connect()
        tcp(client).write(b"GET\r\n\r\n")
        await self.refused_with(client, 400)

    async def test_connections_beyond_the_cap_are_refused_politely(self) -> None:
        self.site.max_connections = 2
        first, second = await self.connect(), await self.connect()
        third = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(self.port)), Client())
        answer = await self.refused_with(third, 503)
        self.assertIn("too many connections", answer["error"])
        for n, client in enumerate((first, second)):
            client.get("/quick")
            await self.until(lambda: client.answers() == 1)
        first.lost.addErrback(lambda _: None)
        tcp(first).loseConnection()
        await first.lost
        await self.until(lambda: len(self.site.channels) == 1)
        fourth = await self.connect()
        fourth.get("/quick")
        await self.until(lambda: fourth.answers() == 1)

    def test_the_cap_leaves_descriptors_for_everything_else(self) -> None:
        self.assertEqual(connection_cap(1024), 768)
        self.assertEqual(connection_cap(65536), 65536 - 256)
        self.assertEqual(connection_cap(300), 150)
        self.assertEqual(connection_cap(1), 1)


class DrainTests(SiteCase):
    async def test_drain_closes_idle_connections_and_busy_ones_once_answered(self) -> None:
        idle, busy, half = await self.connect(), await self.connect(), await self.connect()
        idle.get("/quick")
        busy.get("/slow")
        tcp(half).write(b"GET /quick HTTP/1.1\r\n")
        await self.until(lambda: idle.answers() == 1 and len(self.resource.slow) == 1)
        self.site.drain()
        await self.until(lambda: idle.lost.called and half.lost.called)
        await self.settle()
        self.assertFalse(busy.lost.called)
        self.resource.slow[0].write(b"late")
        self.resource.slow[0].finish()
        await self.until(lambda: busy.lost.called)
        head, _, body = busy.received.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nConnection: close", head)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        self.assertEqual(self.resource.asked, 2)


class HeadWritingTests(SiteCase):
    async def test_an_answer_is_byte_for_byte_twisteds(self) -> None:
        twisted_port = listen(Site(self.resource))
        self.addCleanup(twisted_port.stopListening)
        answers = [without_date(await exchange(
            port_of(port), b"GET /quick HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            for port in (twisted_port, self.port)]
        self.assertEqual(answers[0], answers[1])
        self.assertIn(b"\r\nContent-Length: 2\r\n", answers[1])
        self.assertTrue(answers[1].endswith(b"\r\n\r\nok"))
