"""
The config API and pool reset (vmpooler 3.x): ``/config``,
``/config/poolsize``, ``/config/pooltemplate``, ``/config/clonetarget``
and ``/poolreset``.

They change the live config every daemon on this Redis obeys (Note [Live
pool config] in store/lua/config_set.lua), so they answer 405 unless
``experimental_features`` is on, and want a token when authentication is
configured; when ``:auth:`` names administrators, an administrator's
(403 for anyone else's: Note [Administrators] in admins.py).

Note [Template overrides]: a new template (``POST /config/pooltemplate``)
is a path with a folder and no ``.`` or ``..`` parts; when the pool's
``template_folders`` (else ``:config: template_folders``) lists folders,
it must lie under one of them (400, the pools at fault under
``bad_templates``).  Whether the path is a template at all only vSphere
can say, and an API daemon may talk to none: the manager that clones
from an override asks, and refuses a VM that is not marked as a
template, recording the failure (manager/clones.py).

A body naming an unknown pool is refused whole (404; 400 under v3, as
vmpooler 3.x answers); one bad value refuses it whole too (400).
Under v3 a refusal also lists the pools at fault under vmpooler 3.x's key
(:data:`FAULTS`).  Changes answer 201, and 200 when every value was already
the live one.  ``GET /config`` only reads: under v3 it is open, as in
vmpooler 3.x.
"""

from __future__ import annotations

from typing import Any, Callable

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from . import validate
from .dialect import is_v3
from .errors import ApiError, json_answer
from .routes import read_body, route
from .callers import Callers
from ..config import Config, PoolConfig
from ..live import live_pool
from ..store.api_store import ApiStore
from ..store.overrides import Live

log = Logger()

# The kinds of override, by route: the Redis kind, the check of a value,
# and the pool's value when not overridden.
KINDS: dict[str, tuple[str, Callable[[Any, str], Any], Callable[[PoolConfig], str]]] = {
    "poolsize": ("poolsize", validate.pool_size, lambda pool: str(pool.size)),
    "pooltemplate": ("template", validate.template, lambda pool: pool.template),
    "clonetarget": ("clone_target", validate.pool_setting,
                    lambda pool: pool.clone_target or ""),
}
# The key under which vmpooler 3.x's refusal lists the pools at fault, by route.
FAULTS = {"poolsize": "not_configured", "pooltemplate": "bad_templates",
          "clonetarget": "bad_templates", "poolreset": "bad_pools"}


def pool_configuration(pool: PoolConfig, live: Live) -> dict[str, Any]:
    """A pool as ``GET /config`` shows it: its live values, in vmpooler's names."""
    now = live_pool(pool, live)
    shown: dict[str, Any] = {
        "name": pool.name, "alias": list(pool.alias), "template": now.template,
        "folder": pool.folder, "datastore": pool.datastore, "size": now.size,
        "provider": pool.provider, "size_policy": pool.size_policy,
    }
    optional = {"clone_target": now.clone_target, "pool": pool.resource_pool,
                "timeout": pool.timeout_minutes, "ready_ttl": pool.ready_ttl_minutes,
                "datacenter": pool.datacenter, "create_linked_clone": pool.create_linked_clone}
    shown.update((key, value) for key, value in optional.items() if value is not None)
    if now.size != pool.size:
        shown["size_before_overrides"] = pool.size
    if now.template != pool.template:
        shown["template_before_overrides"] = pool.template
    return shown


