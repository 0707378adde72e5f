"""Evaluation windows: admission of new, late, duplicate and too-late readings; values and means."""

from __future__ import annotations

from datetime import timedelta

from alerts.windows import Admission, Evidence, Sample, Series, StationWindow
from config.times import ns
from ingest.model import DataFlag
from tests.alerts.engine_support import T0, reading

HOUR = ns(timedelta(hours=1))
DAY = ns(timedelta(days=1))


def _window() -> StationWindow:
    return StationWindow("st-1", retention_ns=2 * DAY)


def _admit(
    window: StationWindow, parameter: str, value: float, hours: float, flag: DataFlag = DataFlag.NORMAL
) -> Admission:
    r = reading(parameter, value, T0 + timedelta(hours=hours), flag=flag)
    admission = window.admit(r, allowed_lateness_ns=6 * HOUR)
    if admission in (Admission.NEW, Admission.LATE):
        window.add(r, admission)
    return admission


def _value(window: StationWindow, at: int, window_ns: int | None) -> Evidence:
    value = window.value("nh3n", at, window_ns=window_ns, max_age_ns=DAY)
    assert value is not None
    return value


def test_admission_sorts_new_late_duplicate_and_too_late() -> None:
    """Newer readings are new, repeats duplicates, older ones late within the lateness and ignored beyond it."""
    window = _window()
    assert _admit(window, "nh3n", 0.3, 10) is Admission.NEW
    assert _admit(window, "nh3n", 0.3, 10) is Admission.DUPLICATE
    assert _admit(window, "nh3n", 0.4, 8) is Admission.LATE
    assert _admit(window, "nh3n", 0.4, 8) is Admission.DUPLICATE
    assert _admit(window, "nh3n", 0.5, 3) is Admission.TOO_LATE
    assert _admit(window, "do", 7.0, 9) is Admission.NEW  # a parameter's first reading, behind the station
    assert window.latest["nh3n"].value == 0.3
    assert window.watermark_ns == window.latest["nh3n"].time_ns


def test_late_reading_enters_the_rolling_mean_but_not_the_latest_value() -> None:
    """A late reading changes the window mean; the instantaneous value stays the newest reading."""
    window = _window()
    _admit(window, "nh3n", 1.0, 2)
    _admit(window, "nh3n", 3.0, 1)  # late
    at = window.latest["nh3n"].time_ns
    assert _value(window, at, None).value == 1.0
    mean = _value(window, at, 4 * HOUR)
    assert (mean.value, mean.samples) == (2.0, 2)


def test_flagged_readings_are_kept_out_of_values() -> None:
    """Values and means use normal-flag readings only; the newest flagged one is still the latest."""
    window = _window()
    _admit(window, "nh3n", 0.3, 1)
    _admit(window, "nh3n", 9.0, 2, DataFlag.MAINTENANCE)
    at = window.latest["nh3n"].time_ns
    assert window.latest["nh3n"].flag is DataFlag.MAINTENANCE
    assert _value(window, at, None).value == 0.3
    assert _value(window, at, 4 * HOUR).value == 0.3


def test_stale_values_are_not_used() -> None:
    """A newest normal value older than max_age gives no value."""
    window = _window()
    _admit(window, "nh3n", 0.3, 0)
    at = window.latest["nh3n"].time_ns + 25 * HOUR
    assert window.value("nh3n", at, window_ns=None, max_age_ns=DAY) is None


def test_value_as_of_an_earlier_instant_uses_the_series() -> None:
    """Evaluated at an earlier instant, the value is the newest reading at or before it."""
    window = _window()
    _admit(window, "nh3n", 0.3, 1)
    _admit(window, "nh3n", 0.9, 3)
    earlier = window.latest["nh3n"].time_ns - 2 * HOUR
    value = window.value("nh3n", earlier, window_ns=None, max_age_ns=DAY)
    assert value is not None
    assert value.value == 0.3


def test_series_prunes_past_retention_and_refuses_repeats() -> None:
    """A series keeps one sample per instant and forgets those older than the cut-off."""
    series = Series()
    assert series.add(Sample(10, 1.0, DataFlag.NORMAL))
    assert not series.add(Sample(10, 2.0, DataFlag.NORMAL))
    assert series.add(Sample(5, 3.0, DataFlag.NORMAL))
    assert [s.value for s in series.between(0, 20)] == [3.0, 1.0]
    series.prune(6)
    assert len(series) == 1
    assert not series.has(5)
