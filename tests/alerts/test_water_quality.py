"""The water_quality rule through the service (`AlertService` on a temp database, fake clock).

One alert per station, judged on the provisional daily value (local days in Asia/Shanghai: T0 is
08:00 local and the day ends at T0 + 16 h) against the target class; T and emergency readings alert
at once; severity follows how far and how long; replays and restarts change nothing.

A day's value of fewer than `provisional_results` (4) results is provisional: a warning at most,
unless a reading passes the emergency threshold. Tests about class severity itself set
`provisional_results: 1` (`PROMPT`); the others feed a day of at least four results.

Class limits of NH3-N (mg/L): I 0.15, II 0.5, III 1.0, IV 1.5, V 2.0 (emergency: 2 x 2.0 = 4.0).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from alerts.config import AlertsConfig
from alerts.events import AlertEvent
from alerts.lifecycle import AlertState
from alerts.service import AlertService
from config.registry import Registry
from ingest.model import DATA_KIND_TAG, DataFlag, Reading
from tests.alerts.engine_support import (
    CLEAN,
    T0,
    FakeClock,
    events,
    make_service,
    one_station_registry,
    reading,
    report,
    rules_config,
    water,
)
from tests.helpers import station

RULE: Final = "water_quality"
WQ: Final[dict[str, Any]] = {"name": RULE, "kind": "water_quality", "renotify_interval": "PT0S"}
NEXT_DAY: Final = T0 + timedelta(hours=16)  # 00:00 on 2 July in Shanghai
H: Final = timedelta(hours=1)
# The day's first report is judged as a full day: class severity at once.
PROMPT: Final[dict[str, Any]] = {"provisional_results": 1}


def _config(**settings: Any) -> AlertsConfig:
    """Only the water_quality rule, without reminders, with `settings` on it."""
    return rules_config({**WQ, **settings})


def _service(
    tmp_path: Path, config: AlertsConfig | None = None, registry: Registry | None = None
) -> AlertService:
    return make_service(tmp_path, registry or one_station_registry(), config or _config(), FakeClock())


def _water_events(service: AlertService) -> list[AlertEvent]:
    return [e for e in events(service) if e.rule == RULE]


def _brief(service: AlertService) -> list[tuple[str, str, str | None]]:
    """(status, severity, change) of each water_quality event, in order."""
    return [(e.status, e.severity, e.annotations.get("change")) for e in _water_events(service)]


def _hourly(service: AlertService, start: datetime, nh3n: list[float]) -> None:
    """One clean report per hour from `start`, with the NH3-N values given."""
    for i, value in enumerate(nh3n):
        service.write(water(start + i * H, nh3n=value))


# --- how far: severity from the classes -----------------------------------------------------------
def test_one_class_worse_is_one_warning(tmp_path: Path) -> None:
    """NH3-N 0.8 at a class II section (class III): one firing warning; more of the same, up to a day
    of four results (no longer provisional), no more events."""
    service = _service(tmp_path)
    for hours in range(0, 13, 4):
        service.write(water(T0 + hours * H, nh3n=0.8))
    assert service.engine.values["st-1"].items["nh3n"].count == 4
    [event] = _water_events(service)
    assert (event.status, event.severity, event.water_class, event.target_class) == (
        "firing",
        "warning",
        "III",
        "II",
    )
    assert (event.primary_pollutants, event.values) == (("nh3n",), {"nh3n": 0.8})
    assert event.labels["category"] == "water"


@pytest.mark.parametrize(
    ("nh3n", "water_class"),
    [(1.2, "IV"), (2.5, "劣V")],
    ids=["two-classes-worse", "worse-than-v"],
)
def test_two_classes_worse_or_worse_than_v_is_critical(tmp_path: Path, nh3n: float, water_class: str) -> None:
    """Class IV (two worse than II) and 劣V both fire critical at once, one event each (with
    provisional_results 1: the first report is a full day)."""
    service = _service(tmp_path, _config(**PROMPT))
    service.write(water(T0, nh3n=nh3n))
    [event] = _water_events(service)
    assert (event.status, event.severity, event.water_class) == ("firing", "critical", water_class)


def test_critical_classes_worse_is_configurable(tmp_path: Path) -> None:
    """With critical_classes_worse 3 a class IV value at a class II section is only a warning (a full
    day by provisional_results 1, so the warning is the class's, not the provisional value's)."""
    service = _service(tmp_path, _config(critical_classes_worse=3, **PROMPT))
    service.write(water(T0, nh3n=1.2))
    assert _brief(service) == [("firing", "warning", None)]


def test_the_daily_value_not_one_reading_decides(tmp_path: Path) -> None:
    """A 4-hour spike of 0.8 in a day of 0.3 keeps the daily mean (0.475) within class II: nothing."""
    service = _service(tmp_path)
    _hourly(service, T0, [0.3, 0.3, 0.8, 0.3])
    assert _brief(service) == []
    assert service.engine.values["st-1"].items["nh3n"].period_value() == pytest.approx(0.425)


def test_an_emergency_reading_is_critical_at_once(tmp_path: Path) -> None:
    """NH3-N 4.5 (past 2 x the class V limit) after nine clean hours: the mean is only class III
    (0.72), yet the alert fires critical at once, naming the single reading."""
    service = _service(tmp_path)
    _hourly(service, T0, [0.3] * 9)
    assert _brief(service) == []
    service.write(water(T0 + 9 * H, nh3n=4.5))
    [event] = _water_events(service)
    assert (event.status, event.severity) == ("firing", "critical")
    assert event.values["nh3n:emergency"] == 4.5
    assert event.values["nh3n"] == pytest.approx(0.72)
    assert event.event_at == T0 + 9 * H


def test_a_reading_at_the_emergency_threshold_is_not_an_emergency(tmp_path: Path) -> None:
    """4.0 is the threshold itself: diluted to class III by the day, it is a warning, not critical."""
    service = _service(tmp_path)
    _hourly(service, T0, [0.3] * 9 + [4.0])  # mean 0.67
    [event] = _water_events(service)
    assert (event.severity, "nh3n:emergency" in event.values) == ("warning", False)


def test_a_low_do_emergency_is_critical(tmp_path: Path) -> None:
    """DO 0.8 (under class V's 2 divided by 2) after clean hours fires critical on the reading."""
    service = _service(tmp_path)
    for i in range(9):
        service.write(report(T0 + i * H, {}))
    service.write(report(T0 + 9 * H, {"do": 0.8}))
    [event] = _water_events(service)
    assert (event.severity, event.values["do:emergency"]) == ("critical", 0.8)


# --- provisional: a day of fewer than four results ------------------------------------------------
@pytest.mark.parametrize(
    ("nh3n", "water_class"),
    [(1.2, "IV"), (2.5, "劣V")],
    ids=["two-classes-worse", "worse-than-v"],
)
def test_a_spike_in_the_days_first_report_is_a_warning_until_the_day_has_four_results(
    tmp_path: Path, nh3n: float, water_class: str
) -> None:
    """The day's first report out two classes (or 劣V) is a provisional value: a warning. Still one
    at three results; at the fourth the day's value, still that bad, escalates the same alert."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=nh3n))
    [first] = _water_events(service)
    assert (first.status, first.severity, first.water_class) == ("firing", "warning", water_class)
    for hours in (4, 8):
        service.write(water(T0 + hours * H, nh3n=nh3n))
    assert _brief(service) == [("firing", "warning", None)]  # three results: still provisional
    service.write(water(T0 + 12 * H, nh3n=nh3n))
    assert _brief(service) == [("firing", "warning", None), ("firing", "critical", "escalated")]
    escalated = _water_events(service)[-1]
    assert (escalated.alert_id, escalated.starts_at, escalated.event_at) == (first.alert_id, T0, T0 + 12 * H)
    assert escalated.water_class == water_class
    [record] = service.engine.station_alerts("st-1")
    assert (record.state, record.labels["severity"]) == (AlertState.FIRING, "critical")


def test_a_spike_the_day_dilutes_never_becomes_critical(tmp_path: Path) -> None:
    """A 劣V spike (2.5) in the day's first report, then three clean ones: the day of four results is
    class III (0.85), so the warning stays a warning (and is not a new alert)."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=2.5))
    for hours in (4, 8, 12):
        service.write(water(T0 + hours * H, nh3n=0.3))
    assert _brief(service) == [("firing", "warning", None)]
    [record] = service.engine.station_alerts("st-1")
    assert (record.labels["severity"], record.current["water_class"]) == ("warning", "III")
    assert record.current["values"] == {"nh3n": pytest.approx(0.85)}


def test_a_provisional_value_says_so_in_the_summary(tmp_path: Path) -> None:
    """A day's value of fewer than four results reads "日均值（暂，n个数据）"; with four it is the
    day's value, "日均值", with no such note."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    [event] = _water_events(service)
    assert "氨氮日均值（暂，1个数据）0.8 mg/L，III类" in event.annotations["summary"]
    assert "（暂，1个数据）" in event.annotations["description"]
    service.write(water(T0 + 4 * H, nh3n=0.8))
    [record] = service.engine.station_alerts("st-1")
    assert "日均值（暂，2个数据）" in record.current["summary"]
    for hours in (8, 12):
        service.write(water(T0 + hours * H, nh3n=0.8))
    [record] = service.engine.station_alerts("st-1")
    assert "氨氮日均值0.8 mg/L，III类" in record.current["summary"]
    assert "暂" not in record.current["summary"]
    assert "暂" not in record.current["description"]


@pytest.mark.parametrize(
    ("settings", "severity", "note"),
    [({}, "warning", True), (PROMPT, "critical", False)],
    ids=["default", "provisional-results-1"],
)
def test_provisional_results_1_restores_class_severity_at_once(
    tmp_path: Path, settings: dict[str, Any], severity: str, note: bool
) -> None:
    """A 劣V first report: a provisional warning by default; with provisional_results 1 one result is
    a day's value, critical at once by its class, and not worded as provisional."""
    service = _service(tmp_path, _config(**settings))
    service.write(water(T0, nh3n=2.5))
    [event] = _water_events(service)
    assert (event.status, event.severity, event.water_class) == ("firing", severity, "劣V")
    assert ("（暂，1个数据）" in event.annotations["summary"]) is note


@pytest.mark.parametrize(
    ("readings", "key", "value"),
    [
        (report(T0, {"nh3n": 4.5}), "nh3n:emergency", 4.5),
        (report(T0, {"do": 0.8}), "do:emergency", 0.8),
        ([*water(T0)[:-1], reading("nh3n", 5.0, T0, flag=DataFlag.OVER_RANGE)], "nh3n:saturated", 5.0),
    ],
    ids=["nh3n", "low-do", "t-past-the-threshold"],
)
def test_an_emergency_reading_is_critical_in_a_provisional_day(
    tmp_path: Path, readings: list[Reading], key: str, value: float
) -> None:
    """A reading past the emergency threshold (NH3-N over 4.0, DO under 1.0, or a T reading of at
    least 5.0) in the day's first report: critical at once, though the day has one result."""
    service = _service(tmp_path)
    service.write(readings)
    [event] = _water_events(service)
    assert (event.status, event.severity) == ("firing", "critical")
    assert event.values[key] == value
    assert all(item.count <= 1 for item in service.engine.values["st-1"].items.values())


def test_t_results_count_towards_the_days_four_results(tmp_path: Path) -> None:
    """NH3-N saturated all day (T at 3.0, "at least 3.0", every 4 h): the method counts T results of
    a max item towards min_results_per_day (`alerts.assessment_method.daily`), so four of them make
    a day whose value is at least 3.0 (劣V): the alert escalates to critical at the fourth."""
    service = _service(tmp_path)
    for hours in (0, 4, 8, 12):
        at = T0 + hours * H
        service.write([*water(at)[:-1], reading("nh3n", 3.0, at, flag=DataFlag.OVER_RANGE)])
    assert _brief(service) == [("firing", "warning", None), ("firing", "critical", "escalated")]


def test_a_new_days_provisional_value_does_not_deescalate(tmp_path: Path) -> None:
    """NH3-N 2.5 (劣V) every 4 h for two days: critical from the day's fourth result. The next day's
    first reports are provisional, which says nothing milder about the water: the alert stays
    critical, with no de-escalation and re-escalation around midnight."""
    service = _service(tmp_path)
    for hours in range(0, 37, 4):
        service.write(water(T0 + hours * H, nh3n=2.5))
    assert _brief(service) == [("firing", "warning", None), ("firing", "critical", "escalated")]


# --- T: the analyser saturated --------------------------------------------------------------------
def test_a_saturated_reading_worse_than_the_target_alerts(tmp_path: Path) -> None:
    """NH3-N flagged T at 3.0 (at least 3.0) fires at once, on the reading and on the raised daily
    value: a warning while the day has too few results (provisional); once it has four, the daily value,
    still raised to 3.0 (劣V), escalates the same alert to critical."""
    service = _service(tmp_path)
    service.write(water(T0))
    service.write([*water(T0 + H)[:-1], reading("nh3n", 3.0, T0 + H, flag=DataFlag.OVER_RANGE)])
    [event] = _water_events(service)
    assert (event.status, event.severity) == ("firing", "warning")
    assert event.values["nh3n:saturated"] == 3.0
    assert event.values["nh3n"] == 3.0  # the daily value is at least the largest T
    assert event.primary_pollutants == ("nh3n",)
    for hours in (2, 3, 4):
        service.write(water(T0 + hours * H))
    first, escalated = _water_events(service)
    assert (escalated.severity, escalated.annotations.get("change")) == ("critical", "escalated")
    # Four results at T0 + 3 h: three valid and the T one, which counts as in the method.
    assert (escalated.alert_id, escalated.event_at) == (first.alert_id, T0 + 3 * H)
    assert escalated.values == {"nh3n": 3.0}


def test_a_saturated_reading_within_the_target_is_nothing(tmp_path: Path) -> None:
    """T at 0.4 (an analyser with a low range) says at least 0.4: within class II, no alert."""
    service = _service(tmp_path)
    service.write([*water(T0)[:-1], reading("nh3n", 0.4, T0, flag=DataFlag.OVER_RANGE)])
    assert _brief(service) == []


def test_t_on_dissolved_oxygen_raises_nothing(tmp_path: Path) -> None:
    """DO is a minimum item: T at 20 mg/L (supersaturated) is no pollution."""
    service = _service(tmp_path)
    service.write(water(T0))
    service.write([r for r in water(T0 + H) if r.parameter != "do"] + [_do_t(T0 + H, 20.0)])
    assert _brief(service) == []


def test_t_on_dissolved_oxygen_does_not_hide_a_low_daily_mean(tmp_path: Path) -> None:
    """DO 4.0 all day (class IV, critical once the day has four results) with one reading T at
    20 mg/L: the method drops T for DO (`over_range.not_raised`), so the daily value stays 4.0 and
    the alert must neither resolve nor de-escalate."""
    service = _service(tmp_path)
    for hours in range(4):
        service.write(report(T0 + hours * H, {"do": 4.0}))
    assert _brief(service) == [("firing", "warning", None), ("firing", "critical", "escalated")]
    service.write([r for r in report(T0 + 4 * H, {}) if r.parameter != "do"] + [_do_t(T0 + 4 * H, 20.0)])
    service.write(report(T0 + 5 * H, {"do": 4.0}))
    service.write(report(T0 + 6 * H, {"do": 4.0}))
    assert _brief(service) == [("firing", "warning", None), ("firing", "critical", "escalated")]
    assert service.engine.values["st-1"].items["do"].period_value() == 4.0
    assert service.engine.values["st-1"].items["do"].t_max is None


def test_a_t_alone_on_dissolved_oxygen_is_no_daily_value(tmp_path: Path) -> None:
    """DO's only result of the day flagged T at 5.0 says "at least 5.0": it cannot show DO under class
    II's 6.0, so it raises nothing (the method drops T for DO)."""
    service = _service(tmp_path)
    service.write([r for r in report(T0, {}) if r.parameter != "do"] + [_do_t(T0, 5.0)])
    assert _brief(service) == []


def test_over_range_false_ignores_the_reading_itself(tmp_path: Path) -> None:
    """With over_range false the T reading alone does not alert (the daily value still carries it)."""
    service = _service(tmp_path, _config(over_range=False))
    service.write(water(T0))
    service.write([*water(T0 + H)[:-1], reading("nh3n", 3.0, T0 + H, flag=DataFlag.OVER_RANGE)])
    [event] = _water_events(service)
    assert "nh3n:saturated" not in event.values


def _do_t(at: datetime, value: float) -> Reading:
    return reading("do", value, at, flag=DataFlag.OVER_RANGE)


# --- lake TN --------------------------------------------------------------------------------------
def _lake() -> Registry:
    return Registry([station("st-1", target_class="III", water_body="lake", report_interval_s=3600)])


def test_lake_tn_is_not_alerted_by_default(tmp_path: Path) -> None:
    """TN 1.8 at a class III lake section (TN class V) raises nothing with the default rules."""
    service = make_service(tmp_path, _lake(), AlertsConfig(), FakeClock())
    service.write(report(T0, {"tn": 1.8}))
    service.write(report(T0 + H, {"tn": 1.8}))
    assert _brief(service) == []


def test_lake_tn_alerts_when_opted_in(tmp_path: Path) -> None:
    """With lake_tn true the same TN fires one alert naming TN (class V, two worse than III: critical,
    the first report being a full day by provisional_results 1)."""
    service = _service(tmp_path, _config(lake_tn=True, **PROMPT), _lake())
    service.write(report(T0, {"tn": 1.8}))
    [event] = _water_events(service)
    assert (event.primary_pollutants, event.values, event.water_class, event.severity) == (
        ("tn",),
        {"tn": 1.8},
        "V",
        "critical",
    )


def test_river_tn_is_never_assessed(tmp_path: Path) -> None:
    """A river section's TN is not assessed by the standard: nothing even with lake_tn true."""
    service = _service(tmp_path, _config(lake_tn=True))
    service.write(report(T0, {"tn": 3.0}))
    assert _brief(service) == []


# --- how long: escalation and de-escalation -------------------------------------------------------
def test_an_alert_persisting_past_critical_after_escalates_once(tmp_path: Path) -> None:
    """Class III NH3-N every 4 h for 28 h: a warning, then at 24 h one escalation to critical, same alert."""
    service = _service(tmp_path)  # critical_after: P1D by default
    for hours in range(0, 29, 4):
        service.write(water(T0 + hours * H, nh3n=0.8))
    first, escalated = _water_events(service)
    assert (first.status, first.severity) == ("firing", "warning")
    assert (escalated.status, escalated.severity, escalated.annotations.get("change")) == (
        "firing",
        "critical",
        "escalated",
    )
    assert escalated.alert_id == first.alert_id
    assert escalated.event_at == T0 + 24 * H
    assert escalated.starts_at == first.starts_at == T0
    steps = [h["transition"] for h in service.store.history(limit=100) if h["rule"] == RULE]
    assert steps.count("escalated") == 1
    [record] = service.engine.station_alerts("st-1")
    assert (record.state, record.labels["severity"]) == (AlertState.FIRING, "critical")


def test_critical_after_null_never_escalates_by_time(tmp_path: Path) -> None:
    """With critical_after null a class III alert stays a warning however long it lasts."""
    service = _service(tmp_path, _config(critical_after=None))
    for hours in range(0, 49, 4):
        service.write(water(T0 + hours * H, nh3n=0.8))
    assert _brief(service) == [("firing", "warning", None)]


def test_deescalation_waits_for_deescalate_after(tmp_path: Path) -> None:
    """Class IV (critical) then a daily mean back to class III: still critical 1 h later, a warning
    once the milder value has lasted 2 h (deescalate_after), in one de-escalation of the same alert
    (provisional_results 1: the class alone sets the severity)."""
    service = _service(tmp_path, _config(critical_after=None, deescalate_after="PT2H", **PROMPT))
    service.write(water(T0, nh3n=1.2))  # IV
    service.write(water(T0 + H, nh3n=0.4))  # mean 0.8: III, milder since T0 + 1 h
    service.write(water(T0 + 2 * H, nh3n=0.8))  # mean 0.8, milder for 1 h
    assert _brief(service) == [("firing", "critical", None)]
    service.write(water(T0 + 3 * H, nh3n=0.8))  # milder for 2 h
    assert _brief(service) == [("firing", "critical", None), ("firing", "warning", "deescalated")]
    first, milder = _water_events(service)
    assert (milder.alert_id, milder.event_at) == (first.alert_id, T0 + 3 * H)


def test_a_mean_wavering_back_to_critical_restarts_the_hold(tmp_path: Path) -> None:
    """Milder, then critical again, then milder: the hold counts from the second milder finding
    (provisional_results 1: the class alone sets the severity)."""
    service = _service(tmp_path, _config(critical_after=None, deescalate_after="PT2H", **PROMPT))
    service.write(water(T0, nh3n=1.2))  # 1.2: IV
    service.write(water(T0 + H, nh3n=0.4))  # 0.8: III, milder from 1 h
    service.write(water(T0 + 2 * H, nh3n=2.0))  # 1.2: IV again
    service.write(water(T0 + 3 * H, nh3n=0.2))  # 0.95: III, milder from 3 h
    service.write(water(T0 + 4 * H, nh3n=0.5))  # 0.86: III, 1 h (3 h since the first milder)
    assert _brief(service) == [("firing", "critical", None)]
    service.write(water(T0 + 5 * H, nh3n=0.5))  # 0.8: III, 2 h
    assert _brief(service)[-1] == ("firing", "warning", "deescalated")


def test_deescalate_after_null_deescalates_at_once(tmp_path: Path) -> None:
    """With deescalate_after null the first milder finding turns the alert back to warning
    (provisional_results 1: the class alone sets the severity)."""
    service = _service(tmp_path, _config(critical_after=None, deescalate_after=None, **PROMPT))
    service.write(water(T0, nh3n=1.2))
    service.write(water(T0 + H, nh3n=0.4))
    assert _brief(service) == [("firing", "critical", None), ("firing", "warning", "deescalated")]


def test_a_new_episode_starts_at_its_own_severity(tmp_path: Path) -> None:
    """An alert that ended critical, resolved, then fires again one class worse: a warning, not critical
    (provisional_results 1: the warning is the class's, not a provisional value's)."""
    service = _service(tmp_path, _config(**PROMPT))
    service.write(water(T0, nh3n=1.2))  # IV: critical
    service.write(water(T0 + 16 * H, nh3n=0.3))  # the next local day, clean twice: resolved
    service.write(water(T0 + 17 * H, nh3n=0.3))
    service.write(water(T0 + 18 * H, nh3n=1.8))  # mean 0.8: III
    assert _brief(service) == [
        ("firing", "critical", None),
        ("resolved", "critical", None),
        ("firing", "warning", None),
    ]


# --- resolution -----------------------------------------------------------------------------------
def test_resolved_once_the_next_days_value_is_within_target(tmp_path: Path) -> None:
    """A clean report later the same day leaves the day's mean out (0.55): still firing. The next local
    day's two clean reports (recovery: 2 samples) resolve it, ending at the first of them."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    service.write(water(T0 + 4 * H, nh3n=0.3))  # mean 0.55, same local day
    assert _brief(service) == [("firing", "warning", None)]
    service.write(water(NEXT_DAY, nh3n=0.3))
    assert _brief(service) == [("firing", "warning", None)]  # one clean sample so far
    service.write(water(NEXT_DAY + 4 * H, nh3n=0.3))
    assert _brief(service) == [("firing", "warning", None), ("resolved", "warning", None)]
    resolved = _water_events(service)[-1]
    assert (resolved.ends_at, resolved.event_at) == (NEXT_DAY, NEXT_DAY + 4 * H)


def test_an_item_without_valid_data_does_not_resolve_its_alert(tmp_path: Path) -> None:
    """NH3-N out on day 1; on day 2 the NH3-N analyser reports D (fault) all day while the other items
    are clean. Without an NH3-N value the day is not assessable (the method: a required item is
    missing), never compliant: the alert must hold, not resolve on the other items."""
    service = make_service(tmp_path, one_station_registry(), AlertsConfig(), FakeClock())
    service.write(water(T0, nh3n=0.8))
    for i in range(0, 24, 4):
        at = NEXT_DAY + i * H
        service.write([*water(at)[:-1], reading("nh3n", 0.0, at, flag=DataFlag.FAULT)])
    assert _brief(service) == [("firing", "warning", None)]
    by_rule = {r.rule: r.state for r in service.engine.station_alerts("st-1")}
    assert by_rule == {RULE: AlertState.FIRING, "no_valid_data": AlertState.FIRING}


def test_monthly_basis_judges_the_month_so_far(tmp_path: Path) -> None:
    """basis monthly: 0.8 on day 1, then a clean report a day; the month's mean (0.55, 0.467, 0.425) is
    back within class II only on the second clean day, and resolves on the third (two clean samples)."""
    service = _service(tmp_path, rules_config({**WQ, "critical_after": None}, basis="monthly"))
    for day, value in enumerate([0.8, 0.3, 0.3, 0.3]):
        service.write(water(T0 + day * 24 * H, nh3n=value))
    assert _brief(service) == [("firing", "warning", None), ("resolved", "warning", None)]
    assert _water_events(service)[-1].event_at == T0 + 3 * 24 * H


def test_the_stations_zone_sets_its_day(tmp_path: Path) -> None:
    """A station in Europe/Berlin: 22:00 UTC in July is its midnight (in Shanghai it would be 06:00,
    mid-day), so two clean reports after it resolve the alert on the new day's mean."""
    registry = Registry(
        [station("st-1", target_class="II", report_interval_s=3600, timezone="Europe/Berlin")]
    )
    service = _service(tmp_path, registry=registry)
    evening = T0 + 20 * H  # 1 July 22:00 Berlin
    service.write(water(evening, nh3n=1.0))
    service.write(water(evening + 2 * H, nh3n=0.3))  # 2 July 00:00 Berlin
    service.write(water(evening + 3 * H, nh3n=0.3))
    assert [s for s, _, _ in _brief(service)] == ["firing", "resolved"]


# --- one alert per station ------------------------------------------------------------------------
def test_several_items_out_are_one_alert(tmp_path: Path) -> None:
    """NH3-N IV, CODMn III and DO III: one alert listing all three, worst class first (critical by
    NH3-N's class, the first report being a full day by provisional_results 1)."""
    service = _service(tmp_path, _config(**PROMPT))
    service.write(report(T0, {"nh3n": 1.2, "codmn": 5.0, "do": 5.5}))
    [event] = _water_events(service)
    assert event.values == {"nh3n": 1.2, "codmn": 5.0, "do": 5.5}
    assert event.primary_pollutants == ("nh3n", "codmn", "do")
    assert (event.water_class, event.severity) == ("IV", "critical")
    assert len(service.engine.station_alerts("st-1")) == 1


def test_an_evolving_event_updates_the_same_alert(tmp_path: Path) -> None:
    """A second item going out later is added to the same alert (its current finding), not a new one."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    service.write(report(T0 + H, {"nh3n": 0.8, "codmn": 5.5}))  # CODMn mean 4.25: III
    assert len(_water_events(service)) == 1
    [record] = service.engine.station_alerts("st-1")
    assert record.current["primary_pollutants"] == ["nh3n", "codmn"]
    assert record.current["values"] == {"nh3n": 0.8, "codmn": pytest.approx(4.25)}


def test_stations_have_separate_alerts(tmp_path: Path) -> None:
    """Two stations out: two alerts with distinct ids, each naming its station."""
    registry = Registry([station(sid, target_class="II", report_interval_s=3600) for sid in ("st-1", "st-2")])
    service = _service(tmp_path, registry=registry)
    service.write([*water(T0, nh3n=0.8), *water(T0, station_id="st-2", nh3n=0.9)])
    fired = _water_events(service)
    assert sorted(e.labels["station_id"] for e in fired) == ["st-1", "st-2"]
    assert len({e.alert_id for e in fired}) == 2


# --- replay and restart ---------------------------------------------------------------------------
def test_a_replayed_batch_changes_nothing(tmp_path: Path) -> None:
    """The same readings written again (a crash replay) add no events, history or period value."""
    service = _service(tmp_path)
    batch = [*water(T0, nh3n=0.8), *water(T0 + H, nh3n=1.3)]
    service.write(batch)
    before = (
        [e.key for e in events(service)],
        service.store.history(limit=100),
        dict(service.store.load_station_values()),
    )
    service.write(batch)
    service.write(list(reversed(batch)))
    after = (
        [e.key for e in events(service)],
        service.store.history(limit=100),
        dict(service.store.load_station_values()),
    )
    assert after == before
    assert service.engine.values["st-1"].items["nh3n"].period_value() == pytest.approx(1.05)
    assert service.engine.counts["duplicate"] == 2 * len(batch)


def _restart_script() -> tuple[list[list[Reading]], list[list[Reading]]]:
    """Half a day of 0.4 (within class II), then 0.7 hourly: the mean leaves class II at the
    fifth reading (0.52), not at the first 0.7 as a fresh mean would."""
    first = [water(T0 + i * H, nh3n=0.4) for i in range(3)]
    rest = [water(T0 + (3 + i) * H, nh3n=0.7) for i in range(3)]
    return first, rest


def test_a_restart_continues_the_running_mean(tmp_path: Path) -> None:
    """Feed half a day, reopen the database in a new service, feed the rest: the alert fires when
    and as it does without the restart (the running mean restored from station_values)."""
    first, rest = _restart_script()
    control = _service(tmp_path / "control")
    for batch in [*first, *rest]:
        control.write(batch)
    expected = [(e.key, e.status, e.severity, e.event_at, e.values) for e in _water_events(control)]
    control.close()

    service = _service(tmp_path)
    for batch in first:
        service.write(batch)
    service.close()
    reopened = _service(tmp_path)
    reopened.write(rest[0])
    assert _brief(reopened) == []  # 0.475: a fresh mean (0.7) would have fired here
    for batch in rest[1:]:
        reopened.write(batch)
    got = [(e.key, e.status, e.severity, e.event_at, e.values) for e in _water_events(reopened)]
    assert got == expected
    assert [(status, at) for _, status, _, at, _ in got] == [("firing", T0 + 4 * H)]
    assert got[0][4] == {"nh3n": pytest.approx(0.52)}


def test_a_restart_recognises_replayed_readings(tmp_path: Path) -> None:
    """After a restart the readings already counted are duplicates: replaying them changes nothing."""
    service = _service(tmp_path)
    batch = [*water(T0, nh3n=0.8), *water(T0 + H, nh3n=0.8)]
    service.write(batch)
    keys = [e.key for e in events(service)]
    service.close()
    reopened = _service(tmp_path)
    reopened.write(batch)
    assert [e.key for e in events(reopened)] == keys
    assert reopened.engine.values["st-1"].items["nh3n"].count == 2


# --- what is judged -------------------------------------------------------------------------------
def _hourly_kind(readings: list[Reading]) -> list[Reading]:
    return [dataclasses.replace(r, tags=((DATA_KIND_TAG, "hourly"),)) for r in readings]


def test_hourly_values_are_not_judged(tmp_path: Path) -> None:
    """Hourly means (data_kind=hourly) repeat the real-time values: not judged, not counted, no alert."""
    service = _service(tmp_path)
    batch = _hourly_kind([*water(T0, nh3n=2.5), *water(T0 + H, nh3n=2.5)])
    service.write(batch)
    assert _brief(service) == []
    assert service.engine.values["st-1"].items == {}
    assert service.engine.counts["other_kind"] == len(batch)


def test_data_kinds_can_admit_hourly_values(tmp_path: Path) -> None:
    """With data_kinds [hourly] the same hourly values are judged, and real-time ones are not
    (provisional_results 1: the first hourly value's class sets the severity)."""
    service = _service(tmp_path, rules_config({**WQ, **PROMPT}, data_kinds=["hourly"]))
    service.write(water(T0, nh3n=2.5))
    assert _brief(service) == []
    service.write(_hourly_kind(water(T0 + H, nh3n=2.5)))
    assert _brief(service) == [("firing", "critical", None)]


def test_below_dl_values_count_at_half_their_limit(tmp_path: Path) -> None:
    """<0.8 counts as 0.4 (class II) and with 0.55 the mean is 0.475: no alert, where counting
    the limit itself would have fired (0.8, then 0.675)."""
    service = _service(tmp_path)
    below = [
        dataclasses.replace(r, below_dl=True) if r.parameter == "nh3n" else r for r in water(T0, nh3n=0.8)
    ]
    service.write(below)
    service.write(water(T0 + H, nh3n=0.55))
    assert _brief(service) == []
    assert service.engine.values["st-1"].items["nh3n"].period_value() == pytest.approx(0.475)


def test_a_below_dl_result_is_never_an_emergency(tmp_path: Path) -> None:
    """A detection limit of 5 (a poor method) is not a reading of 5: no emergency, only its half in the mean."""
    service = _service(tmp_path)
    _hourly(service, T0, [0.3] * 9)
    below = [
        dataclasses.replace(r, below_dl=True) if r.parameter == "nh3n" else r
        for r in water(T0 + 9 * H, nh3n=5.0)
    ]
    service.write(below)  # mean (2.7 + 2.5) / 10 = 0.52: class III
    [event] = _water_events(service)
    assert (event.severity, "nh3n:emergency" in event.values) == ("warning", False)


def test_flagged_readings_are_not_water(tmp_path: Path) -> None:
    """NH3-N 9.9 flagged D (fault) or M (maintenance) is no water value: no water_quality alert."""
    service = _service(tmp_path)
    service.write(water(T0))
    for i, flag in enumerate((DataFlag.FAULT, DataFlag.MAINTENANCE), start=1):
        service.write([*water(T0 + i * H)[:-1], reading("nh3n", 9.9, T0 + i * H, flag=flag)])
    assert _brief(service) == []
    assert service.engine.values["st-1"].items["nh3n"].period_value() == CLEAN["nh3n"]
