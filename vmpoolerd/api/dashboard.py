"""
The dashboard: per pool, ready VMs against the pool's size, running VMs,
and the last hour's history, drawn from samples the daemon keeps in Redis
itself (so it works without Graphite).

:class:`VmpoolerApi` mounts :meth:`Dashboard.resource` at ``/dashboard/``;
the routes below are relative to it.  Their JSON is public API:

``GET /dashboard/stats/vmpooler/pool[?history=1]``
    ``{pool: {"size": 5, "ready": 3}}`` for every configured pool, in the
    configuration's order; with what ``/status`` says of the pool besides
    its counts, when there is something to say: ``failures`` (counts by
    kind, the last few), ``demand`` (the hit rate achieved; for a
    demand-sized pool the size set and the estimate behind it) and
    ``clones_paused``.  With ``history`` (any value but ``0`` or
    ``false``) each pool also has ``"history": [[epoch, ready, running],
    ...]``, the samples of the last hour, oldest first (epoch: whole
    seconds).  vmpooler's ``history`` came from Graphite as bare numbers.

``GET /dashboard/stats/vmpooler/running``
    Running VMs grouped by the part of the pool name before its first
    ``-`` (the whole name if it has none): ``{"debian": {"running": 3,
    "pools": {"debian-7-i386": 1, "debian-7-x86_64": 2}}}``.  ``running``
    is vmpooler's field; ``pools`` is the detail behind it.

``GET /dashboard/`` and ``GET /dashboard/<file>``
    The page and the files of ``vmpoolerd/static/`` (read once, at start;
    no other name is served).

Errors are ``{"ok": false, "error": ...}``: 404 for an unknown route or
file, 503 when Redis does not answer.

A :class:`Sampler` per daemon records a sample of every pool every
``interval`` seconds (see Note [Dashboard history] in
``lua/dashboard_sample.lua``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from klein import Klein
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from ..config import Config
from .errors import ApiError, json_answer, json_errors
from .reports import explained
from .routes import route
from ..store.api_store import PoolCounts
from ..store.dashboard import HORIZON, DashboardStore
from ..store.errors import StoreUnavailable
from ..store.overrides import Live
from ..live import live_size
TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}
# The page loads its own files and nothing else.
CSP = b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"

log = Logger()


class Samples(Protocol):
    """What the sampler needs of a :class:`DashboardStore`."""

    def sample(self, pools: Sequence[str], now: float, interval: float) -> Awaitable[int]: ...


class Sampler(Service):
    """
    Samples every pool every ``interval`` seconds: one script call, bounded
    by the store's timeout.  A run never overlaps the previous one
    (LoopingCall waits for it, and skips what it missed), and a failed run
    is logged and the loop goes on; Redis being down is logged once.
    """

    def __init__(self, config: Config, store: Samples, clock: IReactorTime,
                 interval: float = 10.0) -> None:
        self._pools = config.pool_names
        self._store = store
        self._clock = clock
        self._interval = interval
        self._failing = False
        self._loop = LoopingCall(lambda: Deferred.fromCoroutine(self.sample()))
        self._loop.clock = clock
        self._done: Deferred[Any] | None = None

    def startService(self) -> None:
        super().startService()
        self._done = self._loop.start(self._interval, now=True)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        """Stops the loop; the run in progress, if any, finishes first."""
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return succeed(None) if self._done is None else self._done.addCallback(lambda _: None)

    async def sample(self) -> None:
        try:
            await self._store.sample(self._pools, self._clock.seconds(), self._interval)
        except StoreUnavailable as e:
            if not self._failing:
                log.warn("dashboard sampling failed: {error}", error=str(e))
            self._failing = True
        except Exception:
            log.failure("dashboard sampling failed")
        else:
            if self._failing:
                log.info("dashboard sampling works again")
            self._failing = False


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The files of ``static/`` by name, with their content type."""
    folder = resources.files(__package__).joinpath("static")
    return {f.name: (f.read_bytes(), TYPES.get(f.name.rpartition(".")[2],
                                                 "application/octet-stream"))
            for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")}


def major(pool: str) -> str:
    """vmpooler's grouping of pools: the name's part before its first ``-``."""
    return pool.split("-", 1)[0]


Counts = Callable[[Sequence[str]], Awaitable[tuple[int, list[PoolCounts], str | None]]]


class Dashboard:
    """
    The dashboard's routes.  ``live`` reads the pools' live config (their
    sizes), ``counts`` what ``/status`` says of them (their failures and
    demand); without them, the file's sizes and no explanation.
    """

    def __init__(self, config: Config, store: DashboardStore, clock: IReactorTime,
                 live: Callable[[Sequence[str]], Awaitable[Mapping[str, Live]]] | None = None,
                 counts: Counts | None = None) -> None:
        self._pools = config.pools
        self._live = live  # the pools' live config (sizes), when known
        self._counts = counts
        self._names = config.pool_names
        self._store = store
        self._clock = clock
        self._files = _static_files()
        self._app = Klein()
        json_errors(self._app)
        # The page is at /dashboard/ as well as /dashboard (where the inner
        # path is empty), and no path is redirected to another: what is not
        # a route is a 404.
        self._app.url_map.strict_slashes = False
        self._app.url_map.merge_slashes = False
        route(self._app, ["GET"], "/", self.index)
        route(self._app, ["GET"], "/<string:name>", self.static)
        route(self._app, ["GET"], "/stats/vmpooler/pool", self.pool_stats)
        route(self._app, ["GET"], "/stats/vmpooler/running", self.running_stats)

    def resource(self) -> IResource:
        return self._app.resource()

    # --- files -------------------------------------------------------------------

    def index(self, request: IRequest) -> bytes:
        return self.static(request, "index.html")

    def static(self, request: IRequest, name: str) -> bytes:
        if name not in self._files:
            raise ApiError(404, "no such dashboard file")
        body, content_type = self._files[name]
        request.setHeader(b"Content-Type", content_type.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", CSP)
        request.setHeader(b"Cache-Control", b"no-cache")
        return body

    # --- statistics --------------------------------------------------------------

    async def pool_stats(self, request: IRequest) -> bytes:
        value = (request.args.get(b"history") or [None])[0]
        with_history = value is not None and value.lower() not in (b"0", b"false")
        since = self._clock.seconds() - HORIZON if with_history else None
        samples = await self._store.read(self._names, since)
        live = await self._live(self._names) if self._live is not None else {}
        counts = (await self._counts(self._names))[1] if self._counts is not None else []
        body: dict[str, dict[str, Any]] = {}
        for i, (pool, sample) in enumerate(zip(self._pools, samples)):
            name = pool.name
            body[name] = {"size": live_size(pool, live.get(name, Live())),
                          "ready": sample.ready,
                          **(explained(counts[i]) if counts else {})}
            if with_history:
                body[name]["history"] = sample.history or []
        return json_answer(request, 200, body)

    async def running_stats(self, request: IRequest) -> bytes:
        samples = await self._store.read(self._names)
        body: dict[str, dict[str, Any]] = {}
        for name, sample in zip(self._names, samples):
            group = body.setdefault(major(name), {"running": 0, "pools": {}})
            group["running"] += sample.running
            group["pools"][name] = sample.running
        return json_answer(request, 200, body)
