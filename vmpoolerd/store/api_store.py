"""
What the API reads and changes in Redis: checkouts (coalesced into
batches, see coalesce.py), VMs, status and history, tokens.

The store does I/O only: timestamps and dates come in from the caller.  It
raises the domain's errors (errors.py), never an HTTP one.
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..telemetry.metrics import Metrics
from . import keys
from .coalesce import Coalescer
from .errors import OtherOwner, StoreUnavailable
from .scripts import RedisClient, Scripts

log = Logger()
HISTORY_CHUNK = 31  # days per summary script call
UNDO_WINDOW = 30  # seconds a checkout batch can be given back
ANY_OWNER = "*"  # a VM change that checks no owner
OWNER_CHANGED = -2  # a script's answer: the VM's owner is no longer the one checked


@dataclass(frozen=True)
class Request:
    """
    One checkout: ``(name asked for, count, pools to take from)`` entries,
    its time, and the fields to write into each VM's hash beside
    ``checkout``.
    """

    entries: tuple[tuple[str, int, tuple[str, ...]], ...]
    now: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class VmRecord:
    hostname: str
    set_name: str  # running, ready, pending, completed, discovered or ""
    fields: Mapping[str, str]


@dataclass(frozen=True)
class PoolCounts:
    ready: int
    running: int
    pending: int
    completed: int
    last_boot: str


@dataclass(frozen=True)
class Durations:
    count: int
    total: float
    min: float
    max: float


@dataclass(frozen=True)
class DayHistory:
    boot: Durations
    clone: Durations
    tags: Mapping[str, Mapping[str, int]]


class ApiStore(Scripts):
    """What the API reads and changes."""

    def __init__(self, redis: RedisClient, reactor: IReactorTime, timeout: float = 3.0,
                 metrics: Metrics | None = None) -> None:
        super().__init__(redis, reactor, timeout, metrics)
        self._checkouts: Coalescer[Request, dict[str, list[str]] | None] = \
            Coalescer(self._checkout_batch, reactor)
        self._undos: set[IDelayedCall] = set()
        self._undoing: set[Deferred[None]] = set()
        # Batch keys: unique to this store among the daemons sharing the
        # Redis, without a call for randomness per batch.
        self._batch_prefix = keys.checkout_batch_prefix(secrets.token_hex(8))
        self._batches = itertools.count()

    def stop(self) -> None:
        """Drop the give-backs still waiting for Redis (the daemon stops)."""
        for call in list(self._undos):
            if call.active():
                call.cancel()
        for running in list(self._undoing):
            running.cancel()
        self._undos.clear()

    def checkout(self, request: Request) -> Deferred[dict[str, list[str]] | None]:
        """
        The hostnames handed out, by name asked for; or ``None`` when the
        ready pools cannot meet the whole request (then nothing moved).

        Note [Clients that went away]: when the caller cancels (Klein does
        when the client's connection is lost), its request is already in a
        batch, or about to be: the VMs the script hands out for it go back
        to ready as soon as the answer comes, as for an unanswered batch.
        """
        result = self._checkouts.submit(request)
        answer: Deferred[dict[str, list[str]] | None] = Deferred()

        def deliver(vms: dict[str, list[str]] | None) -> None:
            if not answer.called:
                answer.callback(vms)
            elif vms:
                hosts = [host for names in vms.values() for host in names]
                self._undo([], [UNDO_WINDOW, json.dumps(hosts)],
                           self._reactor.seconds() + UNDO_WINDOW, 0.0)

        def fail(failure: Any) -> None:
            if not answer.called:  # else the batch's own undo, if any, is at work
                answer.errback(failure)
        result.addCallbacks(deliver, fail)
        return answer

    async def _checkout_batch(self, batch: list[Request]) -> list[dict[str, list[str]] | None]:
        payload = json.dumps({"requests": [
            {"entries": r.entries, "now": r.now, "fields": dict(r.fields)} for r in batch]})
        key = f"{self._batch_prefix}{next(self._batches)}"
        try:
            answer = json.loads(await self._script("checkout", keys=[key],
                                                   args=[payload, UNDO_WINDOW]))
        except StoreUnavailable:
            self._undo([key], [UNDO_WINDOW], self._reactor.seconds() + UNDO_WINDOW, 0.0)
            raise
        if answer == "cancelled":  # an undo got there first: nothing was handed out
            raise StoreUnavailable("Redis did not answer in time")
        return [result or None for result in answer]

    def _undo(self, batch: list[str], args: list[Any], deadline: float, delay: float) -> None:
        """
        Give back what a checkout handed out with nobody to answer
        (checkout_undo.lua: a batch by its key, or one request's hosts),
        retrying while Redis does not answer, within the batch key's life.
        """
        what = batch[0] if batch else args[1]

        async def undo() -> None:
            self._undos.discard(call)
            try:
                given = await self._script("checkout_undo", keys=batch, args=args)
            except StoreUnavailable:
                if self._reactor.seconds() < deadline:
                    self._undo(batch, args, deadline, min(max(2 * delay, 0.25), 5.0))
                else:
                    log.warn("a checkout nobody got may hold VMs in running: {what}", what=what)
                return
            if given:
                log.warn("gave back {n} VMs of a checkout nobody got (answered 503, or "
                         "its client went away)", n=given)
        def start() -> None:
            running = ensureDeferred(undo())
            self._undoing.add(running)
            running.addErrback(lambda _: None)  # cancelled by stop()
            running.addBoth(lambda _: self._undoing.discard(running))
        call = self._reactor.callLater(delay, start)
        self._undos.add(call)

    # --- VMs -----------------------------------------------------------------

    async def vm(self, hostname: str) -> VmRecord | None:
        answer = await self._script("vm_info", args=[hostname])
        if not answer:
            return None
        set_name, flat = answer
        return VmRecord(hostname, set_name, dict(zip(flat[::2], flat[1::2])))

    # ``owner``: the VM's owner as the caller checked it ("" none, "*" any);
    # if it is no longer that, nothing changes and OtherOwner is raised.

    async def _owned_change(self, name: str, touched: Sequence[str] = (),
                            args: Sequence[Any] = ()) -> int:
        answer = int(await self._script(name, keys=touched, args=args))
        if answer == OWNER_CHANGED:
            raise OtherOwner()
        return answer

    async def update_vm(self, hostname: str, tag_day: str, lifetime: str | None,
                        tags: Mapping[str, str], owner: str = ANY_OWNER) -> bool:
        """False when there is no such VM."""
        change: dict[str, Any] = {}
        if lifetime is not None:
            change["lifetime"] = lifetime
        if tags:
            change["tags"] = dict(tags)
        return bool(await self._owned_change(
            "vm_update",
            args=[hostname, keys.tag(tag_day), json.dumps(change), owner]))

    async def return_vm(self, hostname: str, owner: str = ANY_OWNER) -> bool:
        """False when the VM is not running."""
        return bool(await self._owned_change("vm_return", args=[hostname, owner]))

    async def queue_task(self, hostname: str, task: str, member: str,
                         needs_field: str = "", owner: str = ANY_OWNER) -> int:
        """1 queued, 0 no such VM, -1 the VM lacks ``needs_field``."""
        return await self._owned_change(
            "queue_task", touched=[keys.vm(hostname), keys.tasks(task)],
            args=[member, needs_field, owner])

    # --- status and history ----------------------------------------------------

    async def pool_counts(self, pools: Sequence[str]) -> tuple[int, list[PoolCounts]]:
        """Clones in flight, and each pool's counts."""
        cloning, rows = await self._script("status", args=list(pools))
        return int(cloning), [
            PoolCounts(int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows]

    async def history(self, days: Sequence[str]) -> list[DayHistory]:
        """Each day's boots, clones and tags, a month per script call."""
        found: list[DayHistory] = []
        for start in range(0, len(days), HISTORY_CHUNK):
            found.extend(await self._history("all", days[start:start + HISTORY_CHUNK]))
        return found

    async def clones_of(self, day: str) -> Durations:
        """The day's clone durations, for /status."""
        (history,) = await self._history("clone", [day])
        return history.clone

    async def _history(self, what: str, days: Sequence[str]) -> list[DayHistory]:
        answer = json.loads(await self._script("summary", args=[what, *days]))
        return [DayHistory(Durations(*boot), Durations(*clone), tags or {})
                for boot, clone, tags in answer]

    # --- tokens ----------------------------------------------------------------

    async def create_token(self, token: str, user: str, now: str) -> None:
        await self._call(self._redis.hmset(
            keys.token(token), {"user": user, "created": now}))

    async def token(self, token: str) -> dict[str, str]:
        return dict(await self._call(self._redis.hgetall(keys.token(token))))

    async def touch_token(self, token: str, now: str) -> str | None:
        """The token's user, having recorded its use; ``None`` if unknown."""
        return await self._script("token_touch", keys=[keys.token(token)],
                                  args=[now]) or None

    async def delete_token(self, token: str, user: str) -> int:
        """1 deleted, 0 unknown, -1 another user's."""
        return int(await self._script(
            "token_delete", keys=[keys.token(token)], args=[user]))

    async def tokens_of(self, user: str) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        cursor = "0"
        while True:
            cursor, rows = await self._script("token_scan", args=[cursor, user])
            for token, created, last in rows:
                found[token] = {k: v for k, v in (("created", created), ("last", last)) if v}
            if cursor == "0":
                return found

    async def token_vms(self, token: str, pools: Sequence[str]) -> list[str]:
        return list(await self._script("token_vms", args=[token, *pools]))

