"""
vmpooler's REST API v1 on Klein.

Every route answers under ``/api/v1`` and, for clients of the old days,
without that prefix, with or without a trailing slash: :class:`InFlight`
takes both off before Klein routes.  Handlers are
small: check the input (:mod:`vmpoolerd.validate`), one or two store calls,
render.  Every answer is JSON; errors are rendered in one place as
``{"ok": false, "error": ...}`` and tracebacks never reach a client.
"""

from __future__ import annotations

import random
from importlib import resources
from typing import Any, Awaitable, Callable, Mapping, Protocol

from klein import Klein
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from . import report
from . import validate
from ..config import Config
from .auth import Identity
from .errors import ApiError, json_answer, json_bytes, json_errors
from ..telemetry.metrics import Metrics
from ..names import new_token
from ..store.api_store import ANY_OWNER, ApiStore, Request, VmRecord
from ..store.errors import OtherOwner, StoreUnavailable
from ..timefmt import format_time, local_date, parse_time
from .site import BODY_TOO_LARGE, MAX_BODY, InFlight

MAX_DISK_GB = 63488  # vSphere's largest virtual disk, 62 TB
# The sets a VM is reported in by name; any other (completed, discovered,
# none: gone) is "destroyed".
LIVE_STATES = frozenset({"running", "ready", "pending"})
CHECKOUT_OUTCOMES = {400: "bad_request", 401: "unauthorized", 404: "unknown_pool",
                     413: "bad_request", 503: "not_enough_vms"}

log = Logger()


class Authenticator(Protocol):
    async def authenticate(self, user: str, password: str) -> Identity | None: ...


HealthCheck = Callable[[], Awaitable[Any]]


def _hours(value: float) -> float | int:
    """Hours as vmpooler shows them: ``24``, not ``24.0``."""
    return int(value) if float(value).is_integer() else value


