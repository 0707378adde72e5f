"""The alert engine's provisional period values (`alerts.station_values`), one station at a time.

Local days and months in the station's zone (Asia/Shanghai without DST, Europe/Berlin with it),
the running mean with the below-DL half rule, T raising the period value, runs of missing data,
duplicate and late readings left out, and the JSON round trip the engine stores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import orjson
import pytest

from alerts.station_values import Basis, ItemValues, StationValues, period_bounds
from config.times import from_ns, to_ns
from ingest.model import DataFlag

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
BERLIN: Final = ZoneInfo("Europe/Berlin")
# 08:00 in Shanghai: its local day runs from 16:00 UTC the day before to 16:00 UTC.
T0: Final = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
N: Final = DataFlag.NORMAL
T: Final = DataFlag.OVER_RANGE


def _ns(at: datetime) -> int:
    return to_ns(at)


def _values(zone: ZoneInfo = SHANGHAI, basis: Basis = "daily") -> StationValues:
    return StationValues("st-1", zone, basis)


def _add(
    values: StationValues,
    at: datetime,
    value: float,
    *,
    code: str = "nh3n",
    flag: DataFlag = N,
    below_dl: bool = False,
) -> bool:
    return values.add(code, _ns(at), value, flag, below_dl)


def _bounds(at: datetime, zone: ZoneInfo, basis: Basis = "daily") -> tuple[datetime, datetime]:
    start, end = period_bounds(_ns(at), zone, basis)
    return from_ns(start), from_ns(end)


# --- period bounds --------------------------------------------------------------------------------
def test_daily_bounds_are_the_local_day_in_shanghai() -> None:
    """08:00 Shanghai on 1 July lies in [30 June 16:00 UTC, 1 July 16:00 UTC): the local day, not UTC's."""
    assert _bounds(T0, SHANGHAI) == (
        datetime(2026, 6, 30, 16, tzinfo=UTC),
        datetime(2026, 7, 1, 16, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("at", "day_start"),
    [
        (datetime(2026, 7, 1, 15, 59, 59, tzinfo=UTC), datetime(2026, 6, 30, 16, tzinfo=UTC)),
        (datetime(2026, 7, 1, 16, 0, 0, tzinfo=UTC), datetime(2026, 7, 1, 16, tzinfo=UTC)),
    ],
)
def test_local_midnight_belongs_to_the_new_day(at: datetime, day_start: datetime) -> None:
    """A second before local midnight is the old day; midnight itself starts the next one."""
    start, end = _bounds(at, SHANGHAI)
    assert (start, end - start) == (day_start, timedelta(days=1))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 15 July, Shanghai: 1 July 00:00 local to 1 August 00:00 local.
        (
            datetime(2026, 7, 15, 3, tzinfo=UTC),
            (datetime(2026, 6, 30, 16, tzinfo=UTC), datetime(2026, 7, 31, 16, tzinfo=UTC)),
        ),
        # 31 July 17:00 UTC is already 1 August in Shanghai.
        (
            datetime(2026, 7, 31, 17, tzinfo=UTC),
            (datetime(2026, 7, 31, 16, tzinfo=UTC), datetime(2026, 8, 31, 16, tzinfo=UTC)),
        ),
        # December runs into the next year.
        (
            datetime(2026, 12, 10, tzinfo=UTC),
            (datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC)),
        ),
    ],
)
def test_monthly_bounds_are_the_local_month(at: datetime, expected: tuple[datetime, datetime]) -> None:
    """With basis monthly the period is the local calendar month, across a year's end too."""
    assert _bounds(at, SHANGHAI, "monthly") == expected


