"""
``/status``, ``/poolstat``, ``/totalrunning`` and ``/summary``: the
routes, and the pure functions from the pools' counts and daily history
(as the store reads them) to vmpooler's answer shapes.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, Callable, Sequence

from klein import Klein
from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred
from twisted.web.iweb import IRequest

from . import validate
from .dialect import is_v3
from .errors import ApiError, json_answer, json_bytes
from .recent import Recent
from .routes import route
from .timestamps import Timestamps
from ..config import Config, PoolConfig
from ..live import live_size
from ..manager import failures
from ..manager.failures import public_record
from ..names import public_manager
from ..store.api_store import ApiStore, DayHistory, Durations, PoolCounts
from ..timefmt import local_date

# Twenty years, a day's history each: from vmpooler's first days (2013) on.
MAX_DAYS = 7305
# Summaries rendered at once; more wait their turn (Note [Summaries]).
SUMMARIES_AT_ONCE = 1

# The sections of v1's /status, which ?view=a,b picks from (v3 adds "boot").
STATUS_VIEWS = ("capacity", "clone", "queue", "status", "pools")
MAX_LISTED = 1000  # names in one ?pool= or ?view= list
STATUS_MAX_AGE = 1.0  # seconds a /status read is reused (Note [Status once a second])

# Runs a function off the reactor (in a thread): its result, when it is done.
OffReactor = Callable[[Callable[[], bytes]], Deferred[bytes]]


def _inline(render: Callable[[], bytes]) -> Deferred[bytes]:
    return maybeDeferred(render)


class ReportRoutes:
    """
    Note [Summaries]: a long ``/summary`` is read from Redis a month per
    script call (the reactor serves other requests in between), then summed
    and encoded, which for twenty years takes a few tenths of a second of
    CPU: that runs in a thread (``off_reactor``), one summary at a time, so
    that neither one long summary nor many hold the reactor up.
    """

    def __init__(self, config: Config, store: ApiStore, clock: Timestamps,
                 off_reactor: OffReactor | None = None) -> None:
        self._off_reactor = off_reactor or _inline
        self._summaries = DeferredSemaphore(SUMMARIES_AT_ONCE)
        self._config = config
        self._store = store
        self._clock = clock
        self._started = clock.seconds()  # v3's status.uptime counts from here
        self._statuses: Recent[bool, dict[str, Any]] = Recent(
            clock.seconds, lambda: store.changes, STATUS_MAX_AGE)

    def mount(self, app: Klein) -> None:
        route(app, ["GET"], "/status", self.status)
        route(app, ["GET"], "/poolstat", self.poolstat)
        route(app, ["GET"], "/totalrunning", self.totalrunning)
        route(app, ["GET"], "/summary", self.summary_all)
        route(app, ["GET"], "/summary/<string:route>", self.summary_route)
        route(app, ["GET"], "/summary/<string:route>/<string:key>", self.summary_key)

    async def _sized(self, pools: Sequence[PoolConfig]
                     ) -> list[tuple[str, int, tuple[str, ...]]]:
        """``(name, live size, aliases)`` of ``pools`` (Note [Live pool
        config] in config_set.lua)."""
        live = await self._store.overrides.live([p.name for p in pools])
        return [(p.name, live_size(p, live[p.name]), p.alias) for p in pools]

    async def status(self, request: IRequest) -> bytes:
        """
        The whole status, or only the sections ``?view=a,b`` names: under
        v1 a name that is none is a 400; under v3, as in vmpooler 3.x, the
        answer always has ``status``, names that are none are ignored, and
        there is more (:func:`v3_status`).
        """
        v3 = is_v3(request)
        views = v3_views(request) if v3 else names_listed(request, "view")
        unknown = sorted(set(views or ()) - set(STATUS_VIEWS)) if not v3 else []
        if unknown:
            shown = ", ".join(repr(n[:validate.MAX_NAME]) for n in unknown[:10])
            raise ApiError(400, f"unknown view: {shown}; the views are "
                           + ", ".join(STATUS_VIEWS))
        whole = await self._statuses.get(v3, lambda: self._status(v3))
        if v3:
            views = None if views is None else [*views, "status"]
        return json_answer(request, 200, whole if views is None
                           else {k: v for k, v in whole.items() if k in views})

    async def _status(self, v3: bool) -> dict[str, Any]:
        """The whole status, read from Redis."""
        day = self._clock.today()
        cloning, counts, doubt = await self._store.pool_counts(self._config.pool_names)
        pools = await self._sized(self._config.pools)
        if not v3:
            return status(pools, cloning, counts, await self._store.clones_of(day), doubt)
        today = await self._store.today(day)
        return v3_status(status(pools, cloning, counts, today.clone, doubt), today,
                         await self._store.requests_waiting(),
                         self._clock.seconds() - self._started)

    async def poolstat(self, request: IRequest) -> bytes:
        """
        ``?pool=a,b``: each pool's ready VMs, size and aliases.  A name may
        be a pool or an alias (its pools are listed); like vmpooler, a name
        that is neither is left out of the answer.  Without ``pool``: 400
        under v1, no pools under v3 (as vmpooler 3.x).
        """
        listed = names_listed(request, "pool")
        if listed is None and not is_v3(request):
            raise ApiError(400, "give the pools to report on as ?pool=a,b")
        wanted = set(listed or ())
        pools = await self._sized([p for p in self._config.pools
                                   if p.name in wanted or wanted.intersection(p.alias)])
        _, counts, _ = await self._store.pool_counts([p[0] for p in pools])
        return json_answer(request, 200, {"pools": {
            name: {"ready": c.ready, "max": size, "alias": list(alias)}
            for (name, size, alias), c in zip(pools, counts)}})

    async def totalrunning(self, request: IRequest) -> bytes:
        """The VMs running in every pool."""
        _, counts, _ = await self._store.pool_counts(self._config.pool_names)
        return json_answer(request, 200, {"running": sum(c.running for c in counts)})

    async def _summary(self, request: IRequest, route: str | None, key: str | None) -> bytes:
        """The summary's answer (Note [Summaries]): whole, or its ``route``
        (and ``key``) part."""
        today = local_date(self._clock.seconds())

        def day(name: str) -> date:
            text = query_arg(request, name, f"{name} must be a date, YYYY-MM-DD")
            return validate.day(text or today.isoformat(), name)

        start, end = day("from"), day("to")
        if start > today:
            raise ApiError(400, "from is in the future")
        if end < start:
            raise ApiError(400, "to is before from")
        if (end - start).days >= MAX_DAYS:
            raise ApiError(400, f"a summary covers at most {MAX_DAYS} days")
        dates = days_between(start, end)
        history = await self._store.history(dates)

        def render() -> bytes:
            whole = summary(dates, history)
            part = whole if route is None else summary_part(whole, route, key)
            return json.dumps(part).encode()
        body: bytes = await self._summaries.run(self._off_reactor, render)
        return json_bytes(request, 200, body)

    async def summary_all(self, request: IRequest) -> bytes:
        return await self._summary(request, None, None)

    async def summary_route(self, request: IRequest, route: str) -> bytes:
        return await self.summary_key(request, route, None)

    async def summary_key(self, request: IRequest, route: str, key: str | None) -> bytes:
        if not part_exists(route, key):
            raise ApiError(404, "no such summary")
        return await self._summary(request, route, key)


def query_arg(request: IRequest, name: str, malformed: str) -> str | None:
    """The query's first ``name``, if given; 400 (``malformed``) if not UTF-8."""
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, malformed) from None


