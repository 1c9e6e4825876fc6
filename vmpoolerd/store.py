"""
vmpooler's Redis state, through txredisapi.

Keys are vmpooler's own (CONTRACT §3), so a vmpooler and a vmpoolerd can
share one Redis.  Every change that touches more than one key is one of
the Lua scripts in ``lua/``, so it is atomic whatever else talks to Redis.
Every call is bounded by a timeout; a call that cannot be answered in time
raises :class:`StoreUnavailable` (the API answers 503), and txredisapi
reconnects by itself.

The store does I/O only: timestamps and dates come in from the caller.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping, Sequence

import txredisapi
from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.error import ConnectError, ConnectionLost

from twisted.logger import Logger

from .coalesce import Coalescer
from .errors import OtherOwner, Unavailable
from .config import RedisConfig
from .metrics import Metrics

SCRIPTS = (
    "checkout", "checkout_undo", "clone_end", "clone_reserve", "clones", "dashboard_read",
    "dashboard_sample", "move", "pool_state", "queue_task", "status", "summary", "task_pop",
    "token_delete", "token_scan", "token_touch", "token_vms", "vm_info", "vm_record",
    "vm_return", "vm_update",
)


log = Logger()
HISTORY_CHUNK = 31  # days per summary script call
UNDO_WINDOW = 30  # seconds a checkout batch can be given back
ANY_OWNER = "*"  # a VM change that checks no owner
OWNER_CHANGED = -2  # a script's answer: the VM's owner is no longer the one checked
UNAVAILABLE_REPLIES = frozenset({"BUSY", "LOADING", "READONLY", "MASTERDOWN", "OOM",
                                 "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"})


class StoreUnavailable(Unavailable):
    """Redis did not answer in time, or is not connected."""


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


class LogsIn(txredisapi.RedisProtocol):
    """
    A connection that logs in (AUTH, SELECT) as its factory's ``login``
    (a RedisConfig) says.

    Note [Reconnecting]: txredisapi's own login stops its factory from ever
    reconnecting when AUTH or SELECT fails or times out, as they do while
    Redis is stalled (a long script, a fork, a pause) or loading its data:
    the daemon would answer 503 until restarted.  Here a failed login drops
    that connection only, and txredisapi tries again after its back-off
    (1 s, growing to 10 s).
    """

    def connectionMade(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._log_in(self.factory.login))

    async def _log_in(self, login: RedisConfig) -> None:
        try:
            if login.password is not None:
                await self.auth(login.password)
            if login.db:
                await self.select(login.db)
        except Exception as e:  # the reply, a timeout, a lost connection
            log.warn("Redis: logging in on a new connection failed ({error}); trying again",
                     error=str(e) or type(e).__name__)
            self.transport.loseConnection()
            return
        # Without a password or a database of its factory's, txredisapi's
        # login only marks the connection ready (whenConnected fires).
        await super().connectionMade()


class _Connection(LogsIn):
    """
    One connection of the pool.  Commands go out at once.  TCP_NODELAY:
    with two checkout batches in flight, Nagle's algorithm would hold the
    second until the first's answer is acknowledged.  And each command is sent as it is made, where
    Twisted would buffer it until the reactor's next turn: that turn, and
    the wait for it while Redis could already be running the script, cost
    ~4 us of a checkout's ~180 and 7-11% of the checkout rate (``python -m
    bench.ab``).
    """

    def connectionMade(self) -> Deferred[None]:
        self.transport.setTcpNoDelay(True)
        return super().connectionMade()

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().execute_command(*args, **kwargs)
        transport = self.transport
        # What doWrite cannot send now stays buffered for the reactor, and
        # a send that fails is found again there: its return is the
        # reactor's business.  A closing transport is left to the reactor.
        if not self.pipelining and not transport.disconnecting:
            transport.doWrite()
        return answer


def connect(config: RedisConfig, timeout: float) -> Any:
    """A lazy, self-reconnecting txredisapi connection pool."""
    redis = txredisapi.lazyConnectionPool(
        host=config.server, port=config.port, poolsize=2, convertNumbers=False,
        connectTimeout=timeout, replyTimeout=timeout)
    # Before any connection is made: they are made by the reactor, later.
    redis._factory.protocol = _Connection
    redis._factory.login = config
    return redis


def _load_scripts() -> dict[str, tuple[str, str]]:
    """Each script's source and SHA1, by name."""
    folder = resources.files(__package__).joinpath("lua")
    sources = {name: folder.joinpath(f"{name}.lua").read_text() for name in SCRIPTS}
    return {name: (source, hashlib.sha1(source.encode()).hexdigest())
            for name, source in sources.items()}


