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
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..telemetry.metrics import Metrics
from ..timefmt import hour_of, utc_offset
from . import keys
from ..coalesce import Coalescer
from .errors import (NoSuchSnapshot, NoSuchToken, NoSuchVm, NotEnoughVms, NotRunning,
                     OtherOwner, OtherUsersToken, StoreRefusal, StoreUnavailable, TooManyTags,
                     TooManyTasks, VmChange)
from .generation import GenerationWatch
from .ondemand import Ondemand
from .overrides import Overrides
from .scripts import PartOf, RedisClient, Scripts

log = Logger()
HISTORY_CHUNK = 31  # days per summary script call
UNDO_WINDOW = 30  # seconds a checkout batch can be given back
ANY_OWNER = "*"  # a VM change that checks no owner
MAX_TAGS = 64  # tags one VM may hold
MAX_TASKS_PER_VM = 8  # disk (or snapshot) requests one VM may have waiting
MAX_TASKS = 500  # disk (or snapshot) requests waiting in all
INDEX_STEP = 500  # running VMs looked at per call building the token index
REFUSAL_WINDOW = 600  # seconds a client's refusal counts once (Note [Refusals counted])
# The refusals of the scripts that change a VM (errors.VmChange); NO_SUCH_VM
# raises what the caller says is missing.
REFUSED: Mapping[VmChange, type[StoreRefusal]] = {
    VmChange.NO_SUCH_SNAPSHOT: NoSuchSnapshot, VmChange.OTHER_OWNER: OtherOwner,
    VmChange.NOT_RUNNING: NotRunning, VmChange.TOO_MANY_TAGS: TooManyTags,
    VmChange.TOO_MANY_TASKS: TooManyTasks,
}


@dataclass(frozen=True)
class Owner:
    """
    Who a token belongs to: the directory entry's DN, and its name as shown
    (``user``).  Tokens made before owners were entries record no DN; they
    are matched by name.
    """

    user: str
    dn: str = ""

    @property
    def key(self) -> str:
        """What owner checks compare (the scripts compute it alike)."""
        return self.dn or self.user


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


class Handed(dict[str, list[str]]):
    """What a checkout handed out: the hostnames by name asked for, and in
    ``pools`` each one's pool (for its domain)."""

    def __init__(self, hosts: Mapping[str, list[str]], pools: Mapping[str, str]) -> None:
        super().__init__(hosts)
        self.pools = pools


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
    # Note [Failures explained] in manager/failures.py: counts by kind, and
    # the last few ({"host", "kind", "reason", "time"}).
    failures: Mapping[str, int] = field(default_factory=dict)
    recent_failures: tuple[Any, ...] = ()
    # What its demand says (Note [Sizing from demand]): None before a look.
    sizing: Any = None
    # Its clones paused, failing (Note [Failing clones]): None when not.
    clone_pause: Any = None
    # The id of the manager holding its lease (Note [Pool leases]); None:
    # no manager maintains it now.
    manager: str | None = None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


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


# The scripts the API runs that change nothing /status shows (a token's
# use, password and request counters, reads); any other bumps
# ApiStore.changes (Note [Status once a second] in api/reports.py).
UNSEEN_BY_STATUS = frozenset({
    "status", "config_read", "summary", "vm_info", "token_vms", "token_scan",
    "token_touch", "token_index", "ondemand_read", "dashboard_read", "password_try",
    "password_settle", "request_limit"})


def _handed_out(vms: Handed | None) -> Handed:
    if vms is None:
        raise NotEnoughVms()
    return vms


