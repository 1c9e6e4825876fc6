"""
On-demand requests in Redis (Note [On-demand requests] and Note [On-demand
VMs] in ``lua/ondemand_create.lua``): what the API stores and reads, and
the guarded steps a manager takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

from . import keys
from .scripts import Scripts
from ..timefmt import parse_time

PENDING, READY, FAILED, DELETED = "pending", "ready", "failed", "deleted"


@dataclass(frozen=True)
class Wanted:
    """One entry of a request: the name asked for, its pool, how many."""
    alias: str
    pool: str
    count: int


def requested_text(wanted: Sequence[Wanted]) -> str:
    """vmpooler 3.x's ``requested`` field: ``alias:pool:count,...``."""
    return ",".join(f"{w.alias}:{w.pool}:{w.count}" for w in wanted)


def parse_requested(text: str) -> tuple[Wanted, ...]:
    parts = [entry.split(":") for entry in text.split(",")]
    return tuple(Wanted(p[0], p[1], int(p[2])) for p in parts
                 if len(p) == 3 and p[2].isdigit())


@dataclass(frozen=True)
class OdVm:
    name: str
    pool: str
    clone_time: float | None  # None: ready (or not known)


@dataclass(frozen=True)
class OdRequest:
    id: str
    status: str
    wanted: tuple[Wanted, ...]
    created: float | None
    failures: int
    message: str
    pending: tuple[OdVm, ...]
    ready: tuple[OdVm, ...]
    hostnames: tuple[tuple[str, str], ...]  # (pool, host) once handed out
    fields: Mapping[str, str]


class OndemandStore(Scripts):
    async def create(self, request_id: str, wanted: Sequence[Wanted], now: str, epoch: float,
                     token: str = "", user: str = "", user_dn: str = "") -> bool:
        """Store and queue a request; False when its id is taken."""
        return bool(await self._script("ondemand_create", args=[
            request_id, requested_text(wanted), now, int(epoch), token, user, user_dn]))

    async def request(self, request_id: str) -> OdRequest | None:
        raw = await self._script("ondemand_read", args=[request_id])
        if not raw:
            return None
        data = json.loads(raw)
        f: dict[str, str] = data["fields"]
        handed = tuple((pool, host) for pool, _, host in (
            entry.partition(":") for entry in f.get("hostnames", "").split(",")) if host)
        return OdRequest(
            request_id, f.get("status", ""), parse_requested(f.get("requested", "")),
            parse_time(f.get("created")), int(f.get("failures", "0") or 0),
            f.get("message", ""),
            tuple(OdVm(host, pool, parse_time(clone)) for host, pool, clone
                  in data["pending"] or []),
            tuple(OdVm(host, pool, None) for host, pool in data["ready"] or []),
            handed, f)

    async def queued(self, limit: int) -> list[str]:
        """The pending requests, oldest first."""
        return list(await self._call(self._redis.execute_command(
            "ZRANGE", keys.PROVISIONING, 0, limit - 1)) or [])

    async def claim(self, request_id: str, owner: str, seconds: float) -> bool:
        return bool(await self._script("ondemand_claim",
                                       args=[request_id, owner, int(seconds * 1000)]))

    async def release_claims(self, request_ids: Sequence[str], owner: str) -> None:
        """Give up the claims of ``owner`` on these requests."""
        for request_id in request_ids:
            await self._script("ondemand_claim", args=[request_id, owner, 0])

    async def reserve(self, request_id: str, pool: str, names: Sequence[str], task_limit: int,
                      ondemand_limit: int, now: str, epoch: float, lease: float,
                      owner: str) -> list[str]:
        return list(await self._script("ondemand_reserve", args=[
            request_id, pool, task_limit, ondemand_limit, now, int(epoch), int(lease), owner,
            *names]) or [])

    async def vm_ready(self, request_id: str, host: str, pool: str, now: str) -> bool:
        return bool(await self._script("ondemand_vm",
                                       args=[request_id, host, pool, "ready", now, ""]))

    async def vm_failed(self, request_id: str, host: str, pool: str, now: str,
                        reason: str) -> bool:
        return bool(await self._script("ondemand_vm",
                                       args=[request_id, host, pool, "failed", now, reason]))

    async def hand_out(self, request_id: str, now: str, keep: int) -> bool:
        return bool(await self._script("ondemand_handout", args=[request_id, now, keep]))

    async def end(self, request_id: str, status: str, message: str, keep: int) -> int:
        """1: ended; 0: unknown id; -1: it had ended already."""
        return int(await self._script("ondemand_end",
                                      args=[request_id, status, message, keep]))
