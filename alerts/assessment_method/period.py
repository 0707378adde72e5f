"""Assessment periods: a day, a month, a quarter, a year or the year to date, as local days.

`parse_period("2026-11")`, `"2026-Q3"`, `"2026"`, `"ytd"` (which needs `today`: the core never reads
the clock), and `"2026-11-05"` for one day (what the alert engine judges daily compliance on). A
period is the half-open range of local days [start, end) and is split into calendar months
(`months()`): monthly values come from daily values, longer periods from monthly values; a day is
a month cut to one day, so its value is the daily value.

The year to date runs from 1 January to `today`, today excluded (a day is assessed once it has
closed); its last month is usually cut short. It has no previous period (环比 compares months or
quarters); its same period last year is 1 January to the same day a year earlier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

PeriodKind = Literal["day", "month", "quarter", "year", "ytd"]
_DAY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER: Final = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR: Final = re.compile(r"^(\d{4})$")
_QUARTER_ZH: Final = ("一", "二", "三", "四")


class PeriodError(ValueError):
    """A period text that is not one of the accepted forms."""


@dataclass(frozen=True, slots=True)
class Period:
    """Local days [start, end) of one assessment period."""

    kind: PeriodKind
    start: date
    end: date

    @property
    def label(self) -> str:
        """The period as `parse_period` reads it back (ytd as an ISO interval)."""
        if self.kind == "day":
            return self.start.isoformat()
        if self.kind == "month":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        if self.kind == "quarter":
            return f"{self.start.year:04d}-Q{(self.start.month - 1) // 3 + 1}"
        if self.kind == "year":
            return f"{self.start.year:04d}"
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def label_zh(self) -> str:
        """The period as a Chinese report heads it: 2026年11月, 2026年第三季度, 2026年1月1日至11月14日."""
        year = f"{self.start.year}年"
        if self.kind == "day":
            return f"{year}{self.start.month}月{self.start.day}日"
        if self.kind == "month":
            return f"{year}{self.start.month}月"
        if self.kind == "quarter":
            return f"{year}第{_QUARTER_ZH[(self.start.month - 1) // 3]}季度"
        if self.kind == "year":
            return year
        last = self.end - timedelta(days=1)
        return f"{year}1月1日至{last.month}月{last.day}日"

    def months(self) -> list[tuple[date, date]]:
        """The calendar months of the period as [start, end) day ranges, cut to the period."""
        out: list[tuple[date, date]] = []
        cursor = self.start
        while cursor < self.end:
            following = next_month(cursor)
            out.append((cursor, min(following, self.end)))
            cursor = following
        return out

    def previous(self) -> Period | None:
        """The period before (环比): the previous day, month or quarter; none for a year or year to date."""
        if self.kind == "day":
            return Period("day", self.start - timedelta(days=1), self.start)
        if self.kind == "month":
            start = _add_months(self.start, -1)
            return Period("month", start, self.start)
        if self.kind == "quarter":
            return Period("quarter", _add_months(self.start, -3), self.start)
        return None

    def last_year(self) -> Period:
        """The same period a year earlier (同比)."""
        return Period(self.kind, _year_earlier(self.start), _year_earlier(self.end))


def parse_period(text: str, today: date | None = None) -> Period:
    """A period from `YYYY-MM-DD`, `YYYY-MM`, `YYYY-Qn`, `YYYY` or `ytd` (with `today`); else PeriodError."""
    text = text.strip()
    if text.lower() == "ytd":
        if today is None:
            raise PeriodError("ytd needs today's date")
        start = date(today.year, 1, 1)
        if today == start:
            raise PeriodError("the year to date is empty on 1 January")
        return Period("ytd", start, today)
    if _DAY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise PeriodError(f"{text!r}: {exc}") from exc
        return Period("day", day, day + timedelta(days=1))
    if match := _MONTH.match(text):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"{text!r}: month must be 01..12")
        start = date(year, month, 1)
        return Period("month", start, next_month(start))
    if match := _QUARTER.match(text):
        start = date(int(match[1]), 3 * int(match[2]) - 2, 1)
        return Period("quarter", start, _add_months(start, 3))
    if match := _YEAR.match(text):
        year = int(match[1])
        return Period("year", date(year, 1, 1), date(year + 1, 1, 1))
    raise PeriodError(f"{text!r} is not a period: use 2026-11, 2026-Q3, 2026, ytd or 2026-11-05")


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return _add_months(day.replace(day=1), 1)


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
