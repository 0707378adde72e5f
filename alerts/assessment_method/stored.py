"""Daily values kept between runs: to and from rows, and a period's days completed from a store.

The daemon's daily assessment stores each closed day's daily values (`DayValue` per station and
item: mean, largest detection limit, largest T result, results counted) in the alert database;
the assessment API makes any period from them: month, quarter, year or year to date, against the
previous period and last year. A day the database lacks (before the daemon ran, not yet assessed,
past the retention) is read from the readings store instead, when there is one, through the same
reader as `ecowatch report` (`ResultsSource`); a day that has not closed (`today` and later) is
never read. A day counts as stored when any station has a value of it.

    rows = day_rows(daily)                                      # per local day, for storage
    daily, present = from_rows(stored_rows)                      # back, with the days present
    fill = complete(daily, present, windows, today=today, source=source, zones=zones, ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo

from alerts.assessment_method.daily import DailyValues, daily_values
from alerts.assessment_method.rules import AssessmentRules
from alerts.assessment_method.source import ResultsRequest, ResultsSource, SourceError, missing_ranges
from config.standards import Standard

# (station_id, item, mean, dl, t_max, results): one stored daily value.
DayRow = tuple[str, str, float | None, float, float | None, int]


@dataclass(slots=True)
class Completion:
    """How a period's days were found: stored, read from the store, or not at all."""

    stored_days: int = 0
    read_days: int = 0
    missing_days: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "stored_days": self.stored_days,
            "read_days": self.read_days,
            "missing_days": self.missing_days,
            "problems": list(self.problems),
        }


def day_rows(daily: DailyValues) -> dict[date, list[DayRow]]:
    """The daily values as rows, per local day."""
    out: dict[date, list[DayRow]] = {}
    for (station_id, item), days in daily.days.items():
        for ordinal, (mean, dl, t_max, n) in days.items():
            out.setdefault(date.fromordinal(ordinal), []).append((station_id, item, mean, dl, t_max, n))
    return out


def from_rows(rows: Iterable[tuple[str, DayRow]]) -> tuple[DailyValues, set[date]]:
    """Stored rows (ISO day, row) back into daily values, and the days that had any."""
    out = DailyValues()
    present: dict[str, int] = {}
    for day, (station_id, item, mean, dl, t_max, n) in rows:
        ordinal = present.get(day)
        if ordinal is None:
            ordinal = present[day] = date.fromisoformat(day).toordinal()
        out.days.setdefault((station_id, item), {})[ordinal] = (mean, dl, t_max, n)
    return out, {date.fromordinal(o) for o in present.values()}


def complete(
    daily: DailyValues,
    present: set[date],
    windows: Sequence[tuple[date, date]],
    *,
    today: date,
    source: ResultsSource | None,
    zones: Mapping[str, tzinfo],
    standard: Standard,
    rules: AssessmentRules,
) -> Completion:
    """Add to `daily` the closed days of `windows` not in `present`, read from `source`."""
    closed = [(start, min(end, today)) for start, end in windows if start < min(end, today)]
    wanted = {w: [d for d in present if w[0] <= d < w[1]] for w in closed}
    gaps = [gap for window, have in wanted.items() for gap in missing_ranges(window, have)]
    fill = Completion(stored_days=sum(len(have) for have in wanted.values()))
    gap_days = sum((b - a).days for a, b in gaps)
    if not gaps:
        return fill
    if source is None:
        fill.missing_days = gap_days
        return fill
    request = ResultsRequest(tuple(gaps), zones, tuple(rules.decimals), progress=False)
    try:
        read = daily_values(source.results(request), zones, standard, rules, gaps)
    except SourceError as exc:
        fill.missing_days = gap_days
        fill.problems.append(str(exc))
        return fill
    daily.merge(read)
    fill.read_days = gap_days
    fill.problems.extend(source.notes)
    return fill
