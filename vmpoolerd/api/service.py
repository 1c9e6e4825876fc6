"""
What serves the service rather than the pools: the root (a redirect to
the dashboard), the dashboard's mount, the OpenAPI document, Prometheus'
metrics and the health check.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Awaitable, Callable, Mapping

from klein import Klein
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from .errors import ApiError, json_answer, json_bytes
from .routes import route
from ..telemetry.metrics import Metrics

HealthCheck = Callable[[], Awaitable[Any]]


class ServiceRoutes:
    def __init__(self, dashboard: IResource | None, metrics: Metrics,
                 health: Mapping[str, HealthCheck]) -> None:
        self._dashboard = dashboard
        self._metrics = metrics
        self._health = dict(health)
        self._openapi = resources.files(__package__).joinpath("openapi.json").read_bytes()

    def mount(self, app: Klein) -> None:
        route(app, ["GET"], "/", self.root)
        route(app, None, "/dashboard", self.dashboard, branch=True)
        route(app, ["GET"], "/openapi.json", self.openapi)
        route(app, ["GET"], "/metrics", self.metrics)
        route(app, ["GET"], "/healthcheck", self.healthcheck)

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
        """200 when every dependency answers (each check has its own timeout)."""
        names = sorted(self._health)
        results = await gatherResults(
            [ensureDeferred(self._check(self._health[name])) for name in names])
        failed = {name: error for name, error in zip(names, results) if error is not None}
        if failed:
            return json_answer(request, 503, {"ok": False, "error": "unhealthy: " + ", ".join(
                failed), "failed": failed})
        return json_answer(request, 200, {"ok": True})

    @staticmethod
    async def _check(check: HealthCheck) -> str | None:
        try:
            await check()
        except Exception as e:
            return str(e) or type(e).__name__
        return None
