"""
Demand-driven pool sizes (``size_policy: demand``): pure.

Note [Sizing from demand]: a pool with n ready-or-pending VMs, whose
checkouts each start a replacement that takes T seconds to become ready
(clone plus boot), and whose checkouts that find no ready VM are refused
(503, nothing taken), is a loss system with n servers: the VMs being
replaced are the busy servers, a refused checkout is a lost call.  With
checkouts arriving at rate r, the share refused is Erlang's B formula for
n servers and an offered load of r * T, whatever the distribution of T.
The size we set is the smallest n whose share of hits, 1 - B, meets the
pool's ``hit_rate``, between its ``min_size`` and its ``size``.

Note [Demand estimate]: r is not known; it is estimated from the
checkouts counted per hour (:class:`Demand`), at the larger of:
- the recent rate: the checkouts of the last hour, taken as the current
  hour's count plus the share of the previous hour's not yet slid past,
  or the current hour's pace if higher (its count over the part of the
  hour gone, at least BURST_WINDOW of it), so that a burst is met while
  it lasts;
- the expected rate of every hour from HOLD_HOURS ago to ``lookahead``
  seconds on (the replenish time and a margin), so that a pool grows
  before a known peak rather than after it, and keeps a busy morning's
  size through the working day, when bursts come that no hourly mean
  foresees (a team's pipeline fanning out), with HEADROOM standard
  deviations of a Poisson count on top (a mean of past hours is not the
  next one).  An
  hour's expected rate is what the same
  hour of the week brought on past weeks or, until a week has been seen,
  what the same hour of the day brought on past days; both are
  exponentially weighted means in which the newest observation counts
  for ``WEIGHT``.
Nothing seen yet expects nothing: the pool sits at its floor until its
first checkouts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

from ..timefmt import hour_of

HOURS_PER_WEEK = 168
# The epoch began on a Thursday; hour-of-week 0 is Monday 00:00.
_EPOCH_HOUR_OF_WEEK = 3 * 24
# How much the newest observation of an hour counts in its mean.
WEIGHT = 0.5
# The most the rate sized for is raised when the pool misses (Note
# [Sizing feedback]).
MAX_BOOST = 3.0
# Standard deviations of an hour's count sized for above its expectation.
HEADROOM = 2.0
# The shortest part of an hour whose pace is taken for the hour's rate.
BURST_WINDOW = 0.25
# Hours a pool keeps the size of a busier hour it has passed (Note
# [Demand estimate]): about a working day.
HOLD_HOURS = 8
# A gap of more than a week without a fold adds one zero to each hour of
# the week, not one per week missed.
_MAX_FOLD = HOURS_PER_WEEK


@dataclasses.dataclass(frozen=True)
class Mean:
    """An exponentially weighted mean of hourly counts, and how many."""
    rate: float = 0.0
    samples: int = 0

    def add(self, count: float) -> "Mean":
        if self.samples == 0:
            return Mean(float(count), 1)
        return Mean((1 - WEIGHT) * self.rate + WEIGHT * count, self.samples + 1)


@dataclasses.dataclass(frozen=True)
class Demand:
    """
    One pool's checkout history: the means by hour of the week and of the
    day, the hour (hours since the epoch, local) they were folded up to,
    and that hour's and the one before's counts.
    """
    week: tuple[Mean, ...] = (Mean(),) * HOURS_PER_WEEK
    day: tuple[Mean, ...] = (Mean(),) * 24
    hour: int = 0
    current: int = 0
    previous: int = 0

    def to_json(self) -> dict[str, object]:
        return {"week": [[m.rate, m.samples] for m in self.week],
                "day": [[m.rate, m.samples] for m in self.day],
                "hour": self.hour, "current": self.current, "previous": self.previous}

    @classmethod
    def from_json(cls, data: object) -> "Demand":
        """The history as :meth:`to_json` wrote it; an empty one for
        anything else (a damaged record costs history, not the pool)."""
        try:
            assert isinstance(data, dict)
            week = tuple(Mean(float(r), int(n)) for r, n in data["week"])
            day = tuple(Mean(float(r), int(n)) for r, n in data["day"])
            if len(week) != HOURS_PER_WEEK or len(day) != 24:
                return cls()
            return cls(week, day, int(data["hour"]), int(data["current"]),
                       int(data["previous"]))
        except (AssertionError, KeyError, TypeError, ValueError):
            return cls()


def hour_of_week(hour: int) -> int:
    return (hour + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


def count(demand: Demand, hour: int, checkouts: int) -> Demand:
    """``demand`` with ``checkouts`` counted in ``hour`` (folded up to it
    first; a count for an hour already folded goes to the current one)."""
    rolled = fold(demand, hour)
    return dataclasses.replace(rolled, current=rolled.current + checkouts)


def fold(demand: Demand, hour: int) -> Demand:
    """
    ``demand`` brought up to ``hour``: every hour that ended since it was
    last folded adds its count (the current one's, then zeros) to its
    hour of the week and of the day.  A first fold only starts the count.
    """
    if demand.hour == 0:
        return dataclasses.replace(demand, hour=hour)
    if hour <= demand.hour:
        return demand
    week, day = list(demand.week), list(demand.day)
    ended = [demand.current] + [0] * (min(hour - demand.hour, _MAX_FOLD) - 1)
    for offset, checkouts in enumerate(ended):
        h = demand.hour + offset
        week[hour_of_week(h)] = week[hour_of_week(h)].add(checkouts)
        day[h % 24] = day[h % 24].add(checkouts)
    previous = demand.current if hour == demand.hour + 1 else 0
    return Demand(tuple(week), tuple(day), hour, 0, previous)


def expected_rate(demand: Demand, hour: int) -> float:
    """Checkouts expected in ``hour`` (Note [Demand estimate])."""
    week = demand.week[hour_of_week(hour)]
    return week.rate if week.samples else demand.day[hour % 24].rate


def rate(demand: Demand, now: float, utc_offset: float, lookahead: float) -> float:
    """Checkouts per hour to size for at ``now`` (Note [Demand estimate])."""
    hour = hour_of(now, utc_offset)
    rolled = fold(demand, hour)
    into_hour = (now + utc_offset) / 3600 - hour
    recent = max(rolled.current + rolled.previous * (1 - into_hour),
                 rolled.current / max(into_hour, BURST_WINDOW))
    last = hour_of(now + max(lookahead, 0.0), utc_offset)
    ahead = max(expected_rate(rolled, h) for h in range(hour - HOLD_HOURS, last + 1))
    return max(recent, ahead + HEADROOM * math.sqrt(ahead))


def hit_rate(size: int, load: float) -> float:
    """The share of checkouts that find a ready VM with ``size`` VMs and
    an offered load of ``load`` (Erlang B: Note [Sizing from demand])."""
    if load <= 0:
        return 1.0
    blocking = 1.0
    for n in range(1, size + 1):
        blocking = load * blocking / (n + load * blocking)
    return 1.0 - blocking


def size_for(rate_per_hour: float, replenish_seconds: float, target: float,
             floor: int, ceiling: int) -> int:
    """The smallest size between ``floor`` and ``ceiling`` whose hit rate
    meets ``target`` for checkouts at ``rate_per_hour`` that take
    ``replenish_seconds`` to replace; ``ceiling`` if none does."""
    load = max(rate_per_hour, 0.0) * max(replenish_seconds, 0.0) / 3600
    return next((n for n in range(floor, ceiling) if hit_rate(n, load) >= target), ceiling)


@dataclasses.dataclass(frozen=True)
class Sizing:
    """The live size the policy sets, and what it rests on (shown in
    ``/status``, the dashboard and ``/metrics``)."""
    size: int
    rate: float          # checkouts per hour sized for
    replenish: float     # seconds from a checkout to its replacement ready
    expected_hits: float  # the hit rate this size gives at that rate


def decide(demand: Demand, now: float, utc_offset: float, replenish_seconds: float,
           target: float, floor: int, ceiling: int, margin: float,
           achieved: float | None = None) -> Sizing:
    """
    The pool's size now (Note [Sizing from demand]); ``margin`` seconds
    are looked ahead beyond the replenish time.

    Note [Sizing feedback]: the model is a model.  Replacements that take
    longer than measured (a busy vCenter, a manager's cycle), checkouts
    that come in bursts, make the pool miss more than Erlang's formula
    says; so when the hit rate ``achieved`` over the last day is below
    the target, the rate sized for is raised by the shortfall in units of
    the target's miss rate (1% short of 99% doubles it), at most
    MAX_BOOST times.
    """
    per_hour = rate(demand, now, utc_offset, replenish_seconds + margin) * \
        boost(achieved, target)
    size = size_for(per_hour, replenish_seconds, target, floor, ceiling)
    load = per_hour * replenish_seconds / 3600
    return Sizing(size, per_hour, replenish_seconds, hit_rate(size, load))


def boost(achieved: float | None, target: float) -> float:
    """How much more demand to size for (Note [Sizing feedback])."""
    if achieved is None or achieved >= target:
        return 1.0
    return min(1.0 + (target - achieved) / (1.0 - target), MAX_BOOST)


# --- the history kept in Redis (vmpoolerd.store.demand) --------------------------

# The hit rate shown is the share of the VMs asked for in this many hours,
# the current one included, that were handed out.
WINDOW_HOURS = 24
# How much a newly measured replenish time counts in the pool's mean.
REPLENISH_WEIGHT = 0.2


@dataclasses.dataclass(frozen=True)
class History:
    """What is saved of a pool: its demand, folded to an hour, and the mean
    seconds from a clone's start to its VM ready (None: none measured)."""
    demand: Demand = Demand()
    replenish: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"demand": self.demand.to_json(), "replenish": self.replenish}

    @classmethod
    def from_json(cls, data: object) -> "History":
        if not isinstance(data, dict):
            return cls()
        replenish = data.get("replenish")
        return cls(Demand.from_json(data.get("demand")),
                   float(replenish) if isinstance(replenish, (int, float)) else None)


def absorb(history: History, asked: Mapping[int, int], hour: int,
           replenished: Sequence[float] = ()) -> History:
    """
    ``history`` brought up to ``hour``: the counts of the hours that ended
    since it was folded (asked: VMs asked for by hour) added, and the
    replenish times measured since it was saved averaged in.  The current
    hour's count stays out: it is still counting (:func:`counting`).
    """
    demand = history.demand
    for h in sorted(asked):
        if h < hour and (demand.hour == 0 or h >= demand.hour):
            demand = count(demand, h, asked[h])
    replenish = history.replenish
    for seconds in replenished:
        replenish = seconds if replenish is None else \
            (1 - REPLENISH_WEIGHT) * replenish + REPLENISH_WEIGHT * seconds
    return History(fold(demand, hour), replenish)


def counting(history: History, asked: Mapping[int, int], hour: int) -> Demand:
    """The demand with the current hour's count so far."""
    return count(history.demand, hour, asked.get(hour, 0))


def achieved(asked: Mapping[int, int], hit: Mapping[int, int], hour: int) -> float | None:
    """The share of VMs asked for that were handed out over the last
    WINDOW_HOURS hours; None when none was asked for."""
    window = range(hour - WINDOW_HOURS + 1, hour + 1)
    wanted = sum(asked.get(h, 0) for h in window)
    return None if wanted == 0 else sum(hit.get(h, 0) for h in window) / wanted