@pytest.mark.parametrize(
    ("at", "start", "length"),
    [
        # 29 March 2026: clocks go forward at 02:00 (CET +1 -> CEST +2): a 23-hour day.
        (datetime(2026, 3, 29, 12, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC), timedelta(hours=23)),
        # 25 October 2026: clocks go back at 03:00 (CEST +2 -> CET +1): a 25-hour day.
        (datetime(2026, 10, 25, 12, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC), timedelta(hours=25)),
        # An ordinary summer day: 24 hours from 22:00 UTC.
        (datetime(2026, 7, 1, 12, tzinfo=UTC), datetime(2026, 6, 30, 22, tzinfo=UTC), timedelta(hours=24)),
    ],
)
def test_berlin_days_follow_daylight_saving(at: datetime, start: datetime, length: timedelta) -> None:
    """In a zone with DST the local day is 23 or 25 hours long on the change days, from local midnight."""
    begins, ends = _bounds(at, BERLIN)
    assert (begins, ends - begins) == (start, length)


def test_berlin_month_of_the_spring_change_is_an_hour_short() -> None:
    """March 2026 in Berlin starts at 23:00 UTC (CET) and ends at 22:00 UTC (CEST)."""
    assert _bounds(datetime(2026, 3, 15, tzinfo=UTC), BERLIN, "monthly") == (
        datetime(2026, 2, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 31, 22, tzinfo=UTC),
    )


def test_a_berlin_reading_after_midnight_cest_starts_the_next_day() -> None:
    """22:30 UTC on the spring change day is 00:30 CEST on 30 March: a new day, the mean starts again.

    (At the winter offset it would still be 23:30 on the 29th.)"""
    values = _values(BERLIN)
    _add(values, datetime(2026, 3, 29, 20, tzinfo=UTC), 0.9)
    _add(values, datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 0.3)
    item = values.items["nh3n"]
    assert (item.count, item.period_value()) == (1, 0.3)
    assert item.period_start_ns == _ns(datetime(2026, 3, 29, 22, tzinfo=UTC))


# --- the running mean -----------------------------------------------------------------------------
def test_the_mean_runs_over_the_local_day_and_a_new_day_resets_it() -> None:
    """0.3 and 0.9 in one Shanghai day average 0.6; the first reading after local midnight starts afresh."""
    values = _values()
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(hours=4), 0.9)
    item = values.items["nh3n"]
    assert item.count == 2
    assert item.period_value() == pytest.approx(0.6)
    next_day = datetime(2026, 7, 1, 16, tzinfo=UTC)  # 00:00 on 2 July in Shanghai
    _add(values, next_day, 0.2)
    assert (item.count, item.period_value()) == (1, 0.2)
    assert set(values.current(_ns(next_day))) == {"nh3n"}
    assert values.current(_ns(T0)) == {}  # the previous day's value is gone


def test_items_keep_their_own_periods() -> None:
    """An item not yet reported today keeps yesterday's value, which `current` leaves out today."""
    values = _values()
    _add(values, T0, 0.3, code="nh3n")
    _add(values, T0, 3.0, code="codmn")
    next_day = datetime(2026, 7, 1, 16, tzinfo=UTC)
    _add(values, next_day, 0.4, code="nh3n")
    assert set(values.current(_ns(next_day))) == {"nh3n"}
    assert values.items["codmn"].period_value() == 3.0
    assert values.current(_ns(T0 + timedelta(hours=1))).keys() == {"codmn"}


def test_monthly_basis_averages_across_days() -> None:
    """With basis monthly a new local day does not reset the mean; a new month does."""
    values = _values(basis="monthly")
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(days=3), 0.9)
    assert values.items["nh3n"].period_value() == pytest.approx(0.6)
    _add(values, datetime(2026, 7, 31, 17, tzinfo=UTC), 0.1)  # 1 August in Shanghai
    assert (values.items["nh3n"].count, values.items["nh3n"].period_value()) == (1, 0.1)


