"""
A synthetic week of checkout demand, seeded (the sizing benchmark's input):
a working day with a morning peak, quiet nights and weekends, and a few
random bursts (a team's pipeline fanning out).  Checkouts arrive as a
Poisson process whose rate follows the hour; each asks for one VM.
"""

from __future__ import annotations

import random

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY

# Checkouts per hour on a working day, by hour.
WORKDAY = (1, 1, 1, 1, 1, 1, 2, 6, 20, 40, 30, 14, 10, 12, 14, 12, 10, 6, 3, 2, 2, 1, 1, 1)
WEEKEND = (1,) * 24
BURSTS_PER_WEEK = 4
BURST_CHECKOUTS = 15  # within BURST_SECONDS, on top of the hour's rate
BURST_SECONDS = 900.0


def hourly_rates() -> list[int]:
    """The rate of each hour of the week, Monday 00:00 first (bursts aside)."""
    return [rate for day in range(7) for rate in (WORKDAY if day < 5 else WEEKEND)]


def week(seed: int) -> list[float]:
    """The seconds from Monday 00:00 at which the week's checkouts come,
    in order."""
    rng = random.Random(seed)
    times: list[float] = []
    for hour, rate in enumerate(hourly_rates()):
        start = hour * HOUR
        t = start + rng.expovariate(rate / HOUR)
        while t < start + HOUR:
            times.append(t)
            t += rng.expovariate(rate / HOUR)
    for _ in range(BURSTS_PER_WEEK):
        day, hour = rng.randrange(5), rng.randrange(9, 17)
        start = day * DAY + hour * HOUR + rng.uniform(0, HOUR - BURST_SECONDS)
        times.extend(start + rng.uniform(0, BURST_SECONDS) for _ in range(BURST_CHECKOUTS))
    return sorted(times)


def per_hour(times: list[float]) -> list[int]:
    """The checkouts in each hour of the week."""
    counts = [0] * 168
    for t in times:
        counts[int(t // HOUR) % 168] += 1
    return counts
