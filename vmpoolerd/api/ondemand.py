"""
On-demand requests (vmpooler 3.x's ``/ondemandvm``): ask for VMs no pool
keeps ready, poll until they are, receive them all at once (Note
[On-demand requests] in store/lua/ondemand_create.lua).  A pool manager
provisions them (manager/ondemand.py); these routes store, report and end
requests, recorded as vmpooler 3.x records them (Note [On-demand records]
in store/lua/preamble/ondemand.lua): either generation's API answers for
either's requests.  Hostnames are FQDNs under every prefix, as vmpooler 3.x
names them.  A request is refused (429, nothing stored) while its asker,
or everyone, has too many outstanding (Note [Outstanding on-demand
requests] in ondemand_create.lua).
"""

from __future__ import annotations

import functools
import random
import re
import uuid
from collections import Counter
from typing import Any, Awaitable, Callable

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from . import validate
from .dialect import Dialects
from .errors import ApiError, json_answer
from .routes import read_body, route
from .callers import Callers
from .timestamps import Timestamps
from ..config import Config
from ..store.api_store import ApiStore
from ..store.ondemand import DELETED, FAILED, PENDING, READY, OdRequest, Wanted

log = Logger()

Handler = Callable[..., Awaitable[bytes]]
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def request_id(value: Any) -> str:
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise ApiError(400, "request_id must be 1 to 100 letters, digits, '.', '_' or '-'")
    return value


def with_message(handler: Handler) -> Handler:
    """``handler``, its refusals carrying a ``message`` under v3 (their
    error, unless they have one of vmpooler 3.x's own)."""

    @functools.wraps(handler)
    async def answer(request: IRequest, **arguments: str) -> bytes:
        try:
            return await handler(request, **arguments)
        except ApiError as e:
            raise e.with_v3(message=e.error) from None
    return answer