def test_below_dl_results_enter_the_mean_at_half_their_limit() -> None:
    """<0.4 counts as 0.2: with 0.7 the mean is 0.45, and the largest detection limit is kept."""
    values = _values()
    _add(values, T0, 0.4, below_dl=True)
    _add(values, T0 + timedelta(hours=1), 0.7)
    _add(values, T0 + timedelta(hours=2), 0.1, below_dl=True)
    item = values.items["nh3n"]
    assert item.count == 3
    assert item.period_value() == pytest.approx((0.2 + 0.7 + 0.05) / 3)
    assert item.dl == 0.4


def test_the_below_dl_factor_is_the_stations_setting() -> None:
    """`dl_factor` replaces the half: with 1.0 a below-DL result counts at its full limit."""
    values = StationValues("st-1", SHANGHAI, "daily", dl_factor=1.0)
    _add(values, T0, 0.4, below_dl=True)
    assert values.items["nh3n"].period_value() == 0.4


def test_a_below_dl_result_is_a_valid_one() -> None:
    """A below-DL result is a measurement: it ends a run of missing data like any N result."""
    values = _values()
    _add(values, T0, 0.0, flag=DataFlag.FAULT)
    _add(values, T0 + timedelta(hours=1), 0.02, below_dl=True)
    assert values.items["nh3n"].problem_flag is None
    assert values.items["nh3n"].problem_since_ns is None


# --- T: over the analyser's range -----------------------------------------------------------------
def test_t_raises_the_period_value_but_stays_out_of_the_mean() -> None:
    """N 0.3 then T 2.0: the period value is 2.0 (at least that much), the mean still of N results only."""
    values = _values()
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(hours=1), 2.0, flag=T)
    item = values.items["nh3n"]
    assert (item.count, item.total, item.t_max, item.period_value()) == (1, 0.3, 2.0, 2.0)
    _add(values, T0 + timedelta(hours=2), 0.5)
    assert (item.count, item.period_value()) == (2, 2.0)  # the largest T still bounds it


def test_a_t_below_the_mean_does_not_lower_it() -> None:
    """A lower bound under the mean says nothing new: the period value stays the mean."""
    values = _values()
    _add(values, T0, 3.0)
    _add(values, T0 + timedelta(hours=1), 1.0, flag=T)
    assert values.items["nh3n"].period_value() == 3.0


def test_a_period_of_t_results_alone_has_the_largest_as_its_value() -> None:
    """Without any N result the value is the largest T; it resets with the period."""
    values = _values()
    _add(values, T0, 2.0, flag=T)
    _add(values, T0 + timedelta(hours=1), 5.0, flag=T)
    _add(values, T0 + timedelta(hours=2), 3.0, flag=T)
    item = values.items["nh3n"]
    assert (item.count, item.period_value()) == (0, 5.0)
    _add(values, datetime(2026, 7, 1, 16, tzinfo=UTC), 0.3)
    assert (item.t_max, item.period_value()) == (None, 0.3)


def test_t_on_an_item_where_higher_is_cleaner_raises_nothing() -> None:
    """DO is `not_raised`: T at 20 mg/L ("at least 20") says nothing bad, so it neither raises the
    period value nor stands alone as one; it still ends a run of missing data and is the instant.
    NH3-N at the same station is still raised by its T."""
    values = StationValues("st-1", SHANGHAI, "daily", not_raised=frozenset({"do", "sd"}))
    _add(values, T0, 4.0, code="do")
    _add(values, T0 + timedelta(hours=1), 0.0, code="do", flag=DataFlag.FAULT)
    _add(values, T0 + timedelta(hours=2), 20.0, code="do", flag=T)
    item = values.items["do"]
    assert (item.count, item.t_max, item.period_value()) == (1, None, 4.0)
    assert (item.problem_flag, item.problem_since_ns) == (None, None)
    assert (item.instant, item.instant_flag) == (20.0, "T")
    _add(values, T0, 5.0, code="sd", flag=T)
    assert (values.items["sd"].t_max, values.items["sd"].period_value()) == (None, None)
    _add(values, T0, 3.0, code="nh3n", flag=T)
    assert values.items["nh3n"].period_value() == 3.0


