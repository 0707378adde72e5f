"""Results in, daily values out: the hot loop of the assessment.

A result is a plain tuple, `(station_id, time_ns, parameter, value, flag, below_dl)` (`Result` names
the fields; any 6-tuple will do, so a store reader can yield tuples straight from its rows).
`below_dl` marks a result below the detection limit, `value` then being the limit (`0.01L`).

Each station's results are grouped by its local day (the registry's `timezone`, else the rules'
`default_timezone`) and by item, then each day is reduced to its daily value:

- Valid results (flag in `valid_flags`, N by default) enter the mean; a below-DL result enters it as
  `mean_factor` times its detection limit (half), and the day keeps the largest such limit.
- T results (over the analyser's range, "at least this much") never enter a mean. For items where a
  higher value is dirtier (all but `over_range.not_raised`: DO, transparency) they count as results
  for the day's validity and the day keeps the largest; with `over_range.bound: day` the daily
  value is raised to it (a day of T results alone has it as its value), with `period` the raise
  happens on every period value (statistics.py). For DO and transparency they are dropped.
- Any other flag (F, M, S, D, C, B) is dropped: the data are missing, not clean.
- A day with fewer than `min_results_per_day` counted results (per item, see `validity.overrides`)
  has no value.
- pH takes the mean, or with `ph_statistic: extreme` the result farthest from the middle of the
  standard's range.

Speed: per result, four dict lookups (station, local day by time from a per-zone cache, item, the
day's list of values) and an append; rare cases (below DL, T) go to a side table. Duplicate
results (same station, item and time) are not detected: the stores keep one point per series and
time.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Final, NamedTuple

from alerts.assessment_method.rules import OVER_RANGE_FLAG, AssessmentRules
from config.standards import Standard
from config.times import NS_PER_SECOND, to_ns

QUARTER_HOUR_NS: Final = 900 * NS_PER_SECOND
# (mean of the counted values or None when only T results counted, largest detection limit of its
# below-DL results or 0.0, largest T result or None, results counted)
DayValue = tuple[float | None, float, float | None, int]
Series = tuple[str, str]  # (station_id, item code)
# Per station: its zone's day cache, and per item the counted values of each local day.
_StationState = tuple["_DayCache", dict[str, dict[int, list[float]]]]
# Distinct times a day cache keeps before it starts again.
_TIME_CACHE: Final = 100_000


class Result(NamedTuple):
    """One result as the assessment reads it."""

    station_id: str
    time_ns: int
    parameter: str
    value: float
    flag: str = "N"
    below_dl: bool = False


def make_result(
    station_id: str,
    time: datetime | int,
    parameter: str,
    value: float,
    *,
    flag: str = "N",
    below_dl: bool = False,
) -> Result:
    """A `Result` from an aware datetime or ns since the epoch."""
    if isinstance(time, datetime):
        if time.tzinfo is None:
            raise ValueError(f"{station_id} {parameter}: naive time {time.isoformat()}")
        time = to_ns(time)
    return Result(station_id, time, parameter, value, flag, below_dl)


def parse_value(text: str) -> tuple[float, bool]:
    """`"0.52"` -> (0.52, False); `"0.01L"` (below the detection limit 0.01) -> (0.01, True)."""
    text = text.strip()
    below = text[-1:] in ("L", "l")
    number = float(text[:-1] if below else text)
    if not math.isfinite(number) or (below and number <= 0):
        raise ValueError(f"{text!r} is not a finite value")
    return number, below


@dataclass(slots=True)
class DailyValues:
    """Valid daily values per (station, item) and local day ordinal, and what was left out."""

    days: dict[Series, dict[int, DayValue]] = field(default_factory=dict)
    unknown_station: int = 0
    unknown_item: int = 0
    outside: int = 0
    excluded_flag: int = 0
    short_days: int = 0

    def merge(self, other: DailyValues) -> None:
        """Add another batch's days: batches must hold whole local days (e.g. a month each)."""
        for key, days in other.days.items():
            self.days.setdefault(key, {}).update(days)
        self.unknown_station += other.unknown_station
        self.unknown_item += other.unknown_item
        self.outside += other.outside
        self.excluded_flag += other.excluded_flag
        self.short_days += other.short_days


def daily_values(
    results: Iterable[tuple[str, int, str, float, str, bool]],
    zones: Mapping[str, tzinfo],
    standard: Standard,
    rules: AssessmentRules,
    window: Sequence[tuple[date, date]] | None = None,
) -> DailyValues:
    """Daily values of the stations in `zones` (station id -> zone) from `results`.

    `window`: local day ranges [start, end) to keep (the periods a report needs); None keeps all.
    Items without a reporting precision in the rules are not assessed and are counted as unknown.
    The garbage collector is paused while the values are gathered (restored after, even on error).
    """
    spans = None if window is None else [(a.toordinal(), b.toordinal()) for a, b in window]
    caches: dict[tzinfo, _DayCache] = {}
    stations: dict[str, _StationState] = {}
    for sid, zone in zones.items():
        cache = caches.get(zone)
        if cache is None:
            cache = caches[zone] = _DayCache(zone, spans)
        stations[sid] = (cache, {code: {} for code in rules.decimals})
    # (station, item) -> day -> [largest DL, T results, largest T]: rare, kept out of the hot path.
    rare: dict[Series, dict[int, list[float]]] = {}
    out = DailyValues()
    collecting = gc.isenabled()
    # A million small lists without cycles: the collector's passes over them cost a third of the time.
    gc.disable()
    try:
        _accumulate(results, stations, rare, rules, out)
        _finish(out, stations, rare, standard, rules)
    finally:
        if collecting:
            gc.enable()
    return out


