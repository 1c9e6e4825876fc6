"""
The demand-driven sizing (vmpoolerd.manager.sizing_plan): pure, so driven with
made-up histories and times.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.manager import sizing_plan as sizing
from vmpoolerd.manager.sizing_plan import Demand
from vmpoolerd.timefmt import hour_of

HOUR = 3600.0
DAY = 24 * HOUR
# 2024-01-01 was a Monday; its 00:00 UTC in epoch seconds.
MONDAY = 1704067200.0
REPLENISH = 300.0  # five minutes from checkout to a replacement ready
TARGET = 0.99


def trained(per_hour_of_day: list[int], days: int, start: float = MONDAY) -> Demand:
    """A history of ``days`` days with ``per_hour_of_day[h]`` checkouts in
    each day's hour h, ending at the start of the day after."""
    demand = Demand()
    for d in range(days):
        for h in range(24):
            demand = sizing.count(demand, hour_of(start + d * DAY + h * HOUR, 0),
                                  per_hour_of_day[h])
    return sizing.fold(demand, hour_of(start + days * DAY, 0))


def size_at(demand: Demand, now: float, floor: int = 1, ceiling: int = 50) -> int:
    return sizing.decide(demand, now, 0, REPLENISH, TARGET, floor, ceiling, 900).size


class ErlangTests(SynchronousTestCase):
    def test_known_values(self) -> None:
        # B(1, 1) = 1/2, B(2, 1) = 1/5, B(3, 2) = 4/19.
        self.assertAlmostEqual(sizing.hit_rate(1, 1.0), 0.5)
        self.assertAlmostEqual(sizing.hit_rate(2, 1.0), 0.8)
        self.assertAlmostEqual(sizing.hit_rate(3, 2.0), 1 - 4 / 19)

    def test_no_vms_hit_nothing_and_no_load_hits_all(self) -> None:
        self.assertEqual(sizing.hit_rate(0, 3.0), 0.0)
        self.assertEqual(sizing.hit_rate(0, 0.0), 1.0)

    def test_size_is_the_smallest_meeting_the_target(self) -> None:
        # 60 checkouts an hour, 5 minutes to replace: a load of 5.
        size = sizing.size_for(60, REPLENISH, TARGET, 1, 100)
        self.assertGreaterEqual(sizing.hit_rate(size, 5.0), TARGET)
        self.assertLess(sizing.hit_rate(size - 1, 5.0), TARGET)
        self.assertEqual(size, 11)

    def test_bounds(self) -> None:
        self.assertEqual(sizing.size_for(0, REPLENISH, TARGET, 2, 10), 2)
        self.assertEqual(sizing.size_for(10_000, REPLENISH, TARGET, 2, 10), 10)


class DemandTests(SynchronousTestCase):
    def test_no_demand_keeps_the_floor(self) -> None:
        self.assertEqual(size_at(Demand(), MONDAY, floor=1), 1)
        self.assertEqual(size_at(trained([0] * 24, 14), MONDAY + 14 * DAY + 9 * HOUR,
                                 floor=3), 3)

    def test_a_step_in_demand_raises_the_size_within_the_hour(self) -> None:
        demand = trained([1] * 24, 7)
        now = MONDAY + 7 * DAY + 10 * HOUR
        before = size_at(demand, now)
        # Thirty checkouts in the first ten minutes of the hour.
        stepped = sizing.count(demand, hour_of(now, 0), 30)
        after = size_at(stepped, now + 600)
        self.assertEqual(before, 3)  # 1 an hour, sized as 1 + 2 x 1
        self.assertGreater(after, before + 3)

    def test_a_daily_peak_is_met_before_it_starts(self) -> None:
        quiet, peak = 2, 120
        pattern = [quiet] * 24
        pattern[9] = peak
        demand = trained(pattern, 14)
        today = MONDAY + 14 * DAY
        at_night = size_at(demand, today + 3 * HOUR)
        just_before = size_at(demand, today + 8 * HOUR + 50 * 60)
        in_the_peak = size_at(demand, today + 9 * HOUR + 30 * 60)
        self.assertLess(at_night, 4)
        self.assertEqual(just_before, in_the_peak)
        headroom = peak + sizing.HEADROOM * peak ** 0.5
        self.assertEqual(in_the_peak, sizing.size_for(headroom, REPLENISH, TARGET, 1, 50))

    def test_weekends_are_learnt_apart_from_weekdays(self) -> None:
        weekday = [40] * 24
        demand = Demand()
        for d in range(14):
            per_hour = 0 if d % 7 >= 5 else weekday[0]
            for h in range(24):
                demand = sizing.count(demand, hour_of(MONDAY + d * DAY + h * HOUR, 0),
                                      per_hour)
        demand = sizing.fold(demand, hour_of(MONDAY + 14 * DAY, 0))
        saturday, monday = MONDAY + 19 * DAY + 12 * HOUR, MONDAY + 14 * DAY + 12 * HOUR
        self.assertEqual(size_at(demand, saturday), 1)
        self.assertGreater(size_at(demand, monday), 5)

    def test_a_burst_raises_the_size_then_passes(self) -> None:
        demand = trained([2] * 24, 7)
        now = MONDAY + 7 * DAY + 14 * HOUR
        burst = sizing.count(demand, hour_of(now, 0), 80)
        self.assertGreater(size_at(burst, now + 60), 8)
        # The pool keeps a busier hour's size HOLD_HOURS on (bursts come
        # in working hours), sized from that hour's mean, in which the
        # burst is one observation of two ...
        held = size_at(burst, now + 2 * HOUR + 60)
        self.assertGreater(held, 8)
        self.assertLess(held, size_at(burst, now + 60))
        # ... and then falls back.
        self.assertLess(size_at(burst, now + (sizing.HOLD_HOURS + 1) * HOUR + 60), 4)

    def test_the_size_never_leaves_its_bounds(self) -> None:
        demand = sizing.count(trained([500] * 24, 7), hour_of(MONDAY + 7 * DAY, 0), 500)
        self.assertEqual(size_at(demand, MONDAY + 7 * DAY + 60, floor=1, ceiling=12), 12)
        self.assertEqual(size_at(Demand(), MONDAY, floor=4, ceiling=12), 4)


