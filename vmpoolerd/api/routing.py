"""
Note [Serving the routes]: the API's Klein app is served by
:class:`Routes`, not by Klein's own resource.  Klein's resource makes
for every request what a request of this API does not need: a URL map
bound to the request's host (the API's routes name no host), an
adapted request object to hold it, three Deferreds and six callbacks
around the handler.  For a bare Klein handler that is half of the CPU
time of a request (README, Performance); on a checkout, it was a
third of the daemon's.  Here the map is bound once, and a request is
matched on its method and path (what InFlight left of it; up to
MATCHES pairs' matches are remembered: a CI site asks for the same few
pools, and polls the same VMs), its handler called as Klein calls it
(``Klein.execute_endpoint``, a coroutine's Deferred included), and its
answer written once it is known:

- an error, raised or failed, is answered as errors.error_answer says
  (the handlers Klein's resource would run for this app);
- a handler whose client goes away has its Deferred cancelled, as
  Klein's resource does, and nothing is written to the closed request;
- a branch route (the dashboard's, whose handler returns a resource
  for the rest of the path) is left to Klein's resource, the one that
  knows how to hand the rest of the path on; every other handler
  answers bytes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from werkzeug.routing import Rule

log = Logger()

#: how many (method, path) pairs the routes' matches are kept for; the
#: cache is emptied when full, so that clients cannot make it grow
MATCHES = 1024
#: how Klein names the endpoint of a branch route's rest-of-the-path rule
BRANCH = "_branch"


class Routes(Resource):
    """``app``'s routes, each answered as Note [Serving the routes] says;
    ``failed`` answers a request whose handler failed."""

    isLeaf = True

    def __init__(self, app: Klein, failed: Callable[[Request, Failure], bytes]) -> None:
        super().__init__()
        self._app = app
        self._failed = failed
        self._klein = app.resource()
        # No route names a host: any name will do.
        self._map = app.url_map.bind("localhost")
        self._matches: dict[tuple[bytes, bytes], tuple[Rule, Mapping[str, Any]]] = {}
        branches = [name for name in app.endpoints if name.endswith(BRANCH)]
        self._branches = frozenset(branches + [name[:-len(BRANCH)] for name in branches])

    def render(self, request: Request) -> Any:
        try:
            rule, arguments = self._match(request)
            if rule.endpoint in self._branches:
                return self._klein.render(request)
            answer: Any = self._app.execute_endpoint(rule.endpoint, request, **arguments)
        except Exception:
            answer = self._failed(request, Failure())
        if not isinstance(answer, Deferred):
            _write(answer, request)
            return NOT_DONE_YET
        gone = request.notifyFinish()
        gone.addErrback(lambda _: answer.cancel())
        answer.addErrback(self._failure, request, gone)
        answer.addCallback(_write, request, gone)
        answer.addErrback(_broken, request, gone)
        return NOT_DONE_YET

    def _match(self, request: Request) -> tuple[Rule, Mapping[str, Any]]:
        """The rule of the request's method and path, and its arguments;
        werkzeug's errors (NotFound, MethodNotAllowed) are raised."""
        path = b"/".join(request.postpath or ())
        key = (request.method, path)
        found = self._matches.get(key)
        if found is not None:
            return found
        found = self._map.match("/" + path.decode("utf-8"), request.method.decode("latin-1"),
                                return_rule=True)
        if len(self._matches) >= MATCHES:
            self._matches.clear()
        self._matches[key] = found
        return found

    def _failure(self, failure: Failure, request: Request, gone: Deferred[None]
                 ) -> bytes | None:
        if gone.called:
            if not failure.check(CancelledError):
                log.failure("failed after its client went away", failure)
            return None
        return self._failed(request, failure)


def _broken(failure: Failure, request: Request, gone: Deferred[None]) -> None:
    """What Klein's resource does when no error handler could answer: a
    bare 500, and the failure logged."""
    if gone.called:
        log.failure("answering a request", failure)
    else:
        request.processingFailed(failure)


def _write(answer: bytes | None, request: Request, gone: Deferred[None] | None = None) -> None:
    """``answer`` written and the request finished, unless its client
    went away (``gone``, its notifyFinish, has fired)."""
    if gone is not None and gone.called:
        return
    if answer is not None:
        request.write(answer)
    request.finish()
