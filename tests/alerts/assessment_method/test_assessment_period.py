"""Assessment periods: parsing, calendar months, the previous period and the same period last year."""

from __future__ import annotations

from datetime import date

import pytest

from alerts.assessment_method.period import Period, PeriodError, parse_period


def test_month() -> None:
    """`2026-11` is November, previous October, last year November 2025."""
    period = parse_period("2026-11")
    assert (period.kind, period.start, period.end) == ("month", date(2026, 11, 1), date(2026, 12, 1))
    assert period.label == "2026-11"
    assert period.label_zh == "2026年11月"
    assert period.previous() == Period("month", date(2026, 10, 1), date(2026, 11, 1))
    assert period.last_year() == Period("month", date(2025, 11, 1), date(2025, 12, 1))
    assert parse_period("2026-01").previous() == Period("month", date(2025, 12, 1), date(2026, 1, 1))


def test_quarter() -> None:
    """`2026-Q3` is July to September, split into its three months; previous is Q2."""
    period = parse_period("2026-Q3")
    assert (period.start, period.end) == (date(2026, 7, 1), date(2026, 10, 1))
    assert period.label_zh == "2026年第三季度"
    assert period.months() == [
        (date(2026, 7, 1), date(2026, 8, 1)),
        (date(2026, 8, 1), date(2026, 9, 1)),
        (date(2026, 9, 1), date(2026, 10, 1)),
    ]
    assert period.previous() == parse_period("2026-Q2")
    assert parse_period("2026-q1").previous() == parse_period("2025-Q4")


def test_year_has_no_previous_period() -> None:
    """`2026` is the calendar year, twelve months; 环比 does not apply, 同比 is 2025."""
    period = parse_period("2026")
    assert len(period.months()) == 12
    assert period.previous() is None
    assert period.last_year() == parse_period("2025")


def test_ytd_needs_today_and_excludes_it() -> None:
    """`ytd` runs from 1 January to today, excluded; its last month is cut short."""
    with pytest.raises(PeriodError, match="needs today"):
        parse_period("ytd")
    period = parse_period("ytd", today=date(2026, 3, 15))
    assert (period.start, period.end) == (date(2026, 1, 1), date(2026, 3, 15))
    assert period.months()[-1] == (date(2026, 3, 1), date(2026, 3, 15))
    assert period.label_zh == "2026年1月1日至3月14日"
    assert period.previous() is None
    assert period.last_year() == Period("ytd", date(2025, 1, 1), date(2025, 3, 15))
    leap = parse_period("ytd", today=date(2028, 2, 29))
    assert leap.last_year().end == date(2027, 2, 28)
    with pytest.raises(PeriodError, match="empty"):
        parse_period("ytd", today=date(2026, 1, 1))


def test_day() -> None:
    """`2026-11-05` is one local day; previous the 4th, last year 2025-11-05."""
    period = parse_period("2026-11-05")
    assert (period.kind, period.start, period.end) == ("day", date(2026, 11, 5), date(2026, 11, 6))
    assert (period.label, period.label_zh) == ("2026-11-05", "2026年11月5日")
    assert period.months() == [(date(2026, 11, 5), date(2026, 11, 6))]
    assert period.previous() == parse_period("2026-11-04")
    assert period.last_year() == parse_period("2025-11-05")


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "26-11", "last month", "", "2026-02-30"])
def test_bad_periods_are_refused(text: str) -> None:
    """Anything but the four forms is an error that names the accepted forms."""
    with pytest.raises(PeriodError):
        parse_period(text, today=date(2026, 5, 1))
