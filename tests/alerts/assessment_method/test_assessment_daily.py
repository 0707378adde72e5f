"""Daily values and period statistics, on results worked out by hand.

Times are local (Asia/Shanghai, UTC+8) unless a test says otherwise; the day of a result is the
station's local day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.assessment_method.daily import DailyValues, Result, daily_values, make_result, parse_value
from alerts.assessment_method.period import parse_period
from alerts.assessment_method.rules import AssessmentRules, default_rules
from alerts.assessment_method.statistics import ItemStat, period_stats
from config.standards import default_standard

CST = ZoneInfo("Asia/Shanghai")
STANDARD = default_standard()
RULES = default_rules()
ZONES: dict[str, tzinfo] = {"s1": CST}
NOV = parse_period("2026-11")


def near(value: float) -> Any:
    """`pytest.approx`, typed to sit inside the tuples compared below."""
    return pytest.approx(value)


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=CST)


def day_of(day: int, month: int = 11) -> int:
    return date(2026, month, day).toordinal()


def six(code: str, day: int, values: Iterable[float], flags: str = "NNNNNN", month: int = 11) -> list[Result]:
    """The six 4-hourly results of a day (00:00 .. 20:00)."""
    return [
        make_result("s1", at(day, 4 * i, month), code, v, flag=f)
        for i, (v, f) in enumerate(zip(values, flags, strict=True))
    ]


def daily(results: Iterable[Result], rules: AssessmentRules = RULES) -> DailyValues:
    return daily_values(results, ZONES, STANDARD, rules)


def test_daily_mean_of_valid_results() -> None:
    """Six N results 0.2..0.7 of NH3-N: daily value 0.45 from all six."""
    out = daily(six("nh3n", 3, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]))
    assert out.days == {("s1", "nh3n"): {day_of(3): (near(0.45), 0.0, None, 6)}}


def test_day_needs_four_valid_results() -> None:
    """Two results flagged D leave four: still a day (mean of the four); three D leave three: no day."""
    four = daily(six("nh3n", 3, [0.2, 9.0, 0.4, 9.0, 0.6, 0.8], "NDNDNN"))
    assert four.days[("s1", "nh3n")][day_of(3)] == (0.5, 0.0, None, 4)
    assert four.excluded_flag == 2
    three = daily(six("nh3n", 3, [0.2, 9.0, 0.4, 9.0, 9.0, 0.8], "NDNDBN"))
    assert three.days == {}
    assert three.short_days == 1


def test_hand_sampled_item_needs_one_result() -> None:
    """Cadmium (a hand-sampled item by default) has a daily value from a single result."""
    out = daily([make_result("s1", at(5, 10), "cd", 0.002)])
    assert out.days[("s1", "cd")] == {day_of(5): (0.002, 0.0, None, 1)}


def test_local_day_of_a_utc_time() -> None:
    """17:00Z on 1 November is 01:00 on 2 November in Shanghai; a station in UTC keeps it on the 1st."""
    utc_time = datetime(2026, 11, 1, 17, tzinfo=ZoneInfo("UTC"))
    results = [make_result(sid, utc_time, "cd", 0.002) for sid in ("s1", "s2")]
    out = daily_values(results, {"s1": CST, "s2": ZoneInfo("UTC")}, STANDARD, RULES)
    assert list(out.days[("s1", "cd")]) == [day_of(2)]
    assert list(out.days[("s2", "cd")]) == [day_of(1)]


def test_below_detection_counts_half_the_limit() -> None:
    """Three `0.01L` and three 0.03: mean (3 x 0.005 + 3 x 0.03) / 6 = 0.0175, limit 0.01 kept."""
    out = daily(six("tp", 3, [0.01, 0.01, 0.01, 0.03, 0.03, 0.03]))
    assert out.days[("s1", "tp")][day_of(3)][0] == pytest.approx(0.03 * 3 / 6 + 0.01 * 3 / 6)
    below = [
        r._replace(below_dl=i < 3) for i, r in enumerate(six("tp", 3, [0.01, 0.01, 0.01, 0.03, 0.03, 0.03]))
    ]
    mean, dl, top, n = daily(below).days[("s1", "tp")][day_of(3)]
    assert mean == pytest.approx(0.0175)
    assert (dl, top, n) == (0.01, None, 6)


def test_over_range_results_stay_out_of_the_mean() -> None:
    """NH3-N 0.3 x5 and one T 2.5: the mean is 0.3, the day keeps 2.5 and counts six results."""
    out = daily(six("nh3n", 3, [0.3, 0.3, 2.5, 0.3, 0.3, 0.3], "NNTNNN"))
    assert out.days[("s1", "nh3n")][day_of(3)] == (near(0.3), 0.0, 2.5, 6)


def test_over_range_alone_makes_a_day() -> None:
    """A saturated analyser all day (six T) is a valid day without a mean, at least 2.5."""
    out = daily(six("nh3n", 3, [2.5] * 6, "TTTTTT"))
    assert out.days[("s1", "nh3n")][day_of(3)] == (None, 0.0, 2.5, 6)


def test_over_range_bound_day_raises_the_daily_value() -> None:
    """With `over_range.bound: day` the daily value itself is raised to the T result."""
    rules = RULES.model_copy(update={"over_range": RULES.over_range.model_copy(update={"bound": "day"})})
    out = daily(six("nh3n", 3, [0.3, 0.3, 2.5, 0.3, 0.3, 0.3], "NNTNNN"), rules)
    assert out.days[("s1", "nh3n")][day_of(3)] == (2.5, 0.0, 2.5, 6)


def test_over_range_do_is_dropped() -> None:
    """T on DO means "at least this much oxygen": cleaner, so it is dropped and raises nothing."""
    out = daily(six("do", 3, [8.0, 8.0, 20.0, 8.0, 20.0, 8.0], "NNTNTN"))
    assert out.days[("s1", "do")][day_of(3)] == (8.0, 0.0, None, 4)
    assert out.excluded_flag == 2


def test_ph_extreme_statistic() -> None:
    """With `ph_statistic: extreme` the day's pH is the result farthest from 7.5 (here 9.4)."""
    rules = RULES.model_copy(update={"ph_statistic": "extreme"})
    values = [7.0, 6.2, 9.4, 7.5, 8.0, 7.1]
    assert daily(six("ph", 3, values), rules).days[("s1", "ph")][day_of(3)][0] == 9.4
    assert daily(six("ph", 3, values)).days[("s1", "ph")][day_of(3)][0] == pytest.approx(sum(values) / 6)


