"""
vmpooler 3.x's rate limits on API requests, on when ``:config:
rate_limiting_enabled`` is true.

Note [Request limits]: a request is counted against one limit, by its kind:
``vm_creation`` (a POST to a path containing ``/vm``), ``vm_deletion`` (a
DELETE likewise), ``authenticated`` (any other request with an
``X-AUTH-TOKEN``) or ``global_per_ip``; and by its client: its token
(``token:<token>``), else its address (``ip:<address>``).  A token that does
not exist counts as its address, so that inventing tokens does not buy
fresh counts.  The address is its group, as clients.py tells it (Note
[Client addresses]: a trusted proxy's forwarded address, an IPv6 /64).
Each kind allows ``limit`` requests per ``period`` seconds
(DEFAULTS, replaced kind by kind by the top-level ``:rate_limits:``).  The
counters are vmpooler 3.x's keys in Redis (store/lua/request_limit.lua),
so that every API daemon on that Redis, vmpooler's included, counts
together.  A window starts with its first request and ends ``period``
seconds later whatever the client does meanwhile (vmpooler 3.x pushes it
back on every request, so that a client that keeps trying is never let
back in).  Past the limit, the answer is 429 with vmpooler 3.x's headers
and body, and the request goes no further.  When Redis cannot count, the
request goes on, and the log says so (at most once a minute, with the
number let through uncounted).  The health check and the metrics are not
limited: monitoring must not be locked out by the traffic it watches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from ..config import Config
from ..config.records import RATE_LIMIT_DEFAULTS
from ..store.errors import StoreUnavailable
from ..store.ratelimit import RateLimitStore
from . import validate
from .clients import Clients
from .errors import json_answer

log = Logger()

VM_CREATION, VM_DELETION = "vm_creation", "vm_deletion"
AUTHENTICATED, GLOBAL_PER_IP = "authenticated", "global_per_ip"
# vmpooler 3.x's limits: (requests, per seconds), by kind.
DEFAULTS: Mapping[str, tuple[int, int]] = {
    kind: (limit.limit, limit.period_seconds) for kind, limit in RATE_LIMIT_DEFAULTS}
UNLIMITED = frozenset({b"healthcheck", b"metrics"})  # first path segments
LOG_EVERY = 60.0  # seconds between two logs of requests let through uncounted


@dataclass(frozen=True)
class RateLimits:
    """Whether requests are limited, and each kind's (limit, period)."""

    enabled: bool = False
    kinds: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULTS))


def rate_limits(config: Config) -> RateLimits:
    """The rate limits the configuration asks for (``:config:
    rate_limiting_enabled`` and the top-level ``:rate_limits:``)."""
    return RateLimits(config.service.rate_limiting_enabled,
                      {kind: (limit.limit, limit.period_seconds)
                       for kind, limit in config.rate_limits})


def kind_of(method: bytes, path: bytes, token: bool) -> str:
    """A request's kind, as vmpooler 3.x tells them apart."""
    if b"/vm" in path and method == b"POST":
        return VM_CREATION
    if b"/vm" in path and method == b"DELETE":
        return VM_DELETION
    return AUTHENTICATED if token else GLOBAL_PER_IP


class RequestLimiter:
    """Counts requests (Note [Request limits]) and answers those past their limit."""

    def __init__(self, limits: RateLimits, store: RateLimitStore,
                 clock: IReactorTime, clients: Clients | None = None) -> None:
        self._limits = limits
        self._clients = clients or Clients()
        self._store = store
        self._clock = clock
        self._uncounted = 0
        self._logged = float("-inf")

    async def refusal(self, request: IRequest) -> bytes | None:
        """The 429 answer if the request is past its limit, else None
        (having counted it)."""
        header = request.getHeader(b"X-AUTH-TOKEN")
        given = header.decode("latin-1").strip() if header is not None else ""
        token = given if validate.TOKEN.fullmatch(given) else None
        kind = kind_of(request.method, request.path, bool(given))
        limit, period = self._limits.kinds[kind]
        try:
            count, left = await self._store.count_request(
                kind, token, self._clients.group(request), period)
        except StoreUnavailable as e:
            self._let_through(kind, e)
            return None
        if count <= limit:
            return None
        left = max(left, 1)
        request.setHeader(b"X-RateLimit-Limit", b"%d" % limit)
        request.setHeader(b"X-RateLimit-Remaining", b"0")
        request.setHeader(b"X-RateLimit-Reset", b"%d" % (int(self._clock.seconds()) + left))
        request.setHeader(b"Retry-After", b"%d" % left)
        return json_answer(request, 429, {"ok": False, "error": "Rate limit exceeded",
                                          "limit": limit, "period": period,
                                          "retry_after": left})

    def _let_through(self, kind: str, error: Exception) -> None:
        """Log, at most every LOG_EVERY seconds, requests let through uncounted."""
        self._uncounted += 1
        now = self._clock.seconds()
        if now - self._logged >= LOG_EVERY:
            log.warn("rate limits: Redis cannot count ({error}); {n} request(s) let through "
                     "uncounted (this one: {kind})", error=str(error), n=self._uncounted,
                     kind=kind)
            self._logged, self._uncounted = now, 0


class RateLimited(Resource):
    """The API's resource, behind the limiter (Note [Request limits])."""

    isLeaf = True

    def __init__(self, wrapped: IResource, limiter: RequestLimiter) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._limiter = limiter

    def render(self, request: Any) -> Any:
        if (request.postpath or [b""])[0] in UNLIMITED:
            return self._wrapped.render(request)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def go(refusal: bytes | None) -> None:
            if gone:
                return
            body = refusal if refusal is not None else self._wrapped.render(request)
            if body is not NOT_DONE_YET:
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            log.failure("rate limits: unexpected error", failure)
            if not gone:
                request.write(json_answer(request, 500, {"ok": False,
                                                         "error": "internal error"}))
                request.finish()
        ensureDeferred(self._limiter.refusal(request)).addCallback(go).addErrback(failed)
        return NOT_DONE_YET
