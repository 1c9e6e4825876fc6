"""
The API's routes served without Klein's resource (Note [Serving the
routes] in vmpoolerd/api/routing.py): over real sockets, each answer
byte for byte Klein's own (but the Date), a handler whose client goes
away cancelled, and a host Klein cannot decode no obstacle.
"""

from __future__ import annotations

from klein import Klein
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.static import Data

from tests.net import Client, exchange, listen, port_of, tcp, without_date
from tests.waiting import until

from vmpoolerd.api.errors import ApiError, error_answer, json_answer, json_errors
from vmpoolerd.api import routing
from vmpoolerd.api.routing import Routes
from vmpoolerd.api.site import ApiSite, InFlight


class Handlers:
    """A small app: answers at once and later, refusals, a bug, a branch."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[None]] = []
        self.cancelled = 0

    def mount(self, app: Klein) -> None:
        app.route("/now", methods=["GET"])(self.now)
        app.route("/item/<string:name>", methods=["POST"])(self.item)
        app.route("/refused", methods=["GET"])(self.refused)
        app.route("/broken", methods=["GET"])(self.broken)
        app.route("/held", methods=["GET"])(self.held)
        app.route("/files", branch=True)(self.files)

    def now(self, request: IRequest) -> bytes:
        return json_answer(request, 200, {"ok": True})

    async def item(self, request: IRequest, name: str) -> bytes:
        return json_answer(request, 201, {"ok": True, "name": name})

    async def refused(self, request: IRequest) -> bytes:
        raise ApiError(409, "refused", retry_after=3)

    def broken(self, request: IRequest) -> bytes:
        raise ValueError("a bug")

    async def held(self, request: IRequest) -> bytes:
        waiting: Deferred[None] = Deferred()
        self.waiting.append(waiting)
        try:
            await waiting
        except CancelledError:
            self.cancelled += 1
            raise
        return json_answer(request, 200, {"ok": True})

    def files(self, request: IRequest) -> IResource:
        files = Data(b"a file", "text/plain")
        files.putChild(b"a", Data(b"file a", "text/plain"))
        return files


class RoutesCase(TestCase):
    def serve(self, resource: IResource) -> tuple[int, InFlight]:
        served = InFlight(resource)
        site = ApiSite(served, reactor)
        port = listen(site)
        self.addCleanup(port.stopListening)
        return port_of(port), served

    def app(self) -> tuple[Klein, Handlers]:
        app = Klein()
        json_errors(app)
        handlers = Handlers()
        handlers.mount(app)
        return app, handlers

    async def connect(self, port: int) -> Client:
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())

        async def close() -> None:
            if not client.lost.called:
                tcp(client).abortConnection()
                await client.lost
        self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        return client



REQUESTS = [
    b"GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /item/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"GET /refused HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"DELETE /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"HEAD /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /files/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /files/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
]


class SameAnswersTests(RoutesCase):
    async def test_every_answer_is_kleins_own(self) -> None:
        app, _ = self.app()
        klein_port, _ = self.serve(app.resource())
        routes_port, _ = self.serve(Routes(app, error_answer))
        for request in REQUESTS:
            theirs = without_date(await exchange(klein_port, request))
            ours = without_date(await exchange(routes_port, request))
            self.assertEqual(ours, theirs, request)
        # A bug is logged (once per server), as Klein logs it.
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)

    async def test_the_answers_are_those_of_the_handlers(self) -> None:
        app, _ = self.app()
        port, _ = self.serve(Routes(app, error_answer))
        answers = [await exchange(port, request) for request in REQUESTS[:7]]
        self.flushLoggedErrors(ValueError)
        self.assertEqual([a.split(b" ", 2)[1] for a in answers],
                         [b"200", b"201", b"409", b"500", b"404", b"405", b"200"])
        self.assertTrue(answers[1].endswith(b'{"ok": true, "name": "abc"}'))
        self.assertIn(b"Retry-After: 3\r\n", answers[2])
        self.assertIn(b"Allow: GET, HEAD\r\n", answers[5])
        self.assertTrue(answers[6].endswith(b"\r\n\r\n"))  # HEAD: no body

    async def test_a_host_that_is_not_utf8_is_no_obstacle(self) -> None:
        # Klein's resource answers it with a plain-text 400; no route names a host.
        app, _ = self.app()
        port, _ = self.serve(Routes(app, error_answer))
        answer = await exchange(
            port, b"GET /now HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertTrue(answer.endswith(b'{"ok": true}'))


class RememberedMatchTests(RoutesCase):
    async def test_remembered_matches_answer_each_path_and_stay_few(self) -> None:
        self.patch(routing, "MATCHES", 4)
        app, _ = self.app()
        routes = Routes(app, error_answer)
        port, _ = self.serve(routes)
        for name in ["a", "b", "a", "c", "d", "e", "f", "a", "b"]:
            answer = await exchange(port, b"POST /item/%s HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                                    % name.encode())
            self.assertTrue(answer.endswith(b'"name": "%s"}' % name.encode()), answer)
            self.assertLessEqual(len(routes._matches), 4)
        refused = await exchange(port, b"GET /item/a HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
        self.assertTrue(refused.startswith(b"HTTP/1.1 405 "), refused)


class GoneClientTests(RoutesCase):
    async def test_a_handler_whose_client_went_away_is_cancelled(self) -> None:
        app, handlers = self.app()
        port, served = self.serve(Routes(app, error_answer))
        client = await self.connect(port)
        tcp(client).write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        await until("the handler waits", lambda: len(handlers.waiting) == 1, seconds=5)
        tcp(client).abortConnection()
        await until("the handler is cancelled", lambda: handlers.cancelled == 1, seconds=5)
        await until("the request is over", lambda: served.count == 0, seconds=5)
        self.assertEqual(client.received, b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_a_handler_answering_after_its_client_left_writes_nothing(self) -> None:
        app = Klein()
        json_errors(app)
        waiting: Deferred[None] = Deferred()

        @app.route("/stubborn")
        async def stubborn(request: IRequest) -> bytes:  # answers even when cancelled
            try:
                await waiting
            except CancelledError:
                pass
            return json_answer(request, 200, {"ok": True})
        port, served = self.serve(Routes(app, error_answer))
        client = await self.connect(port)
        tcp(client).write(b"GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
        await until("the request is in", lambda: served.count == 1, seconds=5)
        tcp(client).abortConnection()
        await client.lost
        await until("the request is over", lambda: served.count == 0, seconds=5)
        self.assertTrue(waiting.called)  # cancelled: the handler went on, and was not written
        self.assertEqual(self.flushLoggedErrors(), [])
