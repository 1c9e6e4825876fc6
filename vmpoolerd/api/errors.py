"""
The one JSON answer shape, and the one place errors become status codes:
``{"ok": false, "error": "what was wrong"}``.  Every Klein app of the
daemon calls :func:`json_errors`; tracebacks never reach a client.  What
the store refuses is answered as :data:`REFUSALS` says.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from ..store.api_store import MAX_TAGS
from ..store.errors import (NoSuchSnapshot, NoSuchToken, NoSuchVm, NotEnoughVms, NotRunning,
                            OtherOwner, OtherUsersToken, StoreRefusal, StoreUnavailable,
                            TooManyTags, TooManyTasks)
from .auth import AuthUnavailable
from .dialect import is_v3

log = Logger()

# Each refusal of the store (every class of it), as the API answers it.
REFUSALS: dict[type[StoreRefusal], tuple[int, str]] = {
    NoSuchVm: (404, "no such VM"),
    NotRunning: (404, "the VM is not running"),
    NoSuchSnapshot: (404, "no such snapshot"),
    OtherOwner: (401, "the VM was checked out with another user's token"),
    NoSuchToken: (404, "no such token"),
    OtherUsersToken: (401, "the token belongs to another user"),
    NotEnoughVms: (503, "not enough ready VMs"),
    TooManyTags: (400, f"a VM holds at most {MAX_TAGS} tags"),
    TooManyTasks: (429, "too many disk or snapshot requests are waiting; try again later"),
}


class ApiError(Exception):
    """
    A request the daemon refuses: rendered with ``status``.  ``v3``: the
    keys vmpooler 3.x's answer has beside ``error`` (``message``,
    ``failure``, ``not_configured``...), added to the answer of a v3
    request only, so that v1's answers stay as they were.
    """

    def __init__(self, status: int, error: str, retry_after: int | None = None,
                 v3: Mapping[str, Any] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.v3 = dict(v3 or {})

    def with_v3(self, **keys: Any) -> ApiError:
        """This refusal, with more of 3.x's keys (those it has already win)."""
        return ApiError(self.status, self.error, self.retry_after, {**keys, **self.v3})


def json_answer(request: IRequest, code: int, body: Any) -> bytes:
    return json_bytes(request, code, json.dumps(body).encode())


def json_bytes(request: IRequest, code: int, data: bytes) -> bytes:
    """``data``, a JSON document, as the answer."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    # A length, not chunks: as vmpooler answered, in fewer bytes and writes.
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data


def _error(request: IRequest, code: int, error: str) -> bytes:
    return json_answer(request, code, {"ok": False, "error": error})


def json_errors(app: Klein) -> None:
    """Answer every error of ``app`` (an app of no class) as :func:`error_answer` does."""

    @app.handle_errors(Exception)
    def answer(request: IRequest, failure: Failure) -> bytes:
        return error_answer(request, failure)


def error_answer(request: IRequest, failure: Failure) -> bytes:
    """The JSON answer to a request whose handler failed with ``failure``."""
    e = failure.value
    if isinstance(e, ApiError):
        if e.retry_after is not None:
            request.setHeader(b"Retry-After", b"%d" % e.retry_after)
        extra = e.v3 if is_v3(request) else {}
        return json_answer(request, e.status, {"ok": False, "error": e.error, **extra})
    if isinstance(e, StoreRefusal):
        return _error(request, *REFUSALS[type(e)])
    if isinstance(e, (StoreUnavailable, AuthUnavailable)):
        # The log says where; the answer does not name internal hosts.
        log.warn("answering 503: {error}", error=str(e))
        return _error(request, 503, "the directory did not answer"
                      if isinstance(e, AuthUnavailable) else str(e))
    if isinstance(e, (NotFound, RequestRedirect)):
        return _error(request, 404, "no such route")
    if isinstance(e, MethodNotAllowed):
        allowed = sorted(e.valid_methods or ())
        request.setHeader(b"Allow", ", ".join(allowed).encode())
        return _error(request, 405, "method not allowed")
    # The method only: a path may hold a token (/token/<token>).
    log.failure("unexpected error answering a {method} request", failure,
                method=request.method.decode("ascii", "replace"))
    return _error(request, 500, "internal error")
