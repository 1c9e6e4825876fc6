"""
What serves the service rather than the pools: the root (a redirect to
the dashboard), the dashboard's mount, the OpenAPI document, Prometheus'
metrics and the health check.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Awaitable, Callable, Mapping

from klein import Klein
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from .errors import ApiError, json_answer, json_bytes
from .routes import route
from ..telemetry.metrics import Metrics

HealthCheck = Callable[[], Awaitable[Any]]
# Something that is not down but that operators must know: its message, or None.
HealthWarning = Callable[[], str | None]
HEALTH_CACHE = 5.0  # seconds a check's answer is reused


class ServiceRoutes:
    """
    Note [Health check]: each dependency's check answers for
    ``HEALTH_CACHE`` seconds (a burst of health checks costs vCenter one
    call); a failed check is named with the kind of its error, never its
    message, which could name internal hosts and ports.  Warnings (a Redis
    in doubt) are listed without making the answer 503: the API still
    serves safely.
    """

    def __init__(self, dashboard: IResource | None, metrics: Metrics,
                 health: Mapping[str, HealthCheck], clock: IReactorTime,
                 warnings: Mapping[str, HealthWarning] | None = None) -> None:
        self._dashboard = dashboard
        self._metrics = metrics
        self._health = dict(health)
        self._warnings = dict(warnings or {})
        self._clock = clock
        self._answers: dict[str, tuple[float, Deferred[str | None]]] = {}
        self._openapi = resources.files(__package__).joinpath("openapi.json").read_bytes()

    def mount(self, app: Klein, health_only: bool = False) -> None:
        """Every route; with ``health_only`` (a manager's), the health check
        and the metrics only."""
        route(app, ["GET"], "/metrics", self.metrics)
        route(app, ["GET"], "/healthcheck", self.healthcheck)
        if not health_only:
            route(app, ["GET"], "/", self.root)
            route(app, None, "/dashboard", self.dashboard, branch=True)
            route(app, ["GET"], "/openapi.json", self.openapi)

    def root(self, request: IRequest) -> bytes:
        request.redirect(b"/dashboard/")
        return json_answer(request, 302, {"ok": True, "dashboard": "/dashboard/"})

    def dashboard(self, request: IRequest) -> IResource:
        if self._dashboard is None:
            raise ApiError(404, "no dashboard")
        return self._dashboard

    def openapi(self, request: IRequest) -> bytes:
        return json_bytes(request, 200, self._openapi)

    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", self._metrics.content_type.encode())
        return self._metrics.render()

    async def healthcheck(self, request: IRequest) -> bytes:
        """200 when every dependency answers (Note [Health check])."""
        names = sorted(self._health)
        results = await gatherResults([self._answer(name) for name in names])
        failed = {name: error for name, error in zip(names, results) if error is not None}
        if failed:
            return json_answer(request, 503, {"ok": False, "error": "unhealthy: " + ", ".join(
                failed), "failed": failed})
        warnings = {name: text for name, warn in sorted(self._warnings.items())
                    if (text := warn()) is not None}
        return json_answer(request, 200, {"ok": True, **({"warnings": warnings}
                                                          if warnings else {})})

    def _answer(self, name: str) -> Deferred[str | None]:
        """The check's answer, asked at most every HEALTH_CACHE seconds."""
        now = self._clock.seconds()
        cached = self._answers.get(name)
        if cached is None or now - cached[0] >= HEALTH_CACHE:
            cached = (now, ensureDeferred(_check(self._health[name])))
            self._answers[name] = cached
        answer: Deferred[str | None] = Deferred()

        def relay(result: str | None) -> str | None:  # _check never fails
            answer.callback(result)
            return result
        cached[1].addCallback(relay)
        return answer


async def _check(check: HealthCheck) -> str | None:
    """None when *check* passes, else the kind of its error."""
    try:
        await check()
    except Exception as e:
        return type(e).__name__
    return None
