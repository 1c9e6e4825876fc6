"""
``/summary`` and the figures of ``/status``: pure functions from daily
history (as the store reads it) to vmpooler's answer shapes.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Sequence

from ..store.api_store import DayHistory, Durations, PoolCounts

# Twenty years, a day's history each: from vmpooler's first days (2013) on.
# A range's days are looked up and summed on the reactor: ~0.2 s at most
# here, where a century would hold every other request up for a second.
MAX_DAYS = 7305


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
           counts: Sequence[PoolCounts], clones_today: Durations) -> dict[str, Any]:
    """vmpooler's ``/status``, from ``(name, size, aliases)`` and counts."""
    ready = sum(c.ready for c in counts)
    pending = sum(c.pending for c in counts)
    running = sum(c.running for c in counts)
    completed = sum(c.completed for c in counts)
    size = sum(p[1] for p in pools)
    empty = [p[0] for p, c in zip(pools, counts) if c.ready == 0]
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
        "status": ({"ok": False, "message": f"Found {len(empty)} empty pools.",
                    "empty": empty} if empty else
                   {"ok": True, "message": "Battle station fully armed and operational."}),
        "pools": {name: {"ready": c.ready, "running": c.running, "pending": c.pending,
                         "max": size_, "alias": list(alias), "lastBoot": c.last_boot}
                  for (name, size_, alias), c in zip(pools, counts)},
    }
