"""
``/vm``: the pools, checkouts, and one VM (describe, change, return, add a
disk, take or revert to a snapshot).
"""

from __future__ import annotations

import random
from typing import Any, Callable

from klein import Klein
from twisted.web.iweb import IRequest

from . import validate
from .dialect import Dialects
from .errors import ApiError, json_answer
from .routes import read_body, route
from .callers import Callers
from .timestamps import Timestamps
from ..config import Config
from ..manager import failures
from ..names import new_token
from ..store.api_store import ApiStore, Request, VmRecord
from ..store.errors import NotEnoughVms, StoreUnavailable
from ..telemetry.metrics import Metrics
from ..timefmt import parse_time

MAX_DISK_GB = 63488  # vSphere's largest virtual disk, 62 TB
# The sets a VM is reported in by name; any other (completed, discovered,
# none: gone) is "destroyed".
LIVE_STATES = frozenset({"running", "ready", "pending"})
# A refused checkout, counted for /metrics by its status.
CHECKOUT_OUTCOMES = {400: "bad_request", 401: "unauthorized", 404: "unknown_pool",
                     413: "bad_request"}


def hours(value: float) -> float | int:
    """Hours as vmpooler shows them: ``24``, not ``24.0``."""
    return int(value) if float(value).is_integer() else value