def test_unknown_stations_items_and_window_are_counted() -> None:
    """Results of other stations, of unassessed items and outside the window are counted, not kept."""
    results = [
        make_result("zz", at(3, 0), "nh3n", 0.3),
        make_result("s1", at(3, 0), "cond", 300.0),
        make_result("s1", at(3, 0, month=9), "nh3n", 0.3),
        *six("nh3n", 3, [0.3] * 6),
    ]
    out = daily_values(results, ZONES, STANDARD, RULES, window=[(NOV.start, NOV.end)])
    assert (out.unknown_station, out.unknown_item, out.outside) == (1, 1, 1)
    assert list(out.days) == [("s1", "nh3n")]


def test_parse_value() -> None:
    """`0.01L` is below the detection limit 0.01; other text is a number or an error."""
    assert parse_value("0.01L") == (0.01, True)
    assert parse_value(" 0.52 ") == (0.52, False)
    assert parse_value("-0.02") == (-0.02, False)
    for bad in ("", "L", "nan", "0.01x", "-1L"):
        with pytest.raises(ValueError):  # noqa: PT011 - float() and ours raise plain ValueError
            parse_value(bad)


def test_make_result_refuses_naive_times() -> None:
    """A naive datetime has no day: refused."""
    with pytest.raises(ValueError, match="naive"):
        make_result("s1", datetime(2026, 11, 1), "ph", 7.0)


# --- period statistics -------------------------------------------------------------------------


def month_of(days: dict[int, float], code: str = "nh3n") -> list[Result]:
    """Six equal results on each given day of November."""
    return [r for day, value in days.items() for r in six(code, day, [value] * 6)]


def stats(
    results: Iterable[Result], period: str = "2026-11", today: date | None = None
) -> dict[str, ItemStat]:
    out = period_stats(daily(results), parse_period(period, today), RULES)
    return {code: stat for (_, code), stat in out.items()}


def test_month_is_the_mean_of_valid_days() -> None:
    """20 days at 0.2 and 10 at 0.5: monthly 0.3 from 30 days."""
    days = dict.fromkeys(range(1, 21), 0.2) | dict.fromkeys(range(21, 31), 0.5)
    assert stats(month_of(days)) == {"nh3n": (near(0.3), 0.0, None, 30, 1)}