def test_instant_is_the_newest_reading_with_its_flag() -> None:
    """The item's instant is its newest reading, flag and below-DL mark included."""
    values = _values()
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(hours=1), 4.0, flag=T)
    item = values.items["nh3n"]
    assert (item.instant, item.instant_ns, item.instant_flag, item.instant_below_dl) == (
        4.0,
        _ns(T0 + timedelta(hours=1)),
        "T",
        False,
    )
    _add(values, T0 + timedelta(hours=2), 0.05, below_dl=True)
    assert (item.instant, item.instant_flag, item.instant_below_dl) == (0.05, "N", True)


# --- runs of missing data -------------------------------------------------------------------------
def test_a_data_problem_run_starts_continues_and_ends() -> None:
    """D starts the run, B continues it (the newest flag, the first start), an N result ends it."""
    values = _values()
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(hours=1), 9.9, flag=DataFlag.FAULT)
    item = values.items["nh3n"]
    started = _ns(T0 + timedelta(hours=1))
    assert (item.problem_flag, item.problem_since_ns) == ("D", started)
    _add(values, T0 + timedelta(hours=2), 9.9, flag=DataFlag.COMMS)
    assert (item.problem_flag, item.problem_since_ns) == ("B", started)
    # Flagged values enter nothing: the mean is still the one N result.
    assert (item.count, item.period_value()) == (1, 0.3)
    _add(values, T0 + timedelta(hours=3), 0.4)
    assert (item.problem_flag, item.problem_since_ns) == (None, None)


@pytest.mark.parametrize(
    "flag",
    [DataFlag.COMMS, DataFlag.FAULT, DataFlag.STOPPED, DataFlag.MAINTENANCE, DataFlag.CALIBRATION],
)
def test_each_data_problem_flag_starts_a_run(flag: DataFlag) -> None:
    """B, D, F, M and C each start a run and count into nothing."""
    values = _values()
    _add(values, T0, 1.0, flag=flag)
    item = values.items["nh3n"]
    assert (item.problem_flag, item.problem_since_ns) == (flag.value, _ns(T0))
    assert (item.count, item.t_max, item.period_value()) == (0, None, None)


def test_a_t_result_ends_a_run() -> None:
    """T is a measurement (a lower bound), so it ends a run of missing data."""
    values = _values()
    _add(values, T0, 0.0, flag=DataFlag.MAINTENANCE)
    _add(values, T0 + timedelta(hours=1), 3.0, flag=T)
    assert values.items["nh3n"].problem_flag is None


def test_a_manual_value_neither_counts_nor_ends_a_run() -> None:
    """S (entered by hand) is not valid automatic data: no mean, and the run goes on."""
    values = _values()
    _add(values, T0, 0.0, flag=DataFlag.FAULT)
    _add(values, T0 + timedelta(hours=1), 0.3, flag=DataFlag.MANUAL)
    item = values.items["nh3n"]
    assert (item.count, item.period_value()) == (0, None)
    assert (item.problem_flag, item.problem_since_ns) == ("D", _ns(T0))


def test_a_run_outlives_the_day() -> None:
    """A run that began yesterday still counts from its start after local midnight."""
    values = _values()
    _add(values, datetime(2026, 7, 1, 14, tzinfo=UTC), 0.0, flag=DataFlag.COMMS)
    _add(values, datetime(2026, 7, 1, 18, tzinfo=UTC), 0.0, flag=DataFlag.COMMS)
    item = values.items["nh3n"]
    assert item.problem_since_ns == _ns(datetime(2026, 7, 1, 14, tzinfo=UTC))


