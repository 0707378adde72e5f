"""Period statistics of each (station, item) from its daily values.

- A day's statistic is its daily value (a month cut to one day needs one valid day).
- A month's statistic is the mean of its valid daily values; the month is valid with at least
  `min_days_per_month` valid days (per item, see `validity.overrides`). A month cut short by the
  period (the year to date's last month) needs the same share of its days, rounded up.
- A quarter, a year or the year to date: the mean of its valid monthly values; valid with at least
  `min_months_per_quarter` / `min_months_per_year` valid months (the year to date: the same share
  of its months, rounded up).
- The largest detection limit of the below-DL results that entered, and the largest T result, go
  up with the means (values.py applies the "<DL" and the over-range rules to the final statistic).

Days that held only T results are valid days without a mean: with `over_range.bound: period` they
count for validity and their T value raises the period value, not the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import NamedTuple

from alerts.assessment_method.daily import DailyValues, DayValue, Series
from alerts.assessment_method.period import Period
from alerts.assessment_method.rules import AssessmentRules


class ItemStat(NamedTuple):
    """The statistic of one item over a period, before the period rules and rounding."""

    mean: float | None  # mean of the valid values, T excluded; None when only T results counted
    dl: float  # largest detection limit among the below-DL results that entered; 0.0 when none
    t_max: float | None  # largest over-range (T) result; None when none
    days: int  # valid days
    months: int  # valid months


def period_stats(daily: DailyValues, period: Period, rules: AssessmentRules) -> dict[Series, ItemStat]:
    """Every (station, item) with a valid statistic over `period`."""
    segments = [(a.toordinal(), b.toordinal(), _month_length(a)) for a, b in period.months()]
    out: dict[Series, ItemStat] = {}
    for key, days in daily.days.items():
        per_month = rules.validity.per_month(key[1])
        months = []
        for lo, hi, length in segments:
            need = per_month if hi - lo == length else math.ceil(per_month * (hi - lo) / length)
            stat = _month(days, lo, hi, min(need, hi - lo))
            if stat is not None:
                months.append(stat)
        if period.kind in ("day", "month"):
            if months:
                out[key] = months[0]
            continue
        if len(months) >= _months_needed(period, len(segments), rules):
            out[key] = _combine(months)
    return out


def _month(days: Mapping[int, DayValue], lo: int, hi: int, need: int) -> ItemStat | None:
    if len(days) < need:
        return None
    found = [value for value in map(days.get, range(lo, hi)) if value is not None]
    if len(found) < need or not found:
        return None
    means = [value[0] for value in found if value[0] is not None]
    tops = [value[2] for value in found if value[2] is not None]
    return ItemStat(
        math.fsum(means) / len(means) if means else None,
        max(value[1] for value in found),
        max(tops) if tops else None,
        len(found),
        1,
    )


def _combine(months: list[ItemStat]) -> ItemStat:
    means = [m.mean for m in months if m.mean is not None]
    tops = [m.t_max for m in months if m.t_max is not None]
    return ItemStat(
        math.fsum(means) / len(means) if means else None,
        max(m.dl for m in months),
        max(tops) if tops else None,
        sum(m.days for m in months),
        len(months),
    )


def _months_needed(period: Period, segments: int, rules: AssessmentRules) -> int:
    if period.kind == "quarter":
        return rules.validity.min_months_per_quarter
    if period.kind == "year":
        return rules.validity.min_months_per_year
    return min(segments, math.ceil(rules.validity.min_months_per_year * segments / 12))


def _month_length(first: date) -> int:
    start = first.replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return (following - start).days
