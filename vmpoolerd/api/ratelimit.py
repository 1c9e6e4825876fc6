"""
vmpooler 3.x's rate limits on API requests, on when ``:config:
rate_limiting_enabled`` is true.

Note [Request limits]: a request is counted against one limit, by its kind:
``vm_creation`` (a POST to a path containing ``/vm``), ``vm_deletion`` (a
DELETE likewise), ``authenticated`` (any other request with an
``X-AUTH-TOKEN``) or ``global_per_ip``; and by its client: its token
(``token:<token>``), else its address (``ip:<address>``).  A token that does
not exist counts as its address, so that inventing tokens does not buy
fresh counts.  Each kind allows ``limit`` requests per ``period`` seconds
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

The configuration's parser (vmpoolerd/config.py) does not read these
keys yet: :func:`read_rate_limits` reads them from the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from ..config import ConfigError
from ..store.errors import StoreUnavailable
from ..store.ratelimit import RateLimitStore
from . import validate
from .errors import json_answer

log = Logger()

VM_CREATION, VM_DELETION = "vm_creation", "vm_deletion"
AUTHENTICATED, GLOBAL_PER_IP = "authenticated", "global_per_ip"
# vmpooler 3.x's limits: (requests, per seconds), by kind.
DEFAULTS: Mapping[str, tuple[int, int]] = {
    GLOBAL_PER_IP: (100, 60), AUTHENTICATED: (500, 60),
    VM_CREATION: (20, 60), VM_DELETION: (50, 60),
}
UNLIMITED = frozenset({b"healthcheck", b"metrics"})  # first path segments
LOG_EVERY = 60.0  # seconds between two logs of requests let through uncounted


@dataclass(frozen=True)
class RateLimits:
    """Whether requests are limited, and each kind's (limit, period)."""

    enabled: bool = False
    kinds: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULTS))


def _key(section: Mapping[Any, Any], name: str) -> Any:
    """The value of ``name`` in a section however it is spelt (``:name:``,
    ``:name``, ``name``), or None."""
    for spelling in (f":{name}:", f":{name}", name):
        if spelling in section:
            return section[spelling]
    return None


def _positive(where: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer")
    return value


def rate_limits(raw: Mapping[Any, Any]) -> RateLimits:
    """The rate limits a configuration file's sections (as YAML reads
    them) ask for; ConfigError for a bad value or an unknown kind."""
    config = _key(raw, "config")
    enabled = _key(config, "rate_limiting_enabled") if isinstance(config, Mapping) else None
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(":config:.rate_limiting_enabled: must be true or false")
    given = _key(raw, "rate_limits") or {}
    if not isinstance(given, Mapping):
        raise ConfigError(":rate_limits: must be a mapping of kinds of request")
    kinds = dict(DEFAULTS)
    for name, limit in given.items():
        kind = str(name).strip(":")
        where = f":rate_limits:.{kind}"
        if kind not in DEFAULTS:
            raise ConfigError(f"{where}: unknown kind; the kinds are {', '.join(DEFAULTS)}")
        if not isinstance(limit, Mapping):
            raise ConfigError(f"{where}: must be a mapping with limit and period")
        default_limit, default_period = DEFAULTS[kind]
        count, period = _key(limit, "limit"), _key(limit, "period")
        kinds[kind] = (default_limit if count is None else _positive(f"{where}.limit", count),
                       default_period if period is None
                       else _positive(f"{where}.period", period))
    return RateLimits(bool(enabled), kinds)


def read_rate_limits(path: str) -> RateLimits:
    """The rate limits of the configuration file at ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from None
    return rate_limits(raw if isinstance(raw, Mapping) else {})


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
                 clock: IReactorTime) -> None:
        self._limits = limits
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
        peer = request.getClientAddress()
        try:
            count, left = await self._store.count_request(
                kind, token, str(getattr(peer, "host", peer)), period)
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