class ApiStore(Scripts):
    """What the API reads and changes."""

    def __init__(self, redis: RedisClient, reactor: IReactorTime, timeout: float = 3.0,
                 metrics: Metrics | None = None,
                 generation: GenerationWatch | None = None,
                 sizes: Mapping[str, int] | None = None) -> None:
        super().__init__(redis, reactor, timeout, metrics)
        self._generation = generation
        # Each pool's configured size, which bounds what a refusal counts
        # (Note [Refusals counted] in lua/checkout.lua).
        self._sizes = dict(sizes or {})
        self._checkouts: Coalescer[Request, Handed | None] = \
            Coalescer(self._checkout_batch, reactor, self._give_back)
        self._undos: set[IDelayedCall] = set()
        self._undoing: set[Deferred[None]] = set()
        # Batch keys: unique to this store among the daemons sharing the
        # Redis, without a call for randomness per batch.
        self._batch_prefix = keys.checkout_batch_prefix(secrets.token_hex(8))
        self._batches = itertools.count()
        # Raised before and after each change this store makes that /status
        # may show: an answer computed meanwhile is not reused.
        self.changes = 0

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any],
                    on: Any) -> Any:
        if name in UNSEEN_BY_STATUS:
            return await super()._eval(name, keys, args, on)
        self.changes += 1
        try:
            return await super()._eval(name, keys, args, on)
        finally:
            self.changes += 1

    overrides = PartOf(Overrides)
    ondemand = PartOf(Ondemand)

    def stop(self) -> None:
        """Drop the give-backs still waiting for Redis (the daemon stops)."""
        for call in list(self._undos):
            if call.active():
                call.cancel()
        for running in list(self._undoing):
            running.cancel()
        self._undos.clear()

    def checkout(self, request: Request) -> Deferred[Handed]:
        """
        The VMs handed out, by name asked for; NotEnoughVms when the
        ready pools cannot meet the whole request (then nothing moved).

        Note [Clients that went away]: when the caller cancels (Klein does
        when the client's connection is lost), its request is already in a
        batch, or about to be: the VMs the script hands out for it go back
        to ready as soon as the answer comes, as for an unanswered batch.
        """
        return self._checkouts.submit(request).addCallback(_handed_out)

    def _give_back(self, vms: Handed | None) -> None:
        """What a cancelled checkout was handed goes back to ready."""
        if vms:
            hosts = [host for names in vms.values() for host in names]
            self._undo({"window": UNDO_WINDOW, "hosts": json.dumps(hosts)},
                       self._reactor.seconds() + UNDO_WINDOW, 0.0)

    async def _checkout_batch(self, batch: list[Request]) -> list[Handed | None]:
        now = self._reactor.seconds()
        # The sizes of the pools a refusal may count against (each entry's
        # first pool), not every pool's: a batch costs what it asks for.
        sizes = {pools[0]: self._sizes[pools[0]] for r in batch for _, _, pools in r.entries
                 if pools and pools[0] in self._sizes}
        payload = json.dumps({"hour": hour_of(now, utc_offset(now)), "sizes": sizes,
                              "refusal_window": REFUSAL_WINDOW, "requests": [
            {"entries": r.entries, "now": r.now, "fields": dict(r.fields)} for r in batch]})
        key = f"{self._batch_prefix}{next(self._batches)}"
        seen = self._generation.seen if self._generation else None
        try:
            answer, replicated = await self._replicated(
                "checkout", batch_key=key, requests=payload, undo_window=UNDO_WINDOW,
                generation_id=seen.id if seen else "", generation_count=seen.count if seen else 0)
            if not replicated:  # Note [Replicated answers] in scripts.py
                raise StoreUnavailable("no Redis replica acknowledged the checkout in time")
        except StoreUnavailable:
            self._undo({"batch_key": key, "window": UNDO_WINDOW},
                       self._reactor.seconds() + UNDO_WINDOW, 0.0)
            raise
        if answer == "cancelled":  # an undo got there first: nothing was handed out
            raise StoreUnavailable("Redis did not answer in time")
        if answer == "doubt":  # Note [Checkouts and generations] in checkout.lua
            assert self._generation is not None
            self._generation.recheck()
            raise StoreUnavailable("Redis's state changed under this daemon; checking it")
        if self._generation is not None:
            self._generation.saw(int(answer["generation"]))
        return [Handed({name: [host for host, _ in vms] for name, vms in result.items()},
                       {host: pool for vms in result.values() for host, pool in vms})
                if result else None for result in answer["results"]]

    def _undo(self, named: dict[str, Any], deadline: float, delay: float) -> None:
        """
        Give back what a checkout handed out with nobody to answer
        (checkout_undo.lua: a batch by its key, or one request's hosts),
        retrying while Redis does not answer, within the batch key's life.
        """
        what = named.get("batch_key") or named["hosts"]

        async def undo() -> None:
            self._undos.discard(call)
            try:
                given = await self._script("checkout_undo", **named)
            except StoreUnavailable:
                if self._reactor.seconds() < deadline:
                    self._undo(named, deadline, min(max(2 * delay, 0.25), 5.0))
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

    async def vm(self, hostname: str) -> VmRecord:
        """The VM's set and hash; NoSuchVm if Redis has neither."""
        answer = await self._script("vm_info", host=hostname)
        if not answer:
            raise NoSuchVm()
        set_name, flat = answer
        return VmRecord(hostname, set_name, dict(zip(flat[::2], flat[1::2])))

    # ``owner``: the VM's owner as the caller checked it ("" none, "*" any);
    # if it is no longer that, nothing changes and OtherOwner is raised.

    async def _owned_change(self, name: str, missing: type[Exception], **named: Any) -> None:
        """Run a script that changes a VM; ``missing`` is raised if there is none."""
        answer = VmChange(await self._script(name, **named))
        if answer != VmChange.DONE:
            raise REFUSED.get(answer, missing)()

    async def update_vm(self, hostname: str, tag_day: str, lifetime: str | None,
                        tags: Mapping[str, str], owner: str = ANY_OWNER,
                        history_seconds: int = 0) -> None:
        """Change a running VM (Note [Changes to running VMs only] in
        vm_update.lua); its tags go into the day's history, kept
        ``history_seconds``."""
        change: dict[str, Any] = {}
        if lifetime is not None:
            change["lifetime"] = lifetime
        if tags:
            change["tags"] = dict(tags)
        await self._owned_change(
            "vm_update", NoSuchVm, host=hostname, tags_key=keys.tag(tag_day),
            change_json=json.dumps(change), owner=owner, history_seconds=history_seconds,
            most_tags=MAX_TAGS)

    async def return_vm(self, hostname: str, owner: str = ANY_OWNER) -> None:
        """Hand a running VM back (NotRunning if it is not running)."""
        await self._owned_change("vm_return", NotRunning, host=hostname, owner=owner)

    async def queue_disk(self, hostname: str, gb: int, owner: str = ANY_OWNER) -> None:
        """Ask the manager to add a disk of ``gb`` GB."""
        await self._queue_task(hostname, "disk", f"{hostname}:{gb}", "", owner)

    async def queue_snapshot(self, hostname: str, name: str, owner: str = ANY_OWNER) -> None:
        """Ask the manager to take a snapshot called ``name``."""
        await self._queue_task(hostname, "snapshot", f"{hostname}:{name}", "", owner)

    async def queue_revert(self, hostname: str, name: str, owner: str = ANY_OWNER) -> None:
        """Ask the manager to revert to snapshot ``name`` (NoSuchSnapshot if unknown)."""
        await self._queue_task(hostname, "snapshot-revert", f"{hostname}:{name}",
                               f"snapshot:{name}", owner)

    async def _queue_task(self, hostname: str, task: str, member: str, needs_field: str,
                          owner: str) -> None:
        """Queue ``member`` if the VM has ``needs_field`` (unless empty)."""
        await self._owned_change(
            "queue_task", NoSuchVm, vm_key=keys.vm(hostname), tasks=keys.tasks(task),
            member=member, needs_field=needs_field, owner=owner, per_vm=MAX_TASKS_PER_VM,
            most=MAX_TASKS)

    # --- status and history ----------------------------------------------------

    async def pool_counts(self, pools: Sequence[str]
                          ) -> tuple[int, list[PoolCounts], str | None]:
        """Clones in flight, each pool's counts, and why Redis's state is in
        doubt (Note [Redis generations]; None: it is not)."""
        cloning, rows, doubt = await self._script("status", pool_names=pools)
        return int(cloning), [
            PoolCounts(int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4],
                       {k: int(v) for k, v in zip(r[5][::2], r[5][1::2])},
                       tuple(_json_or_none(f) for f in r[6]), _json_or_none(r[7]),
                       _json_or_none(r[8]), r[9] or None)
            for r in rows
        ], str(doubt) or None

    async def history(self, days: Sequence[str]) -> list[DayHistory]:
        """Each day's boots, clones and tags, a month per script call."""
        found: list[DayHistory] = []
        for start in range(0, len(days), HISTORY_CHUNK):
            found.extend(await self._history("all", days[start:start + HISTORY_CHUNK]))
        return found

    async def requests_waiting(self) -> int:
        """On-demand requests waiting to be provisioned (``/status``'s
        ``queue.requested``)."""
        return int(await self._call(self._redis.execute_command(
            "ZCARD", keys.PROVISIONING)) or 0)

    async def prepared_templates(self, pools: Sequence[str]) -> dict[str, str | None]:
        """The template vmpooler 3.x's manager prepared for each pool, if any."""
        if not pools:
            return {}
        found = await self._call(self._redis.execute_command(
            "HMGET", keys.PREPARED_TEMPLATES, *pools))
        return {pool: value or None for pool, value in zip(pools, found)}

    async def today(self, day: str) -> DayHistory:
        """The day's boots and clones (and tags), for v3's /status."""
        (history,) = await self._history("all", [day])
        return history

    async def clones_of(self, day: str) -> Durations:
        """The day's clone durations, for /status."""
        (history,) = await self._history("clone", [day])
        return history.clone

    async def _history(self, what: str, days: Sequence[str]) -> list[DayHistory]:
        answer = await self._script("summary", what=what, dates=days)
        return [DayHistory(Durations(*boot), Durations(*clone), tags or {})
                for boot, clone, tags in answer]

    # --- tokens ----------------------------------------------------------------

    async def create_token(self, token: str, owner: Owner, now: str) -> None:
        fields = {"user": owner.user, "created": now}
        if owner.dn:
            fields["user_dn"] = owner.dn
        await self._call(self._redis.hmset(keys.token(token), fields))

    async def token(self, token: str) -> dict[str, str]:
        """The token's fields (user, created, last); NoSuchToken if unknown."""
        found = dict(await self._call(self._redis.hgetall(keys.token(token))))
        if not found:
            raise NoSuchToken()
        return found

    async def touch_token(self, token: str, now: str) -> Owner:
        """The token's owner, having recorded its use; NoSuchToken if unknown."""
        found = await self._script("token_touch", token_key=keys.token(token), now=now)
        if not found:
            raise NoSuchToken()
        user, dn = found
        return Owner(str(user), str(dn))

    async def delete_token(self, token: str, owner: Owner) -> None:
        """NoSuchToken if unknown, OtherUsersToken if another user's."""
        answer = int(await self._script(
            "token_delete", token_key=keys.token(token), index_key=keys.token_vms(token),
            dn=owner.dn, user=owner.user))
        if answer == 0:
            raise NoSuchToken()
        if answer == -1:
            raise OtherUsersToken()

    async def tokens_of(self, owner: Owner) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        cursor = "0"
        while True:
            cursor, rows = await self._script("token_scan", cursor=cursor, dn=owner.dn,
                                              user=owner.user)
            for token, created, last in rows:
                found[token] = {k: v for k, v in (("created", created), ("last", last)) if v}
            if cursor == "0":
                return found

    async def token_vms(self, token: str, pools: Sequence[str]) -> list[tuple[str, str]]:
        """The running VMs checked out with ``token``: each one's hostname and
        pool.  Its cost is the token's VMs, not the fleet's (Note [Token
        index] in lua/preamble/vms.lua)."""
        return [(host, pool) for host, pool in await self._script(
            "token_vms", token=token, pools=pools)]

    async def index_token_vms(self, pools: Sequence[str], step: int = INDEX_STEP) -> int:
        """Add what is running in ``pools`` to the token index, ``step``
        VMs per script call (lua/token_index.lua); the calls made."""
        calls = 0
        for pool in pools:
            cursor = "0"
            while True:
                cursor = await self._script("token_index", pool=pool, cursor=cursor, count=step)
                calls += 1
                if cursor == "0":
                    break
        return calls