class FoldTests(SynchronousTestCase):
    def test_newer_weeks_weigh_more(self) -> None:
        old = trained([10] * 24, 7)
        new = trained([30] * 24, 7, start=MONDAY + 7 * DAY)
        both = trained([10] * 24, 7)
        for h in range(7 * 24):
            both = sizing.count(both, hour_of(MONDAY + 7 * DAY + h * HOUR, 0), 30)
        both = sizing.fold(both, hour_of(MONDAY + 14 * DAY, 0))
        hour = hour_of(MONDAY + 14 * DAY, 0)
        self.assertEqual(sizing.expected_rate(old, hour), 10)
        self.assertEqual(sizing.expected_rate(new, hour), 30)
        self.assertEqual(sizing.expected_rate(both, hour), 20)

    def test_a_long_gap_counts_each_hour_once(self) -> None:
        demand = trained([10] * 24, 7)
        later = sizing.fold(demand, demand.hour + 10 * sizing.HOURS_PER_WEEK)
        self.assertTrue(all(m.samples == 2 for m in later.week))
        self.assertEqual(later.current, 0)

    def test_counts_for_a_folded_hour_go_to_the_current_one(self) -> None:
        demand = sizing.count(Demand(), 1000, 3)
        demand = sizing.count(demand, 1001, 2)
        demand = sizing.count(demand, 1000, 4)
        self.assertEqual((demand.hour, demand.current, demand.previous), (1001, 6, 3))

    def test_json_round_trip_and_damage(self) -> None:
        demand = trained([3] * 24, 2)
        self.assertEqual(Demand.from_json(json.loads(json.dumps(demand.to_json()))), demand)
        damaged: list[object] = [None, [], {"week": []}, {"week": "x", "day": 1},
                                 {**demand.to_json(), "hour": "soon"}]
        for damaged_record in damaged:
            self.assertEqual(Demand.from_json(damaged_record), Demand())


class HistoryTests(SynchronousTestCase):
    def test_absorb_folds_ended_hours_once(self) -> None:
        asked = {100: 4, 101: 6, 102: 9}
        history = sizing.absorb(sizing.History(), asked, 102)
        self.assertEqual(history.demand.hour, 102)
        self.assertEqual(history.demand.previous, 6)
        # Absorbing again (another cycle, the same counts still in Redis)
        # counts nothing twice; the current hour is added while counting.
        again = sizing.absorb(history, asked, 102)
        self.assertEqual(again, history)
        self.assertEqual(sizing.counting(again, asked, 102).current, 9)
        later = sizing.absorb(again, asked, 103)
        self.assertEqual(later.demand.previous, 9)
        self.assertEqual(later.demand.day[101 % 24].rate, 6)

    def test_replenish_is_a_weighted_mean(self) -> None:
        history = sizing.absorb(sizing.History(), {}, 5, [100.0])
        self.assertEqual(history.replenish, 100.0)
        history = sizing.absorb(history, {}, 5, [200.0])
        self.assertAlmostEqual(history.replenish or 0, 120.0)

    def test_achieved_hit_rate_over_a_day(self) -> None:
        asked = {10: 100, 40: 10, 41: 10}
        hit = {10: 0, 40: 10, 41: 5}
        self.assertEqual(sizing.achieved(asked, hit, 41), 0.75)
        self.assertIsNone(sizing.achieved({}, {}, 41))

    def test_json_round_trip(self) -> None:
        history = sizing.absorb(sizing.History(), {7: 3, 8: 1}, 9, [42.0])
        text = json.dumps(history.to_json())
        self.assertEqual(sizing.History.from_json(json.loads(text)), history)
        self.assertEqual(sizing.History.from_json("junk"), sizing.History())


class FeedbackTests(SynchronousTestCase):
    def test_missing_raises_the_rate_sized_for(self) -> None:
        self.assertEqual(sizing.boost(None, 0.99), 1.0)
        self.assertEqual(sizing.boost(0.995, 0.99), 1.0)
        self.assertAlmostEqual(sizing.boost(0.98, 0.99), 2.0)
        self.assertEqual(sizing.boost(0.5, 0.99), sizing.MAX_BOOST)
        demand = trained([20] * 24, 7)
        now = MONDAY + 7 * DAY + 10 * HOUR
        met = sizing.decide(demand, now, 0, REPLENISH, TARGET, 1, 50, 900, achieved=0.995)
        short = sizing.decide(demand, now, 0, REPLENISH, TARGET, 1, 50, 900, achieved=0.98)
        self.assertEqual(short.rate, 2 * met.rate)
        self.assertGreater(short.size, met.size)
