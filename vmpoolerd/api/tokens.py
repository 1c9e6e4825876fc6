"""``/token``: a user's tokens, made and deleted with HTTP Basic credentials."""

from __future__ import annotations

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from . import validate
from .dialect import Dialects
from .errors import json_answer
from .routes import Callers, Clock, route
from ..config import Config
from ..names import new_token
from ..store.api_store import ApiStore

log = Logger()


class TokenRoutes:
    """Every route answers 404 when authentication is not configured."""

    def __init__(self, config: Config, store: ApiStore, clock: Clock,
                 callers: Callers, dialects: Dialects) -> None:
        self._config = config
        self._dialects = dialects
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
        return json_answer(request, 200, {"ok": True, **await self._store.tokens_of(owner)})

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
        dialect = self._dialects.of(request)
        running = [dialect.hostname(host, pool) for host, pool
                   in await self._store.token_vms(token, self._config.pool_names)]
        info = {k: data[k] for k in ("user", "created", "last") if k in data}
        return json_answer(request, 200, {"ok": True, token: {**info, "vms": {"running": running}}})

    async def delete_token(self, request: IRequest, token: str) -> bytes:
        self._callers.require_auth()
        token = validate.token(token)
        owner = await self._callers.basic_user(request)
        await self._store.delete_token(token, owner)
        log.info("token deleted by {user} ({dn})", user=owner.user, dn=owner.dn)
        return json_answer(request, 200, {"ok": True})
