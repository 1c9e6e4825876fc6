"""
The pool manager's side of Redis: what it observes of a pool, and the
guarded transitions it makes (``lua/pool_state.lua``, ``cloning.lua``, ``move.lua``,
``clone_reserve.lua``, ``clone_end.lua``, ``vm_record.lua``).

Each transition is a method named for what it does; all but the clone
reservation go through move.lua (Note [Guarded moves]): a VM leaves a set
only if it is still in it, and a method answers False when it had moved.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Self, Sequence

from . import keys
from .records import TaskRequest, TrackedVm
from .demand import Demand
from .leases import PoolLeases
from .ondemand import Ondemand
from .overrides import Overrides
from .published import Published
from .scripts import PartOf, Scripts
from ..timefmt import parse_time


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class PoolStore(Scripts):
    # -- its parts, and its fenced copies (Note [Pool leases]) ----------------------

    overrides = PartOf(Overrides)
    demand = PartOf(Demand)
    ondemand = PartOf(Ondemand)
    leases = PartOf(PoolLeases)
    published = PartOf(Published)

    def under_lease(self, pool: str, identity: str) -> Self:
        """This store, its writes checked against ``pool``'s lease being
        ``identity``'s (see Scripts.fenced_by)."""
        return self.fenced_by(keys.lease(pool), identity)

    def claimed(self, request_id: str, owner: str) -> Self:
        """This store, its scripts fenced by ``owner``'s claim on the
        request (Note [On-demand requests] in lua/ondemand_create.lua)."""
        return self.fenced_by(keys.odclaim(request_id), owner)

    # -- what the maintainer observes ------------------------------------------------

    async def pool_state(self, pool: str, epoch: float
                         ) -> tuple[tuple[TrackedVm, ...], frozenset[str], bool, frozenset[str]]:
        """The pool's VMs as Redis knows them, the clones in flight
        (reservations not run out at ``epoch``), the empty flag, and its VMs
        that on-demand requests are provisioning."""
        state = await self._script("pool_state", pool=pool, epoch=int(epoch))
        tracked = tuple(
            TrackedVm(name=name, state=set_name, clone_time=parse_time(clone),
                      checkout=parse_time(checkout), lifetime_hours=_float_or_none(lifetime),
                      last_check=parse_time(check), ready_since=parse_time(ready),
                      lifetime_fields=(checkout, lifetime))
            for name, set_name, clone, checkout, lifetime, check, ready in state["vms"] or [])
        return (tracked, frozenset(state["cloning"] or []), bool(state["empty"]),
                frozenset(state["ondemand"] or []))

    async def cloning(self, epoch: float) -> frozenset[str]:
        """The names of the clones in flight, in every pool: reservations
        not run out at ``epoch`` (Note [Clone reservations] in
        clone_reserve.lua)."""
        return frozenset(await self._script("cloning", epoch=int(epoch)))

    # -- clones ----------------------------------------------------------------------

    async def reserve_clones(self, pool: str, names: Sequence[str], task_limit: int,
                             size: int, now: str, epoch: float,
                             reservation: float) -> list[str]:
        """The names now pending and counted as cloning (see clone_reserve.lua)."""
        return list(await self._script(
            "clone_reserve", pool=pool, limit=task_limit, size=size, now=now,
            epoch=int(epoch), lease=int(reservation), names=names))

    async def clone_ended(self, pool: str, host: str, ok: bool, seconds: float,
                          day: str) -> None:
        await self._script("clone_end", pool=pool, host=host,
                           outcome="ok" if ok else "failed", seconds=f"{seconds:.2f}", day=day)

    async def failed(self, pool: str, host: str, kind: str, reason: str, now: str,
                     keep: int) -> None:
        """Record why ``host`` failed (see vm_failed.lua)."""
        await self._script("vm_failed", pool=pool, host=host, kind=kind, reason=reason,
                           now=now, keep=keep)

    async def pause_clones(self, pool: str, failures: int, reason: str, until: str,
                           seconds: float) -> None:
        """Say, for ``seconds``, that the pool's clones are paused (Note
        [Failing clones] in manager/clones.py)."""
        await self._write(
            "SET", keys.clone_pause(pool),
            json.dumps({"failures": failures, "reason": reason, "until": until}),
            "EX", max(int(seconds), 1))

    async def resume_clones(self, pool: str) -> None:
        await self._write("DEL", keys.clone_pause(pool))

    # -- transitions -----------------------------------------------------------------

    async def mark_ready(self, pool: str, host: str, now: str, day: str,
                         boot_seconds: float, *, ip: str | None) -> bool:
        """pending -> ready, checked ``now``; its boot time joins the day's
        history and the pool's last boot; its ``ip`` (3.x's field), if known."""
        fields = {"ready": now, "check": now} | ({"ip": ip} if ip else {})
        return await self._move(host, pool, "pending", "ready", fields=fields,
                                history=(keys.boot(day), f"{pool}:{host}",
                                         f"{boot_seconds:.2f}"),
                                lastboot=now)

    async def checked(self, pool: str, host: str, now: str) -> bool:
        """A ready VM passed its periodic check ``now``."""
        return await self._move(host, pool, "ready", "ready", fields={"check": now})

    async def complete(self, pool: str, host: str, state: str,
                       unchanged: tuple[str, str] | None = None) -> bool:
        """``state`` -> completed (to be destroyed); with ``unchanged``
        (a running VM's lifetime ended), only if its "checkout" and
        "lifetime" are still those (Note [Lifetimes re-checked] in move.lua)."""
        return await self._move(host, pool, state, "completed", unchanged=unchanged)

    async def discover(self, pool: str, host: str) -> bool:
        """A VM of the pool's folder that no set names -> discovered."""
        return await self._move(host, pool, "", "discovered", fields={"template": pool})

    async def undiscover(self, pool: str, host: str) -> bool:
        """A discovered VM also in a live set leaves discovered only."""
        return await self._move(host, pool, "discovered", "")

    async def forget(self, pool: str, host: str, state: str, now: str, expire: int) -> bool:
        """A VM gone from vSphere (someone else destroyed it) leaves ``state``;
        its hash, stamped destroyed ``now``, is kept ``expire`` seconds."""
        return await self._gone(pool, host, state, now, expire)

    async def record_destroyed(self, pool: str, host: str, state: str, now: str,
                               expire: int) -> bool:
        """The manager destroyed the VM: as :meth:`forget`."""
        return await self._gone(pool, host, state, now, expire)

    async def _gone(self, pool: str, host: str, state: str, now: str, expire: int) -> bool:
        return await self._move(host, pool, state, "", fields={"destroy": now}, expire=expire)

    async def _move(self, host: str, pool: str, from_set: str, to_set: str,
                    fields: Mapping[str, str] | None = None,
                    history: tuple[str, str, str] | None = None,
                    lastboot: str | None = None, expire: int | None = None,
                    unchanged: tuple[str, str] | None = None) -> bool:
        """One guarded transition (see move.lua); False when the VM had moved."""
        change: dict[str, Any] = {"host": host, "pool": pool, "from": from_set, "to": to_set,
                                  "fields": dict(fields or {})}
        if history is not None:
            change["history"] = list(history)
        if lastboot is not None:
            change["lastboot"] = lastboot
        if expire is not None:
            change["expire"] = expire
        if unchanged is not None:
            change["unchanged"] = {"checkout": unchanged[0], "lifetime": unchanged[1]}
        return bool(await self._script("move", change=json.dumps(change)))

    async def set_empty(self, pool: str, empty: bool) -> None:
        key = keys.empty(pool)
        await self._write(*(("SET", key, "true") if empty else ("DEL", key)))

    async def hold(self) -> None:
        """Nothing, but checked against the pool's lease as every write
        (Note [Pool leases] in manager/leases.py); without a lease, no
        call at all."""
        if self._lease is not None:
            await self._script("held")

    # -- disk and snapshot requests ------------------------------------------------------

    async def pop_task(self, kind: str, now: float, lease: float) -> TaskRequest | None:
        """One queued request of ``kind`` with its VM's pool, or None; it is
        in progress until :meth:`task_done` (Note [Requests in progress] in
        task_pop.lua)."""
        taken = await self._script("task_pop", tasks_key=keys.tasks(kind),
                                   working_key=keys.tasks_working(kind), now=now, lease=lease)
        if not taken:
            return None
        host, _, argument = taken[0].partition(":")
        return TaskRequest(kind=kind, host=host, argument=argument, pool=taken[1])

    async def task_done(self, request: TaskRequest) -> None:
        """The request is done with (or failed): no longer in progress."""
        await self._call(self._redis.execute_command(
            "HDEL", keys.tasks_working(request.kind), f"{request.host}:{request.argument}"))

    async def record_disk(self, host: str, disk: str) -> None:
        """``disk`` (``+8gb``) joins the VM's ``disk`` field."""
        await self._script("vm_record", vm_key=keys.vm(host), field="disk", value=disk,
                           mode="append")

    async def record_snapshot(self, host: str, name: str, now: str) -> None:
        await self._script("vm_record", vm_key=keys.vm(host), field=f"snapshot:{name}",
                           value=now, mode="set")