class LiveRoutes:
    def __init__(self, config: Config, store: ApiStore, callers: Callers) -> None:
        self._config = config
        self._store = store
        self._callers = callers

    def mount(self, app: Klein) -> None:
        route(app, ["GET"], "/config", self.config)
        for name in KINDS:
            route(app, ["POST"], f"/config/{name}", self._setter(name))
        for name in ("poolsize", "pooltemplate"):
            route(app, ["DELETE"], f"/config/{name}/<string:pool>", self._unsetter(name))
        route(app, ["POST"], "/poolreset", self.reset)

    async def _allowed(self, request: IRequest, change: bool = True) -> str:
        """405 unless experimental_features; 401 without a token when
        authentication is configured; 403 for a ``change`` by anyone but an
        administrator, when administrators are named.  Who asks, for the log."""
        if not self._config.service.experimental_features:
            raise ApiError(405, "the config API is off: set experimental_features: true "
                                "in :config: to use it")
        caller = await (self._callers.administrator(request) if change
                        else self._callers.required(request))
        return caller.owner.user if caller is not None else "anonymous"

    async def config(self, request: IRequest) -> bytes:
        """Each pool's live configuration; under v3 (open there) with
        ``template_ready`` too."""
        v3 = is_v3(request)
        if not v3:
            await self._allowed(request, change=False)
        names = self._config.pool_names
        live = await self._store.overrides.live(names)
        shown = [pool_configuration(p, live[p.name]) for p in self._config.pools]
        if v3:
            prepared = await self._store.prepared_templates(names)
            for pool in shown:
                pool["template_ready"] = template_ready(pool["template"], prepared[pool["name"]])
        return json_answer(request, 200, {"pool_configuration": shown, "status": {"ok": True}})

    def _values(self, request: IRequest, route: str, check: Callable[[Any, str], Any]
                ) -> dict[str, Any]:
        """The body's ``{"pool": value}``; under v3 an unknown pool is a
        400, as in vmpooler 3.x, and refusals name the pools at fault."""
        try:
            return validate.pool_values(self._config, read_body(request), check,
                                        FAULTS[route])
        except ApiError as e:
            if e.status == 404 and is_v3(request):
                raise ApiError(400, e.error, v3=e.v3) from None
            raise

    def _setter(self, name: str) -> Callable[[IRequest], Any]:
        kind, check, default = KINDS[name]

        async def set_live(request: IRequest) -> bytes:
            who = await self._allowed(request)
            values = self._values(request, name, check)
            if name == "pooltemplate":
                self._within_folders(values)
            changed = await self._store.overrides.set(kind, {
                pool: (str(value), default(self._config.pool(pool)))
                for pool, value in values.items()})
            for pool in changed:
                log.info("[{pool}] {kind} set to {value!r} by {who}", pool=pool, kind=kind,
                         value=values[pool], who=who)
            return json_answer(request, 201 if changed else 200, {"ok": True})
        set_live.__qualname__ = f"LiveRoutes.set_{name}"
        return set_live

    def _within_folders(self, templates: dict[str, Any]) -> None:
        """400 for a template outside its pool's folders (Note [Template overrides])."""
        bad = [pool for pool, template in templates.items()
               if not template_allowed(str(template), self._config.template_folders(pool))]
        if bad:
            raise ApiError(400, "a template must lie under a folder its pool allows "
                                "(template_folders): " + ", ".join(map(repr, bad)),
                           v3={"bad_templates": bad})

    def _unsetter(self, name: str) -> Callable[[IRequest, str], Any]:
        kind = KINDS[name][0]

        async def unset_live(request: IRequest, pool: str) -> bytes:
            who = await self._allowed(request)
            validate.known_pool(self._config, pool)
            before = await self._before(request, name, pool)
            changed = await self._store.overrides.unset(kind, pool)
            if changed:
                log.info("[{pool}] {kind} override deleted by {who}", pool=pool, kind=kind,
                         who=who)
            return json_answer(request, 201 if changed else 200, {"ok": True, **before})
        unset_live.__qualname__ = f"LiveRoutes.unset_{name}"
        return unset_live

    async def _before(self, request: IRequest, route: str, pool: str) -> dict[str, Any]:
        """What a v3 answer to deleting an override says: the pool's value
        before, and its value in the configuration file."""
        if not is_v3(request):
            return {}
        config = self._config.pool(pool)
        now = live_pool(config, (await self._store.overrides.live([pool]))[pool])
        if route == "poolsize":
            return {"pool_size_before_reset": now.size,
                    "pool_size_before_overrides": config.size}
        return {"template_before_reset": now.template,
                "template_before_overrides": config.template}

    async def reset(self, request: IRequest) -> bytes:
        who = await self._allowed(request)
        pools = list(self._values(request, "poolreset", lambda value, what: value))
        await self._store.overrides.ask_reset(pools)
        log.info("reset of {pools} asked by {who}", pools=", ".join(pools), who=who)
        return json_answer(request, 201, {"ok": True})


def template_allowed(template: str, folders: tuple[str, ...]) -> bool:
    """Whether ``template`` lies under one of ``folders`` (empty: anywhere),
    with no ``.`` or ``..`` part (Note [Template overrides])."""
    parts = template.strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    path = "/".join(parts)
    return not folders or any(path.startswith(folder + "/") for folder in folders)


def template_ready(template: str, prepared: str | None) -> bool:
    """
    ``template_ready`` in ``GET /config``: vmpooler 3.x's manager prepares a
    template before cloning from it and records the one it prepared for
    each pool; it is ready when that is the pool's template.  vmpoolerd
    clones from a template as it is, so a pool no 3.x manager has prepared
    for is ready; one whose recorded template is another is not (a 3.x
    manager sharing the Redis has yet to prepare the new one).
    """
    return prepared is None or prepared == template