def v3_views(request: IRequest) -> list[str] | None:
    """``?view=a,b`` as vmpooler 3.x reads it: any names (None if not given)."""
    try:
        text = query_arg(request, "view", "")
    except ApiError:
        return []
    return None if text is None else text.split(",")[:MAX_LISTED]


def names_listed(request: IRequest, name: str) -> list[str] | None:
    """``?name=a,b`` as ``["a", "b"]`` (None if not given); 400 for an
    empty name, or more than MAX_LISTED."""
    text = query_arg(request, name, f"{name} must be a comma-separated list of names")
    if text is None:
        return None
    names = text.split(",")
    if len(names) > MAX_LISTED or not all(names):
        raise ApiError(400, f"{name} must be a comma-separated list of at most "
                       f"{MAX_LISTED} names, none empty")
    return names


# --- the answers' shapes: pure functions of the store's figures ----------------


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _average(total: float, count: int) -> float:
    return round(total / count, 2) if count else 0


def _durations(d: Durations) -> dict[str, float]:
    return {"average": _average(d.total, d.count), "min": round(d.min, 2),
            "max": round(d.max, 2), "total": round(d.total, 2)}


def _tags(days: Sequence[DayHistory]) -> dict[str, dict[str, int]]:
    tags: dict[str, dict[str, int]] = {}
    for day in days:
        for tag, values in day.tags.items():
            counts = tags.setdefault(tag, {})
            for value, n in values.items():
                counts[value] = counts.get(value, 0) + n
    for counts in tags.values():
        counts["total"] = sum(counts.values())
    return tags


def _overall(days: Sequence[DayHistory], kind: str) -> dict[str, Any]:
    parts: list[Durations] = [getattr(d, kind) for d in days]
    seen = [p for p in parts if p.count]
    total = sum(p.total for p in seen)
    count = sum(p.count for p in parts)
    return {
        "duration": _durations(Durations(
            count, total, min((p.min for p in seen), default=0),
            max((p.max for p in seen), default=0))),
        "count": {"average": _average(count, len(parts)),
                  "min": min((p.count for p in parts), default=0),
                  "max": max((p.count for p in parts), default=0),
                  "total": count},
    }


def summary(dates: Sequence[str], days: Sequence[DayHistory]) -> dict[str, Any]:
    """vmpooler's ``/summary`` answer for consecutive ``dates``."""
    return {
        "boot": _overall(days, "boot"),
        "clone": _overall(days, "clone"),
        "tag": _tags(days),
        "daily": [
            {"date": when,
             "boot": {"duration": _durations(day.boot), "count": {"total": day.boot.count}},
             "clone": {"duration": _durations(day.clone), "count": {"total": day.clone.count}},
             "tag": _tags([day])}
            for when, day in zip(dates, days)],
    }