class Scripts:
    """Bounded Redis calls, and the Lua scripts by name."""

    def __init__(self, redis: Any, reactor: IReactorTime, timeout: float = 3.0,
                 metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._reactor = reactor
        self._timeout = timeout
        self._metrics = metrics
        self._scripts = _load_scripts()

    async def _call(self, d: Deferred[Any]) -> Any:
        d.addTimeout(self._timeout, self._reactor)
        try:
            return await d
        except (TimeoutError, txredisapi.ConnectionError, ConnectError,
                ConnectionLost) as e:
            raise self._unavailable(e.__class__.__name__) from None
        except txredisapi.ResponseError as e:
            # Redis busy with a script, loading its data, a read-only
            # replica, out of memory...: not the request's fault.
            if str(e).split(" ", 1)[0] in UNAVAILABLE_REPLIES:
                raise self._unavailable(str(e).split(" ", 1)[0]) from None
            raise

    def _unavailable(self, why: str) -> StoreUnavailable:
        if self._metrics is not None:
            self._metrics.redis_error()
        return StoreUnavailable(f"Redis did not answer: {why}")

    async def _script(self, name: str, keys: Sequence[str] = (),
                      args: Sequence[Any] = ()) -> Any:
        """Run a script by its hash, loading it first if Redis lacks it."""
        source, sha = self._scripts[name]
        try:
            return await self._call(self._redis.execute_command(
                "EVALSHA", sha, len(keys), *keys, *args))
        except txredisapi.ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        return await self._call(self._redis.execute_command(
            "EVAL", source, len(keys), *keys, *args))

    async def ping(self) -> None:
        await self._call(self._redis.ping())


class RedisStore(Scripts):
    """What the API reads and changes."""

    def __init__(self, redis: Any, reactor: IReactorTime, timeout: float = 3.0,
                 metrics: Metrics | None = None) -> None:
        super().__init__(redis, reactor, timeout, metrics)
        self._checkouts: Coalescer[Request, dict[str, list[str]] | None] = \
            Coalescer(self._checkout_batch, reactor)
        self._undos: set[IDelayedCall] = set()
        self._undoing: set[Deferred[None]] = set()
        # Batch keys: unique to this store among the daemons sharing the
        # Redis, without a call for randomness per batch.
        self._batch_prefix = f"vmpooler__checkout_batch__{secrets.token_hex(8)}_"
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

    def _undo(self, keys: list[str], args: list[Any], deadline: float, delay: float) -> None:
        """
        Give back what a checkout handed out with nobody to answer
        (checkout_undo.lua: a batch by its key, or one request's hosts),
        retrying while Redis does not answer, within the batch key's life.
        """
        what = keys[0] if keys else args[1]

        async def undo() -> None:
            self._undos.discard(call)
            try:
                given = await self._script("checkout_undo", keys=keys, args=args)
            except StoreUnavailable:
                if self._reactor.seconds() < deadline:
                    self._undo(keys, args, deadline, min(max(2 * delay, 0.25), 5.0))
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

    async def _owned_change(self, name: str, keys: Sequence[str] = (),
                            args: Sequence[Any] = ()) -> int:
        answer = int(await self._script(name, keys=keys, args=args))
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
            args=[hostname, f"vmpooler__tag__{tag_day}", json.dumps(change), owner]))

    async def return_vm(self, hostname: str, owner: str = ANY_OWNER) -> bool:
        """False when the VM is not running."""
        return bool(await self._owned_change("vm_return", args=[hostname, owner]))

    async def queue_task(self, hostname: str, task: str, member: str,
                         needs_field: str = "", owner: str = ANY_OWNER) -> int:
        """1 queued, 0 no such VM, -1 the VM lacks ``needs_field``."""
        return await self._owned_change(
            "queue_task", keys=[f"vmpooler__vm__{hostname}", f"vmpooler__tasks__{task}"],
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
            f"vmpooler__token__{token}", {"user": user, "created": now}))

    async def token(self, token: str) -> dict[str, str]:
        return dict(await self._call(self._redis.hgetall(f"vmpooler__token__{token}")))

    async def touch_token(self, token: str, now: str) -> str | None:
        """The token's user, having recorded its use; ``None`` if unknown."""
        return await self._script("token_touch", keys=[f"vmpooler__token__{token}"],
                                  args=[now]) or None

    async def delete_token(self, token: str, user: str) -> int:
        """1 deleted, 0 unknown, -1 another user's."""
        return int(await self._script(
            "token_delete", keys=[f"vmpooler__token__{token}"], args=[user]))

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