class VmpoolerApi:
    app = Klein()
    json_errors(app)
    # "//" in a path is no route (werkzeug would merge it and redirect).
    app.url_map.merge_slashes = False

    def __init__(self, config: Config, store: ApiStore, clock: IReactorTime,
                 authenticator: Authenticator | None = None,
                 rng: random.Random | None = None,
                 dashboard: IResource | None = None,
                 metrics: Metrics | None = None,
                 health: Mapping[str, HealthCheck] | None = None) -> None:
        self._config = config
        self._dashboard = dashboard
        self._metrics = metrics or Metrics()
        self._health = dict(health or {})
        self._openapi = resources.files(__package__).joinpath("openapi.json").read_bytes()
        self._store = store
        self._clock = clock
        self._auth = authenticator
        self._rng = rng or random.Random()
        self._pools = tuple((p.name, p.size, p.alias) for p in config.pools)
        self._stamp = (-1, "")

    def resource(self) -> InFlight:
        return InFlight(self.app.resource())

    # --- helpers ---------------------------------------------------------------

    def _now(self) -> str:
        # Timestamps have whole seconds: format each second once.
        second = int(self._clock.seconds())
        if second != self._stamp[0]:
            self._stamp = (second, format_time(second))
        return self._stamp[1]

    def _shuffled(self, pools: tuple[str, ...]) -> tuple[str, ...]:
        """An alias's pools in random order, so that checkouts spread over them."""
        return pools if len(pools) == 1 else tuple(self._rng.sample(pools, len(pools)))

    def _today(self) -> str:
        return local_date(self._clock.seconds()).isoformat()

    @staticmethod
    def _body(request: IRequest) -> bytes:
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ApiError(413, BODY_TOO_LARGE)
        return body

    def _hostname(self, value: str) -> str:
        return validate.hostname(self._config, value)

    async def _caller(self, request: IRequest) -> tuple[str, str] | None:
        """``(token, user)`` of a valid ``X-AUTH-TOKEN``; 401 for a bad one."""
        if self._auth is None:
            return None
        header = request.getHeader(b"X-AUTH-TOKEN")
        if header is None:
            return None
        try:
            token = validate.token(header.decode("ascii").strip())
        except (UnicodeDecodeError, ApiError):
            raise ApiError(401, "invalid token") from None
        user = await self._store.touch_token(token, self._now())
        if user is None:
            raise ApiError(401, "invalid token")
        return token, user

    async def _required_caller(self, request: IRequest) -> tuple[str, str] | None:
        """With auth configured, a valid token is required (401)."""
        caller = await self._caller(request)
        if self._auth is not None and caller is None:
            raise ApiError(401, "an X-AUTH-TOKEN is required")
        return caller

    async def _owner(self, hostname: str, caller: tuple[str, str] | None) -> str:
        """
        The VM's owner ("" for none; ANY_OWNER without auth), if the caller
        may change the VM (401); 404 if there is no such VM.

        Note [Owner checks]: the owner is checked here, and again by the
        script that makes the change (it gets the owner seen here), so that
        a VM checked out by someone else in between is not changed: the
        store raises OtherOwner, 401 as if the check had seen that owner.
        """
        vm = await self._store.vm(hostname)
        if vm is None:
            raise ApiError(404, "no such VM")
        if self._auth is None:
            return ANY_OWNER
        owner = vm.fields.get("token:user", "")
        if owner and (caller is None or caller[1] != owner):
            raise OtherOwner()
        return owner

    async def _basic_user(self, request: IRequest) -> str:
        """The user of valid HTTP Basic credentials; 401 otherwise."""
        assert self._auth is not None
        try:
            user = request.getUser().decode("utf-8")
            password = request.getPassword().decode("utf-8")
        except UnicodeDecodeError:
            user = password = ""
        if not user or not password or not await self._auth.authenticate(user, password):
            request.setHeader(b"WWW-Authenticate", b'Basic realm="vmpooler"')
            raise ApiError(401, "authentication failed")
        return user

    def _auth_configured(self) -> None:
        if self._auth is None:
            raise ApiError(404, "authentication is not configured")

    # --- documents -------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def root(self, request: IRequest) -> bytes:
        request.redirect(b"/dashboard/")
        return json_answer(request, 302, {"ok": True, "dashboard": "/dashboard/"})

    @app.route("/dashboard", branch=True)
    def dashboard(self, request: IRequest) -> IResource:
        if self._dashboard is None:
            raise ApiError(404, "no dashboard")
        return self._dashboard

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        return json_bytes(request, 200, self._openapi)

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", self._metrics.content_type.encode())
        return self._metrics.render()

    @app.route("/healthcheck", methods=["GET"])
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

    # --- pools and checkout ----------------------------------------------------

    @app.route("/vm", methods=["GET"])
    async def pools(self, request: IRequest) -> bytes:
        return json_answer(request, 200, list(self._config.pool_names))

    @app.route("/vm", methods=["POST"])
    async def checkout_json(self, request: IRequest) -> bytes:
        return await self._counted(
            request, lambda: validate.checkout_counts_from_body(self._body(request)))

    @app.route("/vm/<string:names>", methods=["POST"])
    async def checkout_path(self, request: IRequest, names: str) -> bytes:
        return await self._counted(
            request, lambda: validate.checkout_counts_from_path(names))

    async def _counted(self, request: IRequest, counts: Callable[[], dict[str, int]]) -> bytes:
        """A checkout, counted by outcome for /metrics."""
        outcome = "error"
        try:
            body = await self._checkout(request, counts())
            outcome = "ok"
            return body
        except ApiError as e:
            outcome = CHECKOUT_OUTCOMES.get(e.status, "error")
            raise
        except StoreUnavailable:
            outcome = "redis_unavailable"
            raise
        finally:
            self._metrics.checkout(outcome)

    async def _checkout(self, request: IRequest, counts: dict[str, int]) -> bytes:
        plan = validate.checkout_plan(self._config, counts)
        caller = await self._caller(request) if self._auth else None
        fields = {}
        if caller is not None:
            fields = {"token:token": caller[0], "token:user": caller[1],
                      "lifetime": str(_hours(self._config.service.vm_lifetime_auth_hours))}
        entries = tuple((name, count, self._shuffled(pools)) for name, count, pools in plan)
        vms = await self._store.checkout(Request(entries, self._now(), fields))
        if vms is None:
            raise ApiError(503, "not enough ready VMs")
        body: dict[str, Any] = {"ok": True}
        for name, hosts in vms.items():
            body[name] = {"hostname": hosts[0] if len(hosts) == 1 else hosts}
        if self._config.service.domain:
            body["domain"] = self._config.service.domain
        return json_answer(request, 200, body)

    # --- one VM ------------------------------------------------------------------

    @app.route("/vm/<string:host>", methods=["GET"])
    async def vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        vm = await self._store.vm(hostname)
        if vm is None:
            raise ApiError(404, "no such VM")
        return json_answer(request, 200, {"ok": True, hostname: self._describe(vm)})

    def _describe(self, vm: VmRecord) -> dict[str, Any]:
        f = vm.fields
        state = vm.set_name if vm.set_name in LIVE_STATES else "destroyed"
        checkout = parse_time(f.get("checkout"))
        end = parse_time(f.get("destroy")) if state == "destroyed" else None
        running = 0.0
        if checkout is not None:
            running = round(max((end or self._clock.seconds()) - checkout, 0) / 3600, 2)
        try:
            lifetime = _hours(float(f["lifetime"]))
        except (KeyError, ValueError):
            lifetime = _hours(self._config.service.vm_lifetime_hours)
        info: dict[str, Any] = {"template": f.get("template", ""), "lifetime": lifetime,
                                "running": running, "state": state}
        tags = {k[4:]: v for k, v in f.items() if k.startswith("tag:")}
        snapshots = sorted(k[9:] for k in f if k.startswith("snapshot:"))
        if tags:
            info["tags"] = tags
        if snapshots:
            info["snapshots"] = snapshots
        if f.get("disk"):
            info["disk"] = f["disk"].split(":")
        if self._config.service.domain:
            info["domain"] = self._config.service.domain
        return info

    @app.route("/vm/<string:host>", methods=["PUT"])
    async def change_vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        lifetime, tags = validate.vm_changes(self._config, self._body(request))
        caller = await (self._required_caller(request) if lifetime is not None
                        else self._caller(request))
        owner = await self._owner(hostname, caller)
        changed = await self._store.update_vm(
            hostname, self._today(), None if lifetime is None else str(lifetime), tags, owner)
        if not changed:
            raise ApiError(404, "no such VM")
        return json_answer(request, 200, {"ok": True})

    @app.route("/vm/<string:host>", methods=["DELETE"])
    async def return_vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        owner = await self._owner(hostname, await self._caller(request))
        if not await self._store.return_vm(hostname, owner):
            raise ApiError(404, "the VM is not running")
        return json_answer(request, 200, {"ok": True})

    @app.route("/vm/<string:host>/disk/<string:size>", methods=["POST"])
    async def add_disk(self, request: IRequest, host: str, size: str) -> bytes:
        hostname = self._hostname(host)
        gb = validate.positive_integer(size, "the disk size")
        if gb > MAX_DISK_GB:
            raise ApiError(400, f"the disk size must be at most {MAX_DISK_GB} GB")
        owner = await self._owner(hostname, await self._required_caller(request))
        if await self._store.queue_task(hostname, "disk", f"{hostname}:{gb}",
                                        owner=owner) != 1:
            raise ApiError(404, "no such VM")
        return json_answer(request, 202, {"ok": True, hostname: {"disk": f"+{gb}gb"}})

    @app.route("/vm/<string:host>/snapshot", methods=["POST"])
    async def snapshot(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        owner = await self._owner(hostname, await self._required_caller(request))
        name = new_token()
        if await self._store.queue_task(hostname, "snapshot", f"{hostname}:{name}",
                                        owner=owner) != 1:
            raise ApiError(404, "no such VM")
        return json_answer(request, 202, {"ok": True, hostname: {"snapshot": name}})

    @app.route("/vm/<string:host>/snapshot/<string:name>", methods=["POST"])
    async def revert(self, request: IRequest, host: str, name: str) -> bytes:
        hostname = self._hostname(host)
        snapshot = validate.snapshot_name(name)
        owner = await self._owner(hostname, await self._required_caller(request))
        queued = await self._store.queue_task(
            hostname, "snapshot-revert", f"{hostname}:{snapshot}", f"snapshot:{snapshot}",
            owner)
        if queued != 1:
            raise ApiError(404, "no such snapshot" if queued == -1 else "no such VM")
        return json_answer(request, 202, {"ok": True})

    # --- status and history ------------------------------------------------------

    @app.route("/status", methods=["GET"])
    async def status(self, request: IRequest) -> bytes:
        cloning, counts = await self._store.pool_counts(self._config.pool_names)
        clones = await self._store.clones_of(self._today())
        return json_answer(request, 200, report.status(self._pools, cloning, counts, clones))

    async def _summary(self, request: IRequest) -> dict[str, Any]:
        today = local_date(self._clock.seconds())

        def arg(name: str) -> str | None:
            values = request.args.get(name.encode())
            if not values:
                return None
            try:
                return values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"{name} must be a date, YYYY-MM-DD") from None

        start = validate.day(arg("from") or today.isoformat(), "from")
        end = validate.day(arg("to") or today.isoformat(), "to")
        if start > today:
            raise ApiError(400, "from is in the future")
        if end < start:
            raise ApiError(400, "to is before from")
        if (end - start).days >= report.MAX_DAYS:
            raise ApiError(400, f"a summary covers at most {report.MAX_DAYS} days")
        dates = report.days_between(start, end)
        return report.summary(dates, await self._store.history(dates))

    @app.route("/summary", methods=["GET"])
    async def summary_all(self, request: IRequest) -> bytes:
        return json_answer(request, 200, await self._summary(request))

    @app.route("/summary/<string:route>", methods=["GET"])
    async def summary_route(self, request: IRequest, route: str) -> bytes:
        return await self.summary_key(request, route, None)

    @app.route("/summary/<string:route>/<string:key>", methods=["GET"])
    async def summary_key(self, request: IRequest, route: str, key: str | None) -> bytes:
        if not report.part_exists(route, key):
            raise ApiError(404, "no such summary")
        return json_answer(request, 200,
                          report.summary_part(await self._summary(request), route, key))

    # --- tokens ------------------------------------------------------------------

    @app.route("/token", methods=["GET"])
    async def tokens(self, request: IRequest) -> bytes:
        self._auth_configured()
        user = await self._basic_user(request)
        return json_answer(request, 200, {"ok": True, **await self._store.tokens_of(user)})

    @app.route("/token", methods=["POST"])
    async def create_token(self, request: IRequest) -> bytes:
        self._auth_configured()
        user = await self._basic_user(request)
        token = new_token()
        await self._store.create_token(token, user, self._now())
        log.info("token created for {user}", user=user)
        return json_answer(request, 200, {"ok": True, "token": token})

    @app.route("/token/<string:token>", methods=["GET"])
    async def token(self, request: IRequest, token: str) -> bytes:
        self._auth_configured()
        token = validate.token(token)
        data = await self._store.token(token)
        if not data:
            raise ApiError(404, "no such token")
        running = await self._store.token_vms(token, self._config.pool_names)
        info = {k: data[k] for k in ("user", "created", "last") if k in data}
        return json_answer(request, 200, {"ok": True, token: {**info, "vms": {"running": running}}})

    @app.route("/token/<string:token>", methods=["DELETE"])
    async def delete_token(self, request: IRequest, token: str) -> bytes:
        self._auth_configured()
        token = validate.token(token)
        user = await self._basic_user(request)
        deleted = await self._store.delete_token(token, user)
        if deleted == 0:
            raise ApiError(404, "no such token")
        if deleted < 0:
            raise ApiError(401, "the token belongs to another user")
        log.info("token deleted by {user}", user=user)
        return json_answer(request, 200, {"ok": True})
