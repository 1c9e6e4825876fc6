"""
Serving the API: a listening port that drains on stop.

Note [Clean stop]: on SIGTERM twistd stops the services.  The web service
first stops listening, then waits (at most ``grace`` seconds) for the
requests already in progress to finish, so that no answer is cut halfway.
Every Redis change a request makes is one Lua script, so nothing is left
half-recorded whatever moment the process stops at.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from .errors import json_answer

log = Logger()
PREFIX = [b"api", b"v1"]


class InFlight(Resource):
    """
    Wraps the API's resource: counts the requests it has not finished;
    takes the ``/api/v1`` prefix and a trailing slash off the path, so that
    each route is one rule; and answers a path that is not UTF-8 with
    vmpooler's JSON 400, where Klein would answer in plain text.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped
        self.count = 0
        self._idle: list[Deferred[None]] = []

    def render(self, request: Request) -> Any:
        path = list(request.postpath or ())
        if path[:2] == PREFIX:
            request.prepath, path = list(request.prepath or ()) + PREFIX, path[2:]
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
    pools do, not a line per HTTP request; writing one costs a sixth of the
    checkout rate (make bench).
    """

    def log(self, request: Any) -> None:
        pass


class WebService(Service):
    def __init__(self, endpoint: IStreamServerEndpoint, resource: InFlight,
                 clock: IReactorTime, grace: float = 10.0) -> None:
        self._endpoint = endpoint
        self._tracked = resource
        # The API reads JSON bodies itself; Twisted's own form parsing would
        # answer a malformed multipart body with a bare, non-JSON 400.
        self._site = QuietSite(resource, parsePOSTFormSubmission=False)
        self._site.displayTracebacks = False
        self._clock = clock
        self._grace = grace
        self._port: IListeningPort | None = None

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        super().startService()
        d = self._endpoint.listen(self._site)

        def listening(port: IListeningPort) -> None:
            self._port = port
            address: Any = port.getHost()
            log.info("API listening on {host}:{port}", host=address.host, port=address.port)
        return d.addCallback(listening)

    async def _stop(self) -> None:
        if self._port is not None:
            await maybeDeferred(self._port.stopListening)
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
