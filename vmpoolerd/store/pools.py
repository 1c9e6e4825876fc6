"""
The pool manager's side of Redis: what it observes of a pool, and the
guarded transitions it makes (``lua/pool_state.lua``, ``move.lua``,
``clone_reserve.lua``, ``clone_end.lua``, ``vm_record.lua``).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..manager.plan import TrackedVm
from . import keys
from .scripts import Scripts
from ..timefmt import parse_time


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class PoolStore(Scripts):
    async def pool_state(self, pool: str, epoch: float, mine: Sequence[str], deadline: float
                         ) -> tuple[tuple[TrackedVm, ...], frozenset[str], bool]:
        """The pool's VMs as Redis knows them, the clones in flight (leases
        not run out at ``epoch``, after renewing those of ``mine`` to
        ``deadline``), the empty flag."""
        state = json.loads(await self._script(
            "pool_state", args=[pool, int(epoch), int(deadline), *mine]))
        tracked = tuple(
            TrackedVm(name=name, state=set_name, clone_time=parse_time(clone),
                      checkout=parse_time(checkout), lifetime_hours=_float_or_none(lifetime),
                      last_check=parse_time(check), ready_since=parse_time(ready))
            for name, set_name, clone, checkout, lifetime, check, ready in state["vms"] or [])
        return tracked, frozenset(state["cloning"] or []), bool(state["empty"])

    async def cloning(self, mine: Sequence[str], deadline: float) -> frozenset[str]:
        """The names of the clones in flight, in every pool, after renewing
        the leases of ``mine`` to ``deadline`` (see clones.lua)."""
        names = await self._script("clones", args=[int(deadline), *mine])
        return frozenset(names or [])

    async def reserve_clones(self, pool: str, names: Sequence[str], task_limit: int,
                             size: int, now: str, epoch: float,
                             lease: float) -> list[str]:
        """The names now pending and counted as cloning (see clone_reserve.lua)."""
        return list(await self._script(
            "clone_reserve",
            args=[pool, task_limit, size, now, int(epoch), int(lease), *names]))

    async def clone_ended(self, pool: str, host: str, ok: bool, seconds: float,
                          day: str) -> None:
        await self._script("clone_end", args=[pool, host, "ok" if ok else "failed",
                                              f"{seconds:.2f}", day])

    async def move(self, host: str, pool: str, from_set: str, to_set: str,
                   fields: Mapping[str, str] | None = None,
                   history: tuple[str, str, str] | None = None,
                   lastboot: str | None = None, expire: int | None = None) -> bool:
        """One guarded transition (see move.lua); False when the VM had moved."""
        change: dict[str, Any] = {"host": host, "pool": pool, "from": from_set, "to": to_set,
                                  "fields": dict(fields or {})}
        if history is not None:
            change["history"] = list(history)
        if lastboot is not None:
            change["lastboot"] = lastboot
        if expire is not None:
            change["expire"] = expire
        return bool(await self._script("move", args=[json.dumps(change)]))

    async def set_empty(self, pool: str, empty: bool) -> None:
        key = keys.empty(pool)
        await self._call(self._redis.set(key, "true") if empty else self._redis.delete(key))

    async def pop_task(self, kind: str) -> tuple[str, str] | None:
        """One queued ``host:argument`` of ``kind``'s task set and
        its VM's pool ("" if unknown), or None (see task_pop.lua)."""
        taken = await self._script("task_pop", keys=[keys.tasks(kind)])
        return (taken[0], taken[1]) if taken else None

    async def record_disk(self, host: str, disk: str) -> None:
        """``disk`` (``+8gb``) joins the VM's ``disk`` field."""
        await self._script("vm_record", keys=[keys.vm(host)],
                           args=["disk", disk, "append"])

    async def record_snapshot(self, host: str, name: str, now: str) -> None:
        await self._script("vm_record", keys=[keys.vm(host)],
                           args=[f"snapshot:{name}", now, "set"])