def test_month_needs_twenty_valid_days() -> None:
    """Twenty valid days make a month; nineteen do not."""
    assert stats(month_of(dict.fromkeys(range(1, 21), 0.2)))["nh3n"].days == 20
    assert stats(month_of(dict.fromkeys(range(1, 20), 0.2))) == {}


def test_month_keeps_the_largest_detection_limit_and_t() -> None:
    """Below-DL limits and T results go up to the month: the largest of each."""
    results = month_of(dict.fromkeys(range(1, 21), 0.2))
    results += [r._replace(below_dl=True) for r in six("nh3n", 21, [0.05] * 6)]
    results += [r._replace(below_dl=True) for r in six("nh3n", 22, [0.02] * 6)]
    results += six("nh3n", 23, [0.2, 0.2, 3.0, 0.2, 0.2, 4.0], "NNTNNT")
    mean, dl, top, days, months = stats(results)["nh3n"]
    assert mean == pytest.approx((20 * 0.2 + 0.025 + 0.01 + 0.2) / 23)
    assert (dl, top, days, months) == (0.05, 4.0, 23, 1)


def test_ytd_cut_month_needs_a_share_of_its_days() -> None:
    """Year to date on 11 March: March has 10 days, needing ceil(20 x 10 / 31) = 7 valid days."""
    jan = [r for d in range(1, 32) for r in six("nh3n", d, [0.2] * 6, month=1)]
    feb = [r for d in range(1, 29) for r in six("nh3n", d, [0.4] * 6, month=2)]
    march = [r for d in range(1, 8) for r in six("nh3n", d, [0.9] * 6, month=3)]
    today = date(2026, 3, 11)
    assert stats(jan + feb + march, "ytd", today)["nh3n"] == (near(0.5), 0.0, None, 66, 3)
    # six March days are too few: the ytd value is the mean of January and February alone
    short = [r for r in march if r.time_ns < make_result("s1", at(7, 0, month=3), "nh3n", 0).time_ns]
    assert stats(jan + feb + short, "ytd", today)["nh3n"] == (near(0.3), 0.0, None, 59, 2)


def test_quarter_is_the_mean_of_valid_months() -> None:
    """Q3 from July 0.2 and August 0.5 (September missing): two valid months suffice, mean 0.35."""
    july = [r for d in range(1, 32) for r in six("nh3n", d, [0.2] * 6, month=7)]
    august = [r for d in range(1, 32) for r in six("nh3n", d, [0.5] * 6, month=8)]
    assert stats(july + august, "2026-Q3")["nh3n"] == (near(0.35), 0.0, None, 62, 2)
    assert stats(july, "2026-Q3") == {}


def test_year_needs_eight_valid_months() -> None:
    """Eight valid months make a year (mean of the monthly means); seven do not."""
    results = [
        r
        for month in range(1, 9)
        for d in range(1, 21)
        for r in six("nh3n", d, [0.1 * month] * 6, month=month)
    ]
    assert stats(results, "2026")["nh3n"].mean == pytest.approx(0.45)
    assert stats(results, "2026")["nh3n"].months == 8
    cut = [r for r in results if r.time_ns < make_result("s1", at(1, 0, month=8), "nh3n", 0).time_ns]
    assert stats(cut, "2026") == {}


def test_a_day_period_is_the_daily_value() -> None:
    """The statistic of the period `2026-11-03` is that day's value (one valid day needed)."""
    results = month_of({3: 0.4, 4: 0.6})
    assert stats(results, "2026-11-03") == {"nh3n": (near(0.4), 0.0, None, 1, 1)}
    assert stats(results, "2026-11-05") == {}


def test_daily_values_of_batches_merge() -> None:
    """A store reader may read month by month: merged batches equal one pass over everything."""
    october = [r for d in range(1, 32) for r in six("nh3n", d, [0.2] * 6, month=10)]
    november = month_of(dict.fromkeys(range(1, 31), 0.4))
    merged = daily(october)
    merged.merge(daily(november))
    assert merged.days == daily(october + november).days


def test_days_are_counted_in_the_station_zone_across_midnight() -> None:
    """Six results from 2026-11-30T16:00Z on fall on 1 December local: not in November."""
    start = datetime(2026, 11, 30, 16, tzinfo=ZoneInfo("UTC"))
    results = [make_result("s1", start + timedelta(hours=4 * i), "cd", 0.002) for i in range(6)]
    assert list(daily(results).days[("s1", "cd")]) == [day_of(1, month=12)]
