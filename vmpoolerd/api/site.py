"""
Serving the API: a site that closes idle connections, on a listening port
that drains on stop.

Note [Clean stop]: on SIGTERM twistd stops the services.  The web service
first stops listening and closes its idle keep-alive connections (a busy
one closes once answered), so that no new request comes in; then it waits
(at most ``grace`` seconds) for the requests already in progress to
finish, so that no answer is cut halfway.
Every Redis change a request makes is one Lua script, so nothing is left
half-recorded whatever moment the process stops at.
"""

from __future__ import annotations

import json
import resource as resource_module
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import (
    IAddress, IListeningPort, IReactorTime, IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from . import dialect
from .errors import json_answer
from .twisted_internals import HeadRefusingChannel

log = Logger()
IDLE_TIMEOUT = 60.0  # seconds a keep-alive connection may sit idle
HEAD_TIMEOUT = 10.0  # seconds from a request's first byte to the end of its head
BODY_TIMEOUT = 30.0  # seconds from the end of the head to the end of the body
MAX_BODY = 1024 * 1024
BODY_TOO_LARGE = "the request body is larger than 1 MiB"
# Twisted's limits on a request's head: each line, and the head in all.
MAX_LINE = 16 * 1024
MAX_HEAD = 16 * 1024
# Descriptors kept for everything but clients: Redis, vCenter, LDAP, logs.
RESERVED_DESCRIPTORS = 256


def connection_cap(descriptors: int) -> int:
    """How many clients may be connected at once, with *descriptors* available."""
    return max(1, descriptors - min(RESERVED_DESCRIPTORS, descriptors // 2))


def _refusal(code: int, phrase: bytes, error: str) -> bytes:
    """A whole answer that refuses a request and closes its connection."""
    body = json.dumps({"ok": False, "error": error}).encode()
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (code, phrase, len(body), body))


class InFlight(Resource):
    """
    Wraps the API's resource: counts the requests it has not finished;
    takes the ``/api/v1`` (``/api/v2``, ``/api/v3``) prefix off the path,
    noting on the request which generation it asked for (dialect.py), and
    a trailing slash, so that each route is one rule for every generation;
    and answers a path that is not UTF-8 with vmpooler's JSON 400, where
    Klein would answer in plain text.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped
        self.count = 0
        self._idle: list[Deferred[None]] = []

    def render(self, request: Request) -> Any:
        path = list(request.postpath or ())
        if len(path) > 1 and path[0] == b"api" and path[1] in dialect.PREFIXES:
            dialect.note(request, dialect.PREFIXES[path[1]])
            request.prepath, path = list(request.prepath or ()) + path[:2], path[2:]
        if len(path) > 1 and path[-1] == b"":
            path = path[:-1]
        request.postpath = path
        try:
            for segment in path:
                segment.decode("utf-8")
        except UnicodeDecodeError:
            return json_answer(request, 400, {"ok": False, "error": "the path is not UTF-8"})
        self.count += 1
        request.notifyFinish().addBoth(self._finished)
        return self._wrapped.render(request)

    def _finished(self, _: object) -> None:
        self.count -= 1
        if self.count == 0:
            waiters, self._idle = self._idle, []
            for d in waiters:
                d.callback(None)

    def idle(self) -> Deferred[None]:
        if self.count == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d


class QuietSite(Site):
    """
    Note [No access log]: like vmpooler, the daemon's log holds what the
    pools do, not a line per HTTP request, which would slow every checkout
    (README, Performance).
    """

    def log(self, request: Any) -> None:
        pass


class ApiRequest(Request):
    """A request whose body is refused as soon as it passes MAX_BODY."""

    channel: ApiChannel
    received = 0

    def getRequestHostname(self) -> bytes:
        """The Host header's name; without one, on a socket with no host
        name (``listen: unix:...``), ``localhost``.  A connection's
        requests nearly always name the same host: its name is worked out
        once per connection, not per request."""
        header = self.getHeader(b"host")
        known = self.channel.hostname
        if known is not None and known[0] == header:
            return known[1]
        if header is None and not hasattr(self.getHost(), "host"):
            name = b"localhost"
        else:
            name = super().getRequestHostname()
        self.channel.hostname = (header, name)
        return name

    def handleContentChunk(self, data: bytes) -> None:
        self.received += len(data)
        if self.received <= MAX_BODY:
            super().handleContentChunk(data)
        else:
            self.channel.refuse_body()
            self.channel.drop(len(data))


class ApiChannel(HeadRefusingChannel):
    """
    An HTTP/1.1 connection that notes when it was last active (opened, data
    read, or answered), for :class:`ApiSite`'s sweep.  It is busy from the
    moment its request is read whole until the answer is written: a slow
    answer is not idleness.

    Note [Large bodies]: a body larger than MAX_BODY is answered 413 as
    soon as that is known, from its Content-Length or as its chunks arrive:
    it is never stored, where Twisted would spool it whole to a temporary
    file, however large.  The rest of the body is read and dropped (up to
    ``linger`` bytes), and the connection closed at its end: closed with a
    body still coming in, it would be reset, and a client still sending
    would not read the answer.  The API checks the size again (routes.read_body), for
    a site other than this one.

    Note [Slow clients]: a request must arrive at a pace: its head within
    ``HEAD_TIMEOUT`` of its first byte and its body within ``BODY_TIMEOUT``
    of its head, or :class:`ApiSite`'s sweep answers 408 and closes the
    connection (a client that sends a header line now and then would
    otherwise count as active forever).  A request line longer than
    ``MAX_LINE`` is answered 414, a head larger than ``MAX_HEAD`` (or with
    too many headers) 431, and any other malformed head 400, all as JSON,
    where Twisted would answer a bare 400 or close without a word.
    """

    site: ApiSite
    linger = 64 * 1024 * 1024
    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEAD
    last_active = 0.0
    busy = False
    refused = False
    head_started: float | None = None  # the first byte of the request being read
    head_ended: float | None = None  # the end of its head, while its body is read
    hostname: tuple[bytes | None, bytes] | None = None  # Host header, its name
    _dropped = 0
    _declared_left: int | None = None  # of a refused body of a declared length

    def connectionMade(self) -> None:
        super().connectionMade()
        self.last_active = self.site.reactor.seconds()
        self.site.channels.add(self)
        # Asked for every request, the same all along the connection:
        # worked out once.
        self._secure = super().isSecure()
        self._host = super().getHost()
        self._peer = super().getPeer()

    def isSecure(self) -> bool:
        return self._secure

    def getHost(self) -> IAddress:
        return self._host

    def getPeer(self) -> IAddress:
        return self._peer

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes,
                     headers: Headers) -> None:
        """The status line and headers as Twisted writes them, in one piece,
        where Twisted hands the transport two dozen, checked one by one."""
        head = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head))  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.site.channels.discard(self)
        self.site.closing.discard(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        self.last_active = self.site.reactor.seconds()
        if not self.busy and self.head_started is None:
            self.head_started = self.last_active
        super().dataReceived(data)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.head_size() == 0:
            self.refuse(414, b"URI Too Long", f"the request line is longer than {MAX_LINE} bytes")
        else:
            self.refuse(431, b"Request Header Fields Too Large",
                        f"a header line is longer than {MAX_LINE} bytes")

    def head_refused(self, head_size: int, header_count: int) -> None:
        # Twisted's answer to a head it will not take: the head too large,
        # too many headers, or a line it cannot parse.
        if head_size > self.totalHeadersSize:
            self.refuse(431, b"Request Header Fields Too Large",
                        f"the request head is larger than {MAX_HEAD} bytes")
        elif header_count > self.maxHeaders:
            self.refuse(431, b"Request Header Fields Too Large",
                        f"the request has more than {self.maxHeaders} headers")
        else:
            self.refuse(400, b"Bad Request", "the request is not valid HTTP/1.1")

    def refuse(self, code: int, phrase: bytes, error: str) -> None:
        """Answer *error* and close: the request cannot be read further."""
        if not self.refused:
            self.refused = True
            self.transport.write(_refusal(code, phrase, error))  # type: ignore[union-attr]
        self._close()

    def allHeadersReceived(self) -> None:
        self.head_ended = self.site.reactor.seconds()
        if self.length is not None and self.length > MAX_BODY:
            self._declared_left = self.length
            self.refuse_body()
        else:
            super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._declared_left is None:
            super().rawDataReceived(data)  # a chunked body is decoded to its end
            return
        self._declared_left -= len(data)
        self.drop(len(data))
        if self._declared_left <= 0:
            self._close()

    def allContentReceived(self) -> None:
        if self.refused:  # the end of a refused chunked body
            self._close()
            return
        self.busy = True
        self.head_started = self.head_ended = None
        super().allContentReceived()

    def refuse_body(self) -> None:
        """Answer 413 at once; the body is read and dropped to its end."""
        if self.refused:
            return
        self.refused = True
        self.transport.write(  # type: ignore[union-attr]
            _refusal(413, b"Request Entity Too Large", BODY_TOO_LARGE))

    def overdue(self, now: float) -> bool:
        """Whether the request being read missed its deadline (Note [Slow clients])."""
        if self.busy:
            return False
        if self.head_ended is not None:
            return now - self.head_ended > self.site.body_timeout
        return self.head_started is not None and now - self.head_started > self.site.head_timeout

    def drop(self, size: int) -> None:
        """``size`` bytes of a refused body read and dropped."""
        self._dropped += size
        if self._dropped > self.linger:
            self._close()

    def _close(self) -> None:
        if not self.transport.disconnecting:  # type: ignore[union-attr]
            self.loseConnection()

    def requestDone(self, request: Request) -> None:  # type: ignore[override]
        # Before Twisted's: it may start the next pipelined request at once.
        self.busy = False
        self.last_active = self.site.reactor.seconds()
        super().requestDone(request)


class ApiSite(QuietSite):
    """
    Note [Idle connections]: a connection with no request in progress that
    has sent nothing, and been answered nothing, for ``idle_timeout``
    seconds is closed: the daemon does not hold file descriptors for
    clients that went away, or that stall in the middle of a request.  One
    that has still not gone a sweep later (a client that does not read) is
    aborted.  Twisted's own idle timeout is a timer per connection that it
    cancels and arms again for every request, a cost on every checkout
    (README, Performance).  Here a
    connection only notes when it was last active, and a sweep every quarter
    of ``idle_timeout`` looks at them all: an idle connection goes after 1
    to 1.25 times ``idle_timeout``.
    """

    protocol = ApiChannel  # type: ignore[assignment]

    def __init__(self, resource: IResource, clock: IReactorTime,
                 idle_timeout: float = IDLE_TIMEOUT, head_timeout: float = HEAD_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, max_connections: int | None = None
                 ) -> None:
        # The API reads JSON bodies itself; Twisted's own form parsing would
        # answer a malformed multipart body with a bare, non-JSON 400.
        super().__init__(resource, requestFactory=ApiRequest, timeout=None, reactor=clock,
                         parsePOSTFormSubmission=False)
        self.displayTracebacks = False
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        if max_connections is None:
            max_connections = connection_cap(resource_module.getrlimit(
                resource_module.RLIMIT_NOFILE)[0])
        self.max_connections = max_connections
        self.channels: set[ApiChannel] = set()
        self.closing: set[ApiChannel] = set()
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = clock

    def startFactory(self) -> None:
        super().startFactory()
        self._sweeper.start(min(self.idle_timeout, self.head_timeout, self.body_timeout) / 4,
                            now=False)

    def buildProtocol(  # type: ignore[override]  # a refusal is no HTTP channel
        self, addr: IAddress | None
    ) -> Protocol | None:
        """
        Note [Connection cap]: beyond ``max_connections`` open connections
        (by default, what the descriptor limit leaves after
        RESERVED_DESCRIPTORS, or half of it when that is less) a new client
        is answered 503 and closed, so
        the daemon never runs out of descriptors for Redis, vCenter and
        the clients it already serves.
        """
        if len(self.channels) + len(self.closing) >= self.max_connections:
            return _Busy()
        return super().buildProtocol(addr)

    def stopFactory(self) -> None:
        if self._sweeper.running:
            self._sweeper.stop()
        super().stopFactory()

    def drain(self) -> None:
        """
        Take no request beyond those in progress (Note [Clean stop]): idle
        connections close now, busy ones once their answer is written.
        """
        for channel in list(self.channels):
            if channel.busy:
                channel.persistent = False
                for request in channel.requests:
                    if not request.startedWriting:
                        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            else:
                self.channels.discard(channel)
                channel.loseConnection()

    def sweep(self) -> None:
        for channel in list(self.closing):
            transport: Any = channel.transport
            transport.abortConnection()
        now = self.reactor.seconds()
        cutoff = now - self.idle_timeout
        self.closing = {c for c in self.channels if not c.busy and c.last_active <= cutoff}
        for channel in self.channels - self.closing:
            if channel.overdue(now):
                self.closing.add(channel)
                channel.refuse(408, b"Request Timeout", "the request arrived too slowly")
        self.channels -= self.closing
        for channel in self.closing:
            channel.loseConnection()


class _Busy(Protocol):
    """A client beyond the connection cap: told so, and closed."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(_refusal(503, b"Service Unavailable",
                                      "too many connections; try again shortly"))
        self.transport.loseConnection()


class WebService(Service):
    def __init__(self, endpoint: IStreamServerEndpoint, resource: InFlight,
                 clock: IReactorTime, grace: float = 10.0) -> None:
        self._endpoint = endpoint
        self._tracked = resource
        self._site = ApiSite(resource, clock)
        self._clock = clock
        self._grace = grace
        self._port: IListeningPort | None = None

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        super().startService()
        d = self._endpoint.listen(self._site)

        def listening(port: IListeningPort) -> None:
            self._port = port
            address: Any = port.getHost()
            name = getattr(address, "name", None)  # a UNIX socket's path
            where = name.decode() if isinstance(name, bytes) else name or \
                f"{address.host}:{address.port}"
            log.info("API listening on {where}", where=where)
        return d.addCallback(listening)

    async def _stop(self) -> None:
        if self._port is not None:
            await maybeDeferred(self._port.stopListening)
        self._site.drain()
        if self._tracked.count:
            log.info("waiting for {n} requests to finish", n=self._tracked.count)
            idle = self._tracked.idle()
            idle.addTimeout(self._grace, self._clock)
            try:
                await idle
            except Exception:
                log.warn("stopping with {n} requests unfinished", n=self._tracked.count)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return Deferred.fromCoroutine(self._stop())