class OndemandRoutes:
    def __init__(self, config: Config, store: ApiStore, clock: Timestamps, callers: Callers,
                 dialects: Dialects, rng: random.Random) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._callers = callers
        self._dialect = dialects.fqdn
        self._rng = rng

    def mount(self, app: Klein) -> None:
        route(app, ["POST"], "/ondemandvm", with_message(self.create_json))
        route(app, ["POST"], "/ondemandvm/<string:names>", with_message(self.create_path))
        route(app, ["GET"], "/ondemandvm/<string:rid>", with_message(self.status))
        route(app, ["DELETE"], "/ondemandvm/<string:rid>", with_message(self.delete))

    async def create_json(self, request: IRequest) -> bytes:
        data = validate.parse_json_object(read_body(request), "the request body") or {}
        rid = request_id(data.pop("request_id")) if "request_id" in data else None
        counts = {name: validate.positive_integer(count, f"the count of {name[:200]!r}")
                  for name, count in data.items()}
        return await self._create(request, counts, rid)

    async def create_path(self, request: IRequest, names: str) -> bytes:
        return await self._create(request, validate.checkout_counts_from_path(names), None)

    async def _create(self, request: IRequest, counts: dict[str, int],
                      rid: str | None) -> bytes:
        caller = await self._callers.required(request)
        if not counts:
            raise ApiError(400, "ask for at least one VM")
        bad = sorted(name for name in counts if not self._config.pools_for(name))
        if bad:
            return json_answer(request, 404, {
                "ok": False, "bad_templates": bad,
                "error": "unknown pool: " + ", ".join(repr(b[:200]) for b in bad[:10])})
        wanted = [Wanted(name, self._rng.choice(self._config.pools_for(name)), count)
                  for name, count in counts.items()]
        limit = self._config.service.max_ondemand_instances_per_request
        per_pool: dict[str, int] = {}
        for w in wanted:
            per_pool[w.pool] = per_pool.get(w.pool, 0) + w.count
        over = sorted(pool for pool, n in per_pool.items() if n > limit)
        if over:
            raise ApiError(403, f"at most {limit} VMs of a pool in one request "
                                f"(max_ondemand_instances_per_request): {', '.join(over)}",
                           v3={"message": "requested amount of instances exceeds the "
                                          f"maximum {limit}"})
        rid = rid or str(uuid.uuid4())
        owner = caller.owner if caller is not None else None
        client = self._callers.client(request)
        service = self._config.service
        created = await self._store.ondemand.create(
            rid, wanted, self._clock.seconds(),
            f"user:{owner.user}" if owner else f"client:{client}",
            (service.max_ondemand_requests_per_user, service.max_ondemand_requests),
            caller.token if caller else "", owner.user if owner else "",
            owner.dn if owner else "", "" if owner else client)
        if created == 0:
            raise ApiError(409, f"request {rid!r} exists already", v3={
                "request_id": rid, "message": f"request_id '{rid}' has already been created"})
        if created < 0:
            mine = created == -1
            message = (f"{service.max_ondemand_requests_per_user} on-demand requests of yours "
                       "are outstanding (max_ondemand_requests_per_user)" if mine else
                       f"{service.max_ondemand_requests} on-demand requests are outstanding "
                       "(max_ondemand_requests)") + "; try again once one has ended"
            return json_answer(request, 429, {"ok": False, "error": message,
                                              "message": message})
        log.info("[ondemand] request {id} for {wanted} by {user}", id=rid,
                 wanted=", ".join(f"{w.count} {w.pool}" for w in wanted),
                 user=owner.user if owner else "anonymous")
        return json_answer(request, 201, {"ok": True, "request_id": rid})

    async def _known(self, rid: str) -> OdRequest:
        found = await self._store.ondemand.request(request_id(rid))
        if found is None:
            raise ApiError(404, f"no request {rid!r}",
                           v3={"message": f"no request found for request_id '{rid}'"})
        return found

    async def status(self, request: IRequest, rid: str) -> bytes:
        found = await self._known(rid)
        body: dict[str, Any] = {"ok": True, "request_id": found.id}
        if found.status == READY:
            # Its hostnames are in the request's sets, whichever generation
            # handed it out (Note [On-demand records]).
            body["ready"] = True
            for w in found.wanted:
                body.setdefault(w.alias, {"hostname": []})
            for vm in sorted(found.handed, key=lambda vm: vm.name):
                body.setdefault(vm.alias, {"hostname": []})["hostname"].append(
                    self._dialect.hostname(vm.name, vm.pool))
            return json_answer(request, 200, body)
        body["ready"] = False
        if found.status != PENDING:
            body["message"] = found.message or self._ended(found.status)
            if found.message and found.status == FAILED \
                    and not await self._callers.sees_all(request):
                body["message"] = public_failure(found)  # Note [Public failures]
            return json_answer(request, 200, body)
        done = Counter((vm.alias, vm.pool) for vm in found.ready + found.handed)
        for w in found.wanted:
            n = min(done[w.alias, w.pool], w.count)
            done[w.alias, w.pool] -= n
            counts = body.setdefault(w.alias, {"ready": "0", "pending": "0"})
            counts["ready"] = str(int(counts["ready"]) + n)
            counts["pending"] = str(int(counts["pending"]) + w.count - n)
        return json_answer(request, 202, body)

    def _ended(self, status: str) -> str:
        """Why a request that keeps no message of its own (one vmpooler 3.x
        ended) is over."""
        if status == FAILED:
            return ("The request failed to provision instances within the configured "
                    f"ondemand_request_ttl '{self._config.service.ondemand_request_ttl_minutes:g}'")
        if status == DELETED:
            return "The request has been deleted"
        return f"The request has ended ({status[:50]})"

    async def delete(self, request: IRequest, rid: str) -> bytes:
        caller = await self._callers.required(request)
        found = await self._known(rid)
        owner_dn, owner = found.fields.get("token:user_dn", ""), found.fields.get("token:user")
        if caller is not None and owner and (caller.owner.dn != owner_dn if owner_dn
                                             else caller.owner.user != owner):
            raise ApiError(401, "the request was made with another user's token")
        who = caller.owner.user if caller else "anonymous"
        if await self._store.ondemand.end(found.id, DELETED, f"deleted by {who}",
                                 int(self._config.redis.data_ttl_hours * 3600)) == 1:
            log.info("[ondemand] request {id} deleted by {user}", id=found.id, user=who)
        return json_answer(request, 200, {"ok": True})


def public_failure(found: OdRequest) -> str:
    """Why a request failed, as anyone may read it (Note [Public failures]
    in manager/failures.py): its reason names vCenter's hosts and paths."""
    return (f"the request failed ({found.failures} of its VMs failed): it was not ready "
            "within ondemand_request_ttl, or too many of its VMs failed")
