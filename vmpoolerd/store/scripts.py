"""
Bounded Redis calls, and the Lua scripts by name.

Every change that touches more than one key is one of the scripts in
``lua/`` (found there by file name), so that it is atomic whatever else
talks to Redis; it is called with the arguments its declaration names
(Note [Declared script arguments] in script_specs.py).  Every call is
bounded by a timeout; a call that cannot be answered in time raises
:class:`StoreUnavailable`, and txredisapi reconnects by itself.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import weakref
from importlib import resources
from typing import Any, Callable, Generic, Protocol, Self, Sequence, TypeVar

import txredisapi
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.internet.interfaces import IReactorTime

from ..telemetry.metrics import Metrics
from . import txredis_adapter
from .errors import LeaseLost, StoreUnavailable
from .prelude import prelude
from .script_specs import SCRIPTS

WAIT_MS = 1000  # how long a write waits for a replica to have it (Note [Replicated answers])
ROLE_FOR = 1.0  # seconds a connection's answer to ROLE is relied on (the same Note)
UNAVAILABLE_REPLIES = frozenset({"BUSY", "LOADING", "READONLY", "MASTERDOWN", "OOM",
                                 "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"})


class RedisClient(Protocol):
    """What the stores use of a txredisapi connection pool (and, through
    txredis_adapter, of its private parts)."""

    def execute_command(self, *args: Any) -> Deferred[Any]: ...
    def ping(self) -> Deferred[Any]: ...
    def hgetall(self, key: str) -> Deferred[Any]: ...
    def hmset(self, key: str, mapping: dict[str, str]) -> Deferred[Any]: ...
    def set(self, key: str, value: str) -> Deferred[Any]: ...
    def delete(self, *keys: str) -> Deferred[Any]: ...
    def disconnect(self) -> Deferred[Any]: ...


@functools.cache
def load_scripts(fenced: bool = False) -> dict[str, tuple[str, str]]:
    """Each script of ``lua/`` (source and SHA1), by its file's name, each
    after its prelude (prelude.py) with its declared arguments; ``fenced``:
    as a lease holder runs them (Note [Pool leases]).  Read once, however
    many stores and pools."""
    found = {}
    for entry in resources.files(__package__).joinpath("lua").iterdir():
        if entry.name.endswith(".lua"):
            name, script = entry.name[:-4], entry.read_text()
            source = prelude(script, fenced, SCRIPTS[name]) + "\n" + script
            found[name] = (source, hashlib.sha1(source.encode()).hexdigest())
    return found


class Scripts:
    """Bounded Redis calls, and the Lua scripts by name."""

    def __init__(self, redis: RedisClient, reactor: IReactorTime, timeout: float = 3.0,
                 metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._reactor = reactor
        self._timeout = timeout
        self._metrics = metrics
        self._scripts = load_scripts()
        self._lease: tuple[str, str] | None = None  # see fenced_by
        # Per connection: when it last answered ROLE, and whether its
        # master had replicas then (Note [Replicated answers]).
        self._roles: weakref.WeakKeyDictionary[Any, tuple[float, bool]] = \
            weakref.WeakKeyDictionary()

    def fenced_by(self, lease: str, holder: str) -> Self:
        """
        This store, with every script checked against the lease ``lease``
        (a key) being ``holder``'s, and every plain write made through a
        script (:meth:`_write`): Note [Pool leases] in manager/leases.py.
        A write without the lease raises :class:`LeaseLost` and changes
        nothing.
        """
        fenced = copy.copy(self)
        fenced._lease = (lease, holder)
        fenced._scripts = load_scripts(fenced=True)
        return fenced

    async def _call(self, d: Deferred[Any], on: Any = None) -> Any:
        """``d``'s result, within this store's timeout.  No timer of ours
        for what is already there (a free connection is handed out at
        once), nor for a command on the connection ``on`` when that
        connection times its replies out as soon (txredisapi's
        ``replyTimeout``: then a timeout drops the connection too)."""
        if not d.called and not 0 < txredis_adapter.reply_timeout(on) <= self._timeout:
            d.addTimeout(self._timeout, self._reactor)
        try:
            return await d
        except (TimeoutError, txredisapi.ConnectionError, ConnectError,
                ConnectionLost) as e:
            raise self._unavailable(e.__class__.__name__) from None
        except txredisapi.ResponseError as e:
            # Redis busy with a script, loading its data, a read-only
            # replica, out of memory...: not the request's fault.
            reply = str(e).split(" ", 1)[0]
            if reply in UNAVAILABLE_REPLIES:
                raise self._unavailable(reply) from None
            if reply == "NOTHELD":
                raise LeaseLost(str(e)) from None
            raise

    def _unavailable(self, why: str) -> StoreUnavailable:
        if self._metrics is not None:
            self._metrics.redis_error()
        return StoreUnavailable(f"Redis did not answer: {why}")

    async def _script(self, name: str, /, *, on: Any = None, **named: Any) -> Any:
        """Run a script with its arguments by name (script_specs.py), by
        its hash, loading it first if Redis lacks it; its answer decoded
        as declared.  It runs on the connection ``on``, else on one of the
        pool's that is up, left in it (a script is one command: it needs no
        connection to itself), else through the pool, which waits for one
        to come up."""
        declared = SCRIPTS[name]
        keys, args = declared.arrange(named)
        return declared.answer(await self._eval(name, keys, args, on))

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any],
                    on: Any) -> Any:
        connection = on if on is not None else txredis_adapter.up_connection(self._redis)
        client = self._redis if connection is None else connection
        source, sha = self._scripts[name]
        if self._lease is not None:
            args = [*self._lease, *args]
        try:
            return await self._call(client.execute_command(
                "EVALSHA", sha, len(keys), *keys, *args), connection)
        except txredisapi.ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        return await self._call(client.execute_command(
            "EVAL", source, len(keys), *keys, *args), connection)

    async def _replicated(self, name: str, /, **named: Any) -> tuple[Any, bool]:
        """
        Run a script, and whether a replica has its writes (or the master
        has none).

        Note [Replicated answers]: a Redis master acknowledges a write
        before its replicas have it; should it die then, Sentinel promotes
        a replica without it.  A checkout answered so would be undone by
        the failover, and its VMs handed out again.  So when the master has
        replicas, the script's answer is used only once ``WAIT`` says one
        has it.  ``WAIT`` counts what its own connection wrote, so the
        script, the ``ROLE`` that says whether there are replicas (sent
        with it, in the same write: no extra round trip or send) and the
        ``WAIT`` go on one connection.  A connection's ``ROLE`` is asked
        at most once every ROLE_FOR seconds (a checkout batch asked it
        every time: 3% of a checkout's instructions).  A replica that
        attached since is not waited for until then, and a failover cannot
        promote it meanwhile: Sentinel learns of a master's replicas from
        its ``INFO``, every ten seconds.  A reconnection, to a new master
        say, is a new connection, which asks at once.
        """
        connection = await self._call(txredis_adapter.one_connection(self._redis))
        now = self._reactor.seconds()
        known = self._roles.get(connection)
        role = None
        if known is None or now - known[0] >= ROLE_FOR:
            role = connection.queue("ROLE")  # goes out in the script's write
        try:
            answer = await self._script(name, on=connection, **named)
        except Exception:
            if role is not None:
                role.addErrback(lambda _: None)
            raise
        if role is not None:
            master = await self._call(role, connection)
            known = (now, master[0] == "master" and bool(master[2]))
            self._roles[connection] = known
        assert known is not None
        if not known[1]:
            return answer, True
        acked = await self._call(connection.execute_command("WAIT", 1, WAIT_MS), connection)
        return answer, int(acked) >= 1

    async def _write(self, *command: Any) -> Any:
        """A plain write; a lease holder's through command.lua."""
        if self._lease is not None:
            return await self._script("command", command=command)
        return await self._call(self._redis.execute_command(*command))

    async def ping(self) -> None:
        await self._call(self._redis.ping())


class Part:
    """
    One part of a store, an attribute named for what it holds (as
    ``store.demand``, ``store.ondemand``): its verbs run through the
    store's own calls, so a part of a fenced store (:meth:`Scripts.fenced_by`)
    is fenced as it is (:class:`PartOf`).
    """

    def __init__(self, store: Scripts) -> None:
        self._script = store._script
        self._call = store._call
        self._write = store._write
        self._redis = store._redis


P = TypeVar("P", bound=Part)


class PartOf(Generic[P]):
    """A store's part as an attribute (``demand = PartOf(Demand)``), made
    from the store it is read on: a fenced store's parts are fenced."""

    def __init__(self, part: Callable[[Scripts], P]) -> None:
        self._part = part

    def __get__(self, store: Scripts | None, owner: type | None = None) -> P:
        if store is None:
            raise AttributeError("a part is read on a store")
        return self._part(store)
