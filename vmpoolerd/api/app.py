"""
vmpooler's REST API (v1, and v3 beside it) on Klein: one app, on which
each resource mounts its routes (vms.py, tokens.py, reports.py, meta.py,
ondemand.py, config_routes.py; what they share is in routes.py, who calls
in callers.py).

Every route answers under ``/api/v1``, ``/api/v2`` and ``/api/v3`` and,
for clients of the old days, without a prefix (v1), with or without a
trailing slash: :class:`InFlight` takes both off before Klein routes, and
notes the generation for the handlers, which answer in its dialect
(dialect.py).  Handlers are small: check the input
(validate.py), one or two store calls, render.  Every answer is JSON;
errors, the store's included, are rendered in one place (errors.py) as
``{"ok": false, "error": ...}`` and tracebacks never reach a client.
"""

from __future__ import annotations

import random
from typing import Mapping

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource

from ..config import Config
from ..store.api_store import ApiStore
from ..telemetry.metrics import Metrics
from .admins import Administrators, GroupDirectory
from .clients import Clients
from .dialect import Dialects
from .errors import error_answer, json_errors
from .config_routes import LiveRoutes
from .ondemand import OndemandRoutes
from .ratelimit import RateLimited, RequestLimiter
from .reports import OffReactor, ReportRoutes
from .routing import Routes
from .callers import Authenticator, Callers
from .timestamps import Timestamps
from .meta import HealthCheck, HealthWarning, ServiceRoutes
from .site import InFlight
from .throttle import PasswordThrottle
from .tokens import TokenRoutes
from .vms import VmRoutes


class VmpoolerApi:
    def __init__(self, config: Config, store: ApiStore, clock: IReactorTime,
                 authenticator: Authenticator | None = None,
                 rng: random.Random | None = None,
                 dashboard: IResource | None = None,
                 metrics: Metrics | None = None,
                 health: Mapping[str, HealthCheck] | None = None,
                 throttle: PasswordThrottle | None = None,
                 warnings: Mapping[str, HealthWarning] | None = None,
                 off_reactor: OffReactor | None = None, health_only: bool = False,
                 limiter: RequestLimiter | None = None,
                 clients: Clients | None = None,
                 admins: Administrators | None = None) -> None:
        """``health_only``: a manager daemon's API, the health check and the
        metrics only (every other path is a 404).  ``limiter``: vmpooler
        3.x's rate limits, when the site turns them on (ratelimit.py).
        ``clients``: who a request comes from (clients.py); by default as
        ``:config: trusted_proxies`` says.  ``admins``: who administers
        (admins.py); by default as ``:auth:`` names them, groups asked of
        ``authenticator``."""
        self.app = Klein()
        self._limiter = None if health_only else limiter
        json_errors(self.app)
        # "//" in a path is no route (werkzeug would merge it and redirect).
        self.app.url_map.merge_slashes = False
        time = Timestamps(clock)
        if admins is None:
            directory = authenticator if isinstance(authenticator, GroupDirectory) else None
            admins = Administrators.of(config.auth, directory, clock)
        callers = Callers(store, time, authenticator, throttle,
                          clients or Clients.of(config), admins)
        metrics = metrics or Metrics()
        dialects = Dialects(config)
        ServiceRoutes(dashboard, metrics, health or {}, clock, warnings).mount(
            self.app, health_only)
        if health_only:
            return
        VmRoutes(config, store, time, callers, rng or random.Random(), metrics,
                dialects).mount(self.app)
        ReportRoutes(config, store, time, off_reactor).mount(self.app)
        TokenRoutes(config, store, time, callers).mount(self.app)
        LiveRoutes(config, store, callers).mount(self.app)
        OndemandRoutes(config, store, time, callers, dialects,
                       rng or random.Random()).mount(self.app)

    def resource(self) -> InFlight:
        served: IResource = Routes(self.app, error_answer)
        if self._limiter is not None:
            served = RateLimited(served, self._limiter)
        return InFlight(served)
