"""
``/token``: a user's tokens, made and deleted with HTTP Basic credentials.

A token's running VMs are listed by their short names under every prefix,
as vmpooler 3.x lists them too: vmfloaty looks each one up by that name
(``list --active``, ``delete --all``).  Under v3 a user without tokens gets
404, and a token never used says ``last: "never"``, as in vmpooler 3.x.
"""

from __future__ import annotations

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from . import validate
from .dialect import is_v3
from .errors import ApiError, json_answer
from .routes import route
from .callers import Callers
from .timestamps import Timestamps
from ..config import Config
from ..names import new_token
from ..store.api_store import ApiStore

log = Logger()
NEVER = "never"  # a token's "last" use before its first


class TokenRoutes:
    """Every route answers 404 when authentication is not configured."""

    def __init__(self, config: Config, store: ApiStore, clock: Timestamps,
                 callers: Callers) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._callers = callers

    def mount(self, app: Klein) -> None:
        route(app, ["GET"], "/token", self.tokens)
        route(app, ["POST"], "/token", self.create_token)
        route(app, ["GET"], "/token/<string:token>", self.token)
        route(app, ["DELETE"], "/token/<string:token>", self.delete_token)

    async def tokens(self, request: IRequest) -> bytes:
        self._callers.require_auth()
        owner = await self._callers.basic_user(request)
        found = await self._store.tokens_of(owner)
        if is_v3(request):
            if not found:
                raise ApiError(404, "no tokens")
            found = {token: {**fields, "last": fields.get("last", NEVER)}
                     for token, fields in found.items()}
        return json_answer(request, 200, {"ok": True, **found})

    async def create_token(self, request: IRequest) -> bytes:
        self._callers.require_auth()
        owner = await self._callers.basic_user(request)
        token = new_token()
        await self._store.create_token(token, owner, self._clock.now())
        log.info("token created for {user} ({dn})", user=owner.user, dn=owner.dn)
        return json_answer(request, 200, {"ok": True, "token": token})

    async def token(self, request: IRequest, token: str) -> bytes:
        self._callers.require_auth()
        token = validate.token(token)
        data = await self._store.token(token)
        running = [host for host, _ in
                   await self._store.token_vms(token, self._config.pool_names)]
        info = {k: data[k] for k in ("user", "created", "last") if k in data}
        return json_answer(request, 200, {"ok": True, token: {**info, "vms": {"running": running}}})

    async def delete_token(self, request: IRequest, token: str) -> bytes:
        self._callers.require_auth()
        token = validate.token(token)
        owner = await self._callers.basic_user(request)
        await self._store.delete_token(token, owner)
        log.info("token deleted by {user} ({dn})", user=owner.user, dn=owner.dn)
        return json_answer(request, 200, {"ok": True})