def _accumulate(
    results: Iterable[tuple[str, int, str, float, str, bool]],
    stations: Mapping[str, _StationState],
    rare: dict[Series, dict[int, list[float]]],
    rules: AssessmentRules,
    out: DailyValues,
) -> None:
    """The hot loop: each result's value into its station's, item's and local day's list."""
    valid = frozenset(rules.valid_flags)
    factor = rules.below_detection.mean_factor
    raised = frozenset(rules.decimals) - frozenset(rules.over_range.not_raised)
    unknown_station = unknown_item = outside = excluded = 0
    for sid, t, code, number, flag, below in results:
        entry = stations.get(sid)
        if entry is None:
            unknown_station += 1
            continue
        cache, series = entry
        day = cache[t]
        if day < 0:
            outside += 1
            continue
        cells = series.get(code)
        if cells is None:
            unknown_item += 1
        elif flag in valid and not below:
            cell = cells.get(day)
            if cell is None:
                cells[day] = [number]
            else:
                cell.append(number)
        elif flag in valid:
            extra = _extra(rare, sid, code, day)
            extra[0] = max(extra[0], number)
            cells.setdefault(day, []).append(number * factor)
        elif flag == OVER_RANGE_FLAG and code in raised:
            extra = _extra(rare, sid, code, day)
            extra[1] += 1
            extra[2] = max(extra[2], number)
        else:
            excluded += 1
    out.unknown_station, out.unknown_item = unknown_station, unknown_item
    out.outside, out.excluded_flag = outside, excluded


class _DayCache(dict[int, int]):
    """Local day ordinal (-1: outside the window) by time in ns, for one zone; fills itself on a miss.

    Results share their times (every station reports at 00:00, 04:00 ...), so the cache stays small;
    misses go through a second cache by UTC quarter hour (every zone in use today changes its offset
    on a quarter hour), and the first is emptied when it grows past a bound (times all distinct).
    """

    def __init__(self, zone: tzinfo, spans: list[tuple[int, int]] | None) -> None:
        super().__init__()
        self.zone = zone
        self.spans = spans
        self.quarters: dict[int, int] = {}

    def __missing__(self, time_ns: int) -> int:
        if len(self) >= _TIME_CACHE:
            self.clear()
        quarter = time_ns // QUARTER_HOUR_NS
        day = self.quarters.get(quarter)
        if day is None:
            day = self.quarters[quarter] = _local_day(quarter, self.zone, self.spans)
        self[time_ns] = day
        return day


def _finish(
    out: DailyValues,
    stations: Mapping[str, _StationState],
    rare: Mapping[Series, dict[int, list[float]]],
    standard: Standard,
    rules: AssessmentRules,
) -> None:
    fsum = math.fsum
    bound_day = rules.over_range.bound == "day"
    for sid, (_, series) in stations.items():
        for code, cells in series.items():
            extras = rare.get((sid, code))
            if not cells and extras is None:
                continue
            need = rules.validity.per_day(code)
            middle = _ph_middle(standard, rules, code)
            days: dict[int, DayValue] = {}
            if extras is None and middle is None:  # the common case, inlined
                for day, values in cells.items():
                    n = len(values)
                    if n >= need:
                        days[day] = (fsum(values) / n, 0.0, None, n)
                    else:
                        out.short_days += 1
            else:
                for day in cells.keys() | (extras or {}).keys():
                    reduced = _day_value(cells.get(day, []), (extras or {}).get(day), need, bound_day, middle)
                    if reduced is None:
                        out.short_days += 1
                    else:
                        days[day] = reduced
            if days:
                out.days[(sid, code)] = days


def _day_value(
    values: list[float], extra: list[float] | None, need: int, bound_day: bool, middle: float | None
) -> DayValue | None:
    dl, t_count, t_max = extra if extra is not None else (0.0, 0, -math.inf)
    n = len(values) + int(t_count)
    if n < need:
        return None
    mean: float | None = None
    if values:
        mean = (
            math.fsum(values) / len(values) if middle is None else max(values, key=lambda v: abs(v - middle))
        )
    top = t_max if t_count else None
    if bound_day and top is not None and (mean is None or top > mean):
        mean = top
    return (mean, dl, top, n)


def _extra(rare: dict[Series, dict[int, list[float]]], sid: str, code: str, day: int) -> list[float]:
    per_day = rare.setdefault((sid, code), {})
    extra = per_day.get(day)
    if extra is None:
        extra = per_day[day] = [0.0, 0, -math.inf]
    return extra


def _ph_middle(standard: Standard, rules: AssessmentRules, code: str) -> float | None:
    if rules.ph_statistic != "extreme":
        return None
    item = standard.items.get(code)
    if item is None or item.kind != "range" or item.low is None or item.high is None:
        return None
    return (item.low + item.high) / 2


def _local_day(quarter: int, zone: tzinfo, spans: list[tuple[int, int]] | None) -> int:
    """Local day ordinal of a UTC quarter hour, or -1 when it lies outside every span."""
    ordinal = datetime.fromtimestamp(quarter * 900, zone).toordinal()
    if spans is not None and not any(lo <= ordinal < hi for lo, hi in spans):
        return -1
    return ordinal
