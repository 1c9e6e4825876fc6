"""
On-demand requests in Redis (Note [On-demand requests] and Note [On-demand
VMs] in ``lua/ondemand_create.lua``, Note [On-demand records] in
``lua/preamble/ondemand.lua``): what the API stores and reads, and the
steps a manager takes, fenced by its claim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

from . import keys
from .scripts import Part
from ..timefmt import parse_time

PENDING, READY, FAILED, DELETED = "pending", "ready", "failed", "deleted"
# What a manager ends a request with that it finds ended or handed out
# elsewhere: it lets go of what it provisioned, nothing more (ondemand_end.lua).
LET_GO = ""


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
    alias: str
    clone_time: float | None  # None: ready (or not known)


@dataclass(frozen=True)
class OdRequest:
    id: str
    status: str  # PENDING while it has none (Note [On-demand records])
    wanted: tuple[Wanted, ...]
    created: float | None  # when it was asked; None once no longer queued
    failures: int
    message: str
    pending: tuple[OdVm, ...]
    ready: tuple[OdVm, ...]
    handed: tuple[OdVm, ...]  # handed out, by either generation
    fields: Mapping[str, str]


def _alias(alias: str, pool: str, wanted: Sequence[Wanted]) -> str:
    """A VM's alias; for one that names none (made by an older vmpoolerd),
    the first entry asking for its pool."""
    return alias or next((w.alias for w in wanted if w.pool == pool), pool)


class Ondemand(Part):
    """``store.ondemand``."""

    async def create(self, request_id: str, wanted: Sequence[Wanted], epoch: float,
                     asker: str, bounds: tuple[int, int], token: str = "", user: str = "",
                     user_dn: str = "", client: str = "") -> int:
        """Store and queue a request (Note [Outstanding on-demand requests]):
        1; 0 when its id is taken; -1 when ``asker`` has ``bounds[0]``
        requests outstanding, -2 when everyone has ``bounds[1]``."""
        return int(await self._script(
            "ondemand_create", id=request_id, requested=requested_text(wanted),
            epoch=int(epoch), token=token, user=user, user_dn=user_dn, asker=asker,
            client=client, asker_bound=bounds[0], bound=bounds[1]))

    async def request(self, request_id: str) -> OdRequest | None:
        raw = await self._script("ondemand_read", id=request_id)
        if not raw:
            return None
        data = json.loads(raw)
        f: dict[str, str] = data["fields"]
        wanted = parse_requested(f.get("requested", ""))
        status = f.get("status") or PENDING
        return OdRequest(
            request_id, status, wanted,
            float(data["asked"]) if data["asked"] else None,
            int(f.get("failures", "0") or 0), f.get("message", ""),
            tuple(OdVm(host, pool, _alias(alias, pool, wanted), parse_time(clone))
                  for host, pool, alias, clone in data["pending"] or []),
            tuple(OdVm(host, pool, _alias(alias, pool, wanted), None)
                  for host, pool, alias in data["ready"] or []),
            tuple(OdVm(host, pool, alias, None) for host, pool, alias in data["handed"] or []),
            f)

    async def queued(self, limit: int) -> list[str]:
        """The requests to provision, not taken or taken, oldest first."""
        found: list[tuple[float, str]] = []
        for queue in (keys.PROVISIONING, keys.PROCESSING):
            flat = await self._call(self._redis.execute_command(
                "ZRANGE", queue, 0, limit - 1, "WITHSCORES")) or []
            found.extend((float(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2))
        return [rid for _, rid in sorted(found)[:limit]]

    async def claim(self, request_id: str, owner: str, seconds: float, epoch: float) -> bool:
        """Claim (take, Note [On-demand records]) or renew the request for
        ``owner``; whether it is ``owner``'s to work on."""
        return bool(await self._script("ondemand_claim", id=request_id, manager=owner,
                                       life=int(seconds * 1000), epoch=int(epoch)))

    async def release(self, request_ids: Sequence[str], owner: str) -> None:
        """Give up the claims of ``owner`` on these requests."""
        for request_id in request_ids:
            await self._script("ondemand_claim", id=request_id, manager=owner, life=0, epoch=0)

    async def reserve(self, request_id: str, alias: str, pool: str, names: Sequence[str],
                      task_limit: int, ondemand_limit: int, now: str, epoch: float,
                      lease: float) -> list[str]:
        return list(await self._script(
            "ondemand_reserve", id=request_id, alias=alias, pool=pool, limit=task_limit,
            od_limit=ondemand_limit, now=now, epoch=int(epoch), lease=int(lease),
            names=names))

    async def vm_ready(self, request_id: str, host: str, pool: str, now: str) -> bool:
        return bool(await self._script("ondemand_vm", id=request_id, host=host, pool=pool,
                                       outcome="ready", now=now, reason="", epoch=0))

    async def vm_failed(self, request_id: str, host: str, pool: str, now: str,
                        reason: str, epoch: float) -> bool:
        return bool(await self._script("ondemand_vm", id=request_id, host=host, pool=pool,
                                       outcome="failed", now=now, reason=reason,
                                       epoch=int(epoch)))

    async def hand_out(self, request_id: str, now: str, keep: int) -> bool:
        return bool(await self._script("ondemand_handout", id=request_id, now=now, keep=keep))

    async def end(self, request_id: str, status: str, message: str, keep: int) -> int:
        """1: ended; 0: unknown id; -1: it had ended already (what this
        daemon was provisioning for it is let go all the same)."""
        return int(await self._script("ondemand_end", id=request_id, status=status,
                                      message=message, keep=keep))