# --- duplicates and late readings -----------------------------------------------------------------
def test_duplicate_and_late_readings_are_not_counted() -> None:
    """A repeat of the newest time and anything older return False and change nothing."""
    values = _values()
    assert _add(values, T0, 0.3)
    assert _add(values, T0 + timedelta(hours=2), 0.5)
    item = values.items["nh3n"]
    before = item.to_json()
    values.changed = False
    assert not _add(values, T0 + timedelta(hours=2), 0.5)  # the same reading again
    assert not _add(values, T0 + timedelta(hours=2), 9.0)  # a different value at the same time
    assert not _add(values, T0 + timedelta(hours=1), 9.0)  # late
    assert not _add(values, T0 + timedelta(hours=1), 9.0, flag=DataFlag.COMMS)  # late, flagged
    assert item.to_json() == before
    assert not values.changed
    assert item.count == 2
    assert item.period_value() == pytest.approx(0.4)


def test_newness_is_per_item() -> None:
    """An item whose newest is older still counts a reading older than another item's newest."""
    values = _values()
    _add(values, T0 + timedelta(hours=2), 0.3, code="nh3n")
    assert _add(values, T0 + timedelta(hours=1), 3.0, code="codmn")
    assert values.items["codmn"].count == 1
    assert values.newest_ns == _ns(T0 + timedelta(hours=2))


def test_a_late_reading_from_yesterday_does_not_reopen_yesterday() -> None:
    """Once today has a reading, one from yesterday is late: today's mean is untouched."""
    values = _values()
    _add(values, datetime(2026, 7, 1, 17, tzinfo=UTC), 0.3)  # 2 July, 01:00 local
    assert not _add(values, datetime(2026, 7, 1, 15, tzinfo=UTC), 5.0)  # 1 July, 23:00 local
    item = values.items["nh3n"]
    assert (item.count, item.period_value()) == (1, 0.3)
    assert item.period_start_ns == _ns(datetime(2026, 7, 1, 16, tzinfo=UTC))


# --- storing and restoring ------------------------------------------------------------------------
def _busy() -> StationValues:
    """A station with a mean, a below-DL result, a T result and an open run of missing data."""
    values = _values()
    _add(values, T0, 0.3)
    _add(values, T0 + timedelta(hours=1), 0.4, below_dl=True)
    _add(values, T0 + timedelta(hours=2), 2.5, flag=T)
    _add(values, T0, 3.0, code="codmn")
    _add(values, T0 + timedelta(hours=1), 0.0, code="codmn", flag=DataFlag.FAULT)
    return values


def test_to_json_and_restore_round_trip_through_json_text() -> None:
    """What the store writes (orjson text) restores to equal items and the same newest time."""
    values = _busy()
    restored = _values()
    restored.restore(orjson.loads(orjson.dumps(values.to_json())))
    assert restored.items == values.items
    assert restored.newest_ns == values.newest_ns
    assert restored.to_json() == values.to_json()
    assert ItemValues.from_json(values.items["nh3n"].to_json()) == values.items["nh3n"]


def test_a_restored_station_continues_as_if_never_stopped() -> None:
    """After a restore the same readings give the same values as in the original, duplicates included."""
    values = _busy()
    restored = _values()
    restored.restore(orjson.loads(orjson.dumps(values.to_json())))
    more = [
        ("nh3n", T0 + timedelta(hours=2), 9.0, N),  # a repeat of the newest time: not counted
        ("nh3n", T0 + timedelta(hours=3), 0.6, N),
        ("codmn", T0 + timedelta(hours=3), 4.0, N),  # ends the run of D
        ("nh3n", datetime(2026, 7, 1, 16, tzinfo=UTC), 0.2, N),  # the next local day
    ]
    for code, at, value, flag in more:
        assert _add(values, at, value, code=code, flag=flag) == _add(
            restored, at, value, code=code, flag=flag
        )
    assert restored.items == values.items
    assert restored.items["nh3n"].period_value() == 0.2
    assert restored.items["codmn"].problem_flag is None


def test_an_empty_station_restores_empty() -> None:
    """A station without readings stores no items and no newest time, and restores so."""
    restored = _values()
    restored.restore(orjson.loads(orjson.dumps(_values().to_json())))
    assert (restored.items, restored.newest_ns) == ({}, None)