def part_exists(route: str, key: str | None) -> bool:
    """Whether ``/summary/<route>[/<key>]`` names a part of the summary."""
    if route == "tag":
        return True
    return route in ("boot", "clone") and key in (None, "duration", "count")


def summary_part(full: dict[str, Any], route: str, key: str | None) -> dict[str, Any]:
    """
    ``/summary/<route>[/<key>]``: one section (``boot``, ``clone``, ``tag``),
    or one key of it (``duration``, ``count``, or a tag's name), overall
    and daily.
    """

    def pick(section: dict[str, Any]) -> dict[str, Any]:
        return section if key is None else {key: section.get(key, {})}

    return {route: pick(full[route]),
            "daily": [{"date": d["date"], route: pick(d[route])} for d in full["daily"]]}


def status(pools: Sequence[tuple[str, int, tuple[str, ...]]], cloning: int,
           counts: Sequence[PoolCounts], clones_today: Durations,
           doubt: str | None = None) -> dict[str, Any]:
    """vmpooler's ``/status``, from ``(name, size, aliases)`` and counts; a
    Redis in doubt (Note [Redis generations]) makes the status not ok, and
    says why."""
    ready = sum(c.ready for c in counts)
    pending = sum(c.pending for c in counts)
    running = sum(c.running for c in counts)
    completed = sum(c.completed for c in counts)
    size = sum(p[1] for p in pools)
    empty = [p[0] for p, c in zip(pools, counts) if c.ready == 0 and p[1] > 0]
    return {
        "capacity": {"current": ready, "total": size,
                     "percent": round(100.0 * ready / size, 1) if size else 0},
        "clone": {"duration": {"average": _average(clones_today.total, clones_today.count),
                               "min": round(clones_today.min, 2),
                               "max": round(clones_today.max, 2)},
                  "count": {"total": clones_today.count}},
        "queue": {"pending": pending, "cloning": cloning,
                  "booting": max(pending - cloning, 0), "ready": ready,
                  "running": running, "completed": completed,
                  "total": pending + ready + running + completed},
        "status": _status_line(empty, doubt),
        "pools": {name: _pool_status(size_, alias, c)
                  for (name, size_, alias), c in zip(pools, counts)},
    }


def v3_status(whole: dict[str, Any], today: DayHistory, requested: int,
              uptime: float) -> dict[str, Any]:
    """
    vmpooler 3.x's ``/status`` from v1's ``whole``: a ``boot`` section (the
    day's boots, as ``clone`` has the day's clones), ``clone.duration.total``,
    ``queue.requested`` (on-demand requests waiting) and ``status.uptime``
    (seconds the API has served).
    """
    clone = whole["clone"]
    return {
        **whole,
        "boot": {"duration": _durations(today.boot), "count": {"total": today.boot.count}},
        "clone": {**clone, "duration": {**clone["duration"],
                                        "total": round(today.clone.total, 2)}},
        "queue": {"requested": requested, **whole["queue"]},
        "status": {**whole["status"], "uptime": round(uptime, 1)},
    }


def _pool_status(size: int, alias: Sequence[str], c: PoolCounts) -> dict[str, Any]:
    """One pool in ``/status``: vmpooler's keys, then the manager holding
    its lease (Note [Pool leases]; null: none; by its public name), why its
    VMs failed (Note [Failures explained]) and what its demand says (Note
    [Sizing from demand])."""
    return {"ready": c.ready, "running": c.running, "pending": c.pending, "max": size,
            "alias": list(alias), "lastBoot": c.last_boot,
            "manager": None if c.manager is None else public_manager(c.manager),
            **explained(c)}


def explained(c: PoolCounts) -> dict[str, Any]:
    """What ``/status`` and the dashboard say of a pool besides its counts:
    why its VMs failed (by kind: Note [Public failures]), what its demand
    says, and its clones' pause (each only when there is something to say)."""
    shown: dict[str, Any] = {}
    if c.failures:
        shown["failures"] = {"count": dict(c.failures),
                             "recent": [public_record(f) for f in c.recent_failures
                                        if isinstance(f, dict)]}
    if c.sizing is not None:
        shown["demand"] = c.sizing
    if isinstance(c.clone_pause, dict):
        shown["clones_paused"] = {**{k: c.clone_pause[k] for k in ("failures", "until")
                                     if k in c.clone_pause},
                                  "reason": failures.CLONES_PAUSED}
    return shown


def _status_line(empty: Sequence[str], doubt: str | None) -> dict[str, Any]:
    overall: dict[str, Any] = (
        {"ok": False, "message": f"Found {len(empty)} empty pools.", "empty": list(empty)}
        if empty else {"ok": True, "message": "Battle station fully armed and operational."})
    if doubt:
        overall.update(ok=False, doubt=doubt, message=(
            f"Redis's state is in doubt ({doubt}): discovered VMs are held, not destroyed, "
            "until an operator runs python -m vmpoolerd.adopt."))
    return overall
