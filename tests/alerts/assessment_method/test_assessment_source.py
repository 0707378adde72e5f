"""How a report's reads are cut: month chunks in UTC ns, merged windows, missing days, stored rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from alerts.assessment_method.daily import DailyValues
from alerts.assessment_method.period import parse_period
from alerts.assessment_method.report import report_windows
from alerts.assessment_method.source import ResultsRequest, merge_windows, missing_ranges
from alerts.assessment_method.stored import day_rows, from_rows
from config.times import to_ns

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")  # UTC+6: its local midnight is two hours after Shanghai's


def _ns(year: int, month: int, day: int, zone: ZoneInfo = SHANGHAI) -> int:
    return to_ns(datetime(year, month, day, tzinfo=zone))


def test_a_month_report_reads_three_month_chunks_in_local_days() -> None:
    """2026-11 needs October (环比) and November 2025 (同比): two ranges, three chunks, Shanghai midnights."""
    request = ResultsRequest(tuple(report_windows(parse_period("2026-11"))), {"s1": SHANGHAI}, ("nh3n",))
    chunks = request.chunks()
    assert [c.label for c in chunks] == ["2025-11", "2026-10", "2026-11"]
    assert (chunks[1].start_ns, chunks[1].end_ns) == (_ns(2026, 10, 1), _ns(2026, 11, 1))
    assert chunks[1].end_ns == chunks[2].start_ns  # contiguous: nothing read twice
    assert chunks[2].end_ns == _ns(2026, 12, 1)
    assert request.days() == 30 + 31 + 30


def test_chunks_cover_every_zone_and_never_overlap() -> None:
    """With stations in two zones the outer bounds cover both; inner cuts are one instant each."""
    request = ResultsRequest(((date(2026, 10, 31), date(2026, 11, 2)),), {"a": SHANGHAI, "b": URUMQI}, ())
    first, second = request.chunks()
    assert first.start_ns == _ns(2026, 10, 31)  # Shanghai's midnight comes first
    assert first.end_ns == second.start_ns == _ns(2026, 11, 1)  # the first zone's cut
    assert second.end_ns == _ns(2026, 11, 2, zone=URUMQI)  # Urumqi's midnight comes last
    assert (first.label, second.label) == ("2026-10-31", "2026-11-01")
    assert request.station_ids == ("a", "b")


def test_merge_and_missing_ranges() -> None:
    """Touching ranges merge, empty ones go; the days of a window not present come back as ranges."""
    assert merge_windows(
        [(date(2026, 11, 1), date(2026, 12, 1)), (date(2026, 10, 1), date(2026, 11, 1)), (date(2026, 1, 5), date(2026, 1, 5))]
    ) == [(date(2026, 10, 1), date(2026, 12, 1))]  # fmt: skip
    present = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 6)]
    assert missing_ranges((date(2026, 11, 1), date(2026, 11, 8)), present) == [
        (date(2026, 11, 1), date(2026, 11, 2)),
        (date(2026, 11, 4), date(2026, 11, 6)),
        (date(2026, 11, 7), date(2026, 11, 8)),
    ]


def test_daily_values_round_trip_through_rows() -> None:
    """Daily values become rows per day and come back the same, with the days they cover."""
    day = date(2026, 11, 5).toordinal()
    daily = DailyValues(
        days={("s1", "nh3n"): {day: (0.3, 0.0, None, 6)}, ("s1", "tp"): {day: (None, 0.01, 2.5, 4)}}
    )
    rows = day_rows(daily)
    assert rows == {date(2026, 11, 5): [("s1", "nh3n", 0.3, 0.0, None, 6), ("s1", "tp", None, 0.01, 2.5, 4)]}
    back, present = from_rows(("2026-11-05", row) for row in rows[date(2026, 11, 5)])
    assert back.days == daily.days
    assert present == {date(2026, 11, 5)}


def test_utc_bounds_of_a_utc_request() -> None:
    """A request without stations is cut at UTC midnights."""
    [chunk] = ResultsRequest(((date(2026, 11, 5), date(2026, 11, 6)),), {}, ()).chunks()
    assert chunk.start_ns == to_ns(datetime(2026, 11, 5, tzinfo=UTC))