class VmRoutes:
    def __init__(self, config: Config, store: ApiStore, clock: Timestamps, callers: Callers,
                 rng: random.Random, metrics: Metrics, dialects: Dialects) -> None:
        self._config = config
        self._dialects = dialects
        self._store = store
        self._clock = clock
        self._callers = callers
        self._rng = rng
        self._metrics = metrics

    def mount(self, app: Klein) -> None:
        route(app, ["GET"], "/vm", self.pools)
        route(app, ["POST"], "/vm", self.checkout_json)
        route(app, ["POST"], "/vm/<string:names>", self.checkout_path)
        route(app, ["GET"], "/vm/<string:host>", self.vm)
        route(app, ["PUT"], "/vm/<string:host>", self.change_vm)
        route(app, ["DELETE"], "/vm/<string:host>", self.return_vm)
        route(app, ["POST"], "/vm/<string:host>/disk/<string:size>", self.add_disk)
        route(app, ["POST"], "/vm/<string:host>/snapshot", self.snapshot)
        route(app, ["POST"], "/vm/<string:host>/snapshot/<string:name>", self.revert)

    def _hostname(self, value: str) -> str:
        return validate.hostname(self._config, value, self._dialects.domains)

    # --- pools and checkout ----------------------------------------------------

    async def pools(self, request: IRequest) -> bytes:
        return json_answer(request, 200, list(self._config.pool_names))

    async def checkout_json(self, request: IRequest) -> bytes:
        return await self._counted(
            request, lambda: validate.checkout_counts_from_body(read_body(request)))

    async def checkout_path(self, request: IRequest, names: str) -> bytes:
        return await self._counted(
            request, lambda: validate.checkout_counts_from_path(names))

    async def _counted(self, request: IRequest, counts: Callable[[], dict[str, int]]) -> bytes:
        """A checkout, counted by outcome for /metrics (and by the names it
        asked for, for vmpooler 3.x's counters)."""
        outcome = "error"
        asked: dict[str, int] = {}
        try:
            asked = counts()
            body = await self._checkout(request, asked)
            outcome = "ok"
            return body
        except ApiError as e:
            outcome = CHECKOUT_OUTCOMES.get(e.status, "error")
            raise
        except NotEnoughVms:
            outcome = "not_enough_vms"
            raise
        except StoreUnavailable:
            outcome = "redis_unavailable"
            raise
        finally:
            self._metrics.checkout(outcome, asked)

    def _shuffled(self, pools: tuple[str, ...]) -> tuple[str, ...]:
        """An alias's pools in random order, so that checkouts spread over them."""
        return pools if len(pools) == 1 else tuple(self._rng.sample(pools, len(pools)))

    async def _checkout(self, request: IRequest, counts: dict[str, int]) -> bytes:
        plan = validate.checkout_plan(self._config, counts)
        caller = await self._callers.caller(request) if self._callers.configured else None
        fields = {}
        if caller is not None:
            fields = {"token:token": caller.token, "token:user": caller.owner.user,
                      "lifetime": str(hours(self._config.service.vm_lifetime_auth_hours))}
            if caller.owner.dn:  # none for a token made before owners were entries
                fields["token:user_dn"] = caller.owner.dn
        entries = tuple((name, count, self._shuffled(pools)) for name, count, pools in plan)
        vms = await self._store.checkout(Request(entries, self._clock.now(), fields))
        dialect = self._dialects.of(request)
        body: dict[str, Any] = {"ok": True}
        for name, names in vms.items():
            hosts = [dialect.hostname(host, vms.pools[host]) for host in names]
            body[name] = {"hostname": hosts[0] if len(hosts) == 1 else hosts}
        return json_answer(request, 200, {**body, **dialect.domain()})

    # --- one VM ------------------------------------------------------------------

    async def vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        vm = await self._store.vm(hostname)
        whole = bool(vm.fields.get("failure")) and await self._callers.sees_all(request)
        return json_answer(request, 200, {"ok": True, hostname: self._describe(request, vm,
                                                                               whole)})

    def _describe(self, request: IRequest, vm: VmRecord, whole: bool = False
                  ) -> dict[str, Any]:
        f = vm.fields
        state = vm.set_name if vm.set_name in LIVE_STATES else "destroyed"
        checkout = parse_time(f.get("checkout"))
        end = parse_time(f.get("destroy")) if state == "destroyed" else None
        running = 0.0
        if checkout is not None:
            running = round(max((end or self._clock.seconds()) - checkout, 0) / 3600, 2)
        try:
            lifetime = hours(float(f["lifetime"]))
        except (KeyError, ValueError):
            lifetime = hours(self._config.service.vm_lifetime_hours)
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
        if f.get("failure"):  # Note [Failures explained], Note [Public failures]
            kind = f.get("failure_kind", "")
            info["failure"] = {"kind": kind,
                               "reason": f["failure"] if whole else failures.public(kind),
                               "time": f.get("failed", "")}
        info.update(self._dialects.of(request).vm_fields(
            vm.hostname, f.get("template", ""), checkout if state == "running" else None,
            lifetime, self._clock.seconds(), f))
        return info

    async def change_vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        try:
            lifetime, tags = validate.vm_changes(self._config, read_body(request))
        except ApiError as e:  # vmpooler 3.x lists what it refused
            raise e if e.v3 else e.with_v3(failure=[e.error]) from None
        caller = await (self._callers.required(request) if lifetime is not None
                        else self._callers.caller(request))
        owner = await self._callers.owner(hostname, caller)
        await self._store.update_vm(hostname, self._clock.today(),
                                    None if lifetime is None else str(lifetime), tags, owner,
                                    int(self._config.redis.data_ttl_hours * 3600))
        return json_answer(request, 200, {"ok": True})

    async def return_vm(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        owner = await self._callers.owner(hostname, await self._callers.caller(request))
        await self._store.return_vm(hostname, owner)
        return json_answer(request, 200, {"ok": True})

    async def add_disk(self, request: IRequest, host: str, size: str) -> bytes:
        hostname = self._hostname(host)
        gb = validate.positive_integer(size, "the disk size")
        if gb > MAX_DISK_GB:
            raise ApiError(400, f"the disk size must be at most {MAX_DISK_GB} GB")
        owner = await self._callers.owner(hostname, await self._callers.required(request))
        await self._store.queue_disk(hostname, gb, owner)
        return json_answer(request, 202, {"ok": True, hostname: {"disk": f"+{gb}gb"}})

    async def snapshot(self, request: IRequest, host: str) -> bytes:
        hostname = self._hostname(host)
        owner = await self._callers.owner(hostname, await self._callers.required(request))
        name = new_token()
        await self._store.queue_snapshot(hostname, name, owner)
        return json_answer(request, 202, {"ok": True, hostname: {"snapshot": name}})

    async def revert(self, request: IRequest, host: str, name: str) -> bytes:
        hostname = self._hostname(host)
        snapshot = validate.snapshot_name(name)
        owner = await self._callers.owner(hostname, await self._callers.required(request))
        await self._store.queue_revert(hostname, snapshot, owner)
        return json_answer(request, 202, {"ok": True})
