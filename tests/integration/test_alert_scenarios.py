"""Alerts operators can trust (issue 18's proof): scenarios through a real broker to real receivers.

Each scenario publishes a few local days of 4-hourly reports (pH, DO, CODMn, NH3-N, TP) through
Mosquitto to the daemon with the default alert rules, and counts the notifications its webhook
receivers get, exactly, by idempotency key: one event is one alert, judged on daily values as the
method judges; data problems are data alerts; regional alerts come from a month's compliance
rate, never from one reading. Days are counted back from today (Asia/Shanghai), so every report
is in the past and the scenarios hold whatever the date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.integration.alert_scenario_support import (
    HOURS,
    Receiver,
    Report,
    ScenarioDaemon,
    at,
    day_of_reports,
    local_day,
    readings,
    river_station,
)
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration

# GB 3838 river limits at class III / IV / V for NH3-N: 1.0 / 1.5 / 2.0 mg/L; the emergency
# threshold of the default water_quality rule is twice class V, 4.0 mg/L.
SPIKE = 3.0  # one 劣V reading, below the emergency threshold
CLASS_IV = 1.3
CLASS_WORSE_THAN_V = 2.6


@pytest.fixture
def duty_room() -> Iterator[Receiver]:
    """The receiver of every notification that no route sends elsewhere."""
    with Receiver("duty-room") as receiver:
        yield receiver


def _time(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["event_at"]))


def test_a_single_spike_is_one_warning_and_no_regional_alert(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """One 4-hour NH3-N spike at one of a district's three sections is one warning (the daily value
    is one class worse than the target), resolved once the day's value is back within it; no
    regional and no data alert, even after the day is assessed."""
    spiking = river_station("sc-spike", "Yuzhong")
    others = [river_station(f"sc-calm-{n}", "Yuzhong") for n in (1, 2)]
    day = local_day(1)
    with ScenarioDaemon(tmp_path, mosquitto.port, [spiking, *others], [duty_room]) as scenario:
        # Daily means so far: 0.3, 0.3, 1.2 (IV: fires), 0.975, 0.84 (clear twice: resolved).
        scenario.publish(
            [
                *day_of_reports(spiking, day, {8: readings(nh3n=SPIKE)}),
                *(r for s in others for r in day_of_reports(s, day)),
            ]
        )
        scenario.assess()
        scenario.settle()

    (fired,) = duty_room.notices("firing")
    assert fired["rule"] == "water_quality"
    assert fired["station"]["id"] == spiking.id
    assert fired["severity"] == "warning"
    assert fired["water_class"] == "IV"
    assert fired["primary_pollutants"] == ["nh3n"]
    assert _time(fired) == at(day, 8)
    (resolved,) = duty_room.notices("resolved")
    assert resolved["alert_id"] == fired["alert_id"]
    assert _time(resolved) == at(day, 16)
    assert duty_room.changes("escalated") == []
    assert duty_room.of(kind="regional_period") == []
    assert duty_room.of(category="data") == []
    assert len(duty_room.events) == 2


def test_a_single_spike_is_never_critical_whatever_its_hour(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """The same single 4-hour spike (劣V, below the emergency threshold), at whichever report of the
    day it comes, is at most one warning: a single reading is not a daily value."""
    stations = {hour: river_station(f"sc-spike-at-{hour:02d}", "Yuzhong") for hour in HOURS}
    day = local_day(1)
    with ScenarioDaemon(tmp_path, mosquitto.port, list(stations.values()), [duty_room]) as scenario:
        scenario.publish(
            [r for hour, s in stations.items() for r in day_of_reports(s, day, {hour: readings(nh3n=SPIKE)})]
        )
        scenario.settle()

    pages = {
        hour: [(e["status"], e["severity"]) for e in duty_room.of(station_id=s.id) if e["status"] == "firing"]
        for hour, s in stations.items()
    }
    assert all(found in ([], [("firing", "warning")]) for found in pages.values()), pages


def test_a_sustained_spill_is_one_alert_escalating_to_critical_then_resolved_once(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """A spill that worsens over a day and lasts into the next is one alert: a warning at class IV,
    escalated to critical when the daily value reaches two classes worse, and resolved once when the
    next day's values are within the target."""
    spill = river_station("sc-spill", "Jiangbei")
    first, second, third = local_day(3), local_day(2), local_day(1)
    worse = readings(nh3n=CLASS_WORSE_THAN_V)
    with ScenarioDaemon(tmp_path, mosquitto.port, [spill], [duty_room]) as scenario:
        # Day 1 means: 1.3 1.3 1.3 (IV, warning) 1.625 (V: two classes worse, critical) ...
        # day 2: 2.6 (劣V) all day; day 3: clean, resolved at the second clean value.
        scenario.publish(
            [
                *day_of_reports(
                    spill, first, {h: readings(nh3n=CLASS_IV) if h < 12 else worse for h in HOURS}
                ),
                *day_of_reports(spill, second, dict.fromkeys(HOURS, worse)),
                *day_of_reports(spill, third),
            ]
        )
        scenario.settle()

    (fired,) = duty_room.notices("firing")
    assert (fired["rule"], fired["station"]["id"], fired["severity"]) == (
        "water_quality",
        spill.id,
        "warning",
    )
    assert _time(fired) == at(first, 0)
    (escalated,) = duty_room.changes("escalated")
    assert escalated["alert_id"] == fired["alert_id"]
    assert escalated["severity"] == "critical"
    assert _time(escalated) == at(first, 12)
    assert duty_room.changes("deescalated") == []
    (resolved,) = duty_room.notices("resolved")
    assert resolved["alert_id"] == fired["alert_id"]
    assert _time(resolved) == at(third, 4)
    assert len(duty_room.events) == 3


def test_an_alert_firing_for_a_day_becomes_critical(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """Water one class worse than its target for more than `critical_after` (a day) escalates the
    same alert to critical by time alone, and it resolves once."""
    station = river_station("sc-lasting", "Jiangbei")
    first, second, third = local_day(3), local_day(2), local_day(1)
    class_iv = readings(nh3n=CLASS_IV)
    with ScenarioDaemon(tmp_path, mosquitto.port, [station], [duty_room]) as scenario:
        scenario.publish(
            [
                *day_of_reports(station, first, dict.fromkeys(HOURS, class_iv)),
                *day_of_reports(station, second, dict.fromkeys(HOURS, class_iv)),
                *day_of_reports(station, third),
            ]
        )
        scenario.settle()

    (fired,) = duty_room.notices("firing")
    assert fired["severity"] == "warning"
    (escalated,) = duty_room.changes("escalated")
    assert (escalated["alert_id"], escalated["severity"]) == (fired["alert_id"], "critical")
    assert _time(escalated) == at(second, 0)
    assert duty_room.changes("deescalated") == []
    (resolved,) = duty_room.notices("resolved")
    assert resolved["alert_id"] == fired["alert_id"]
    assert len(duty_room.events) == 3


def test_a_saturated_analyser_raises_an_alert_at_once(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """An NH3-N reading flagged T (over the analyser's range: at least this much) worse than the
    target alerts at the reading itself, as a water alert naming the saturated item, not a data one."""
    station = river_station("sc-saturated", "Shapingba")
    day = local_day(1)
    with ScenarioDaemon(tmp_path, mosquitto.port, [station], [duty_room]) as scenario:
        scenario.publish(day_of_reports(station, day, {8: readings(nh3n=(2.0, "T"))}))
        scenario.settle()

    (fired,) = duty_room.notices("firing")
    assert (fired["rule"], fired["station"]["id"]) == ("water_quality", station.id)
    assert _time(fired) == at(day, 8)
    assert fired["primary_pollutants"] == ["nh3n"]
    assert "nh3n:saturated" in fired["values"]
    assert fired["severity"] == "warning"  # one reading: provisional, whatever its class
    assert duty_room.of(category="data") == []
    assert duty_room.notices("resolved") == []  # a T result is a lower bound of the day's value
    # Once the day has four results (12:00, the T one counting as in the method) its value is at
    # least the T result's, class V: two classes worse than III, so the same alert escalates.
    (escalated,) = duty_room.changes("escalated")
    assert (escalated["alert_id"], escalated["severity"], _time(escalated)) == (
        fired["alert_id"],
        "critical",
        at(day, 12),
    )
    assert len(duty_room.events) == 2


def test_data_problems_raise_data_alerts_for_the_maintenance_crew(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """Reports flagged B (communication fault) raise one `no_valid_data` alert at once, D (instrument
    fault) once it has lasted an hour, a single M (maintenance) none; each routed by `category="data"`
    to the maintenance crew and never to the duty room, none a water alert (not even a B value past
    the emergency threshold), each resolved by the next valid report. The duty room still gets the
    water alerts."""
    link_down = river_station("sc-link-down", "Nanan")
    analyser_fault = river_station("sc-analyser-fault", "Nanan")
    maintained = river_station("sc-maintained", "Nanan")
    spiking = river_station("sc-spike-2", "Nanan")
    day = local_day(1)
    link_fault = readings(flag="B", nh3n=5.0)
    instrument_fault = readings(flag="D")
    with (
        Receiver("maintenance") as maintenance,
        ScenarioDaemon(
            tmp_path,
            mosquitto.port,
            [link_down, analyser_fault, maintained, spiking],
            [duty_room, maintenance],
            notify={
                "routes": [{"matchers": ['category="data"'], "receivers": ["maintenance"]}],
                "default_receivers": ["duty-room"],
            },
        ) as scenario,
    ):
        scenario.publish(
            [
                *day_of_reports(link_down, day, {8: link_fault, 12: link_fault, 16: link_fault}),
                *day_of_reports(analyser_fault, day, {8: instrument_fault, 12: instrument_fault}),
                *day_of_reports(maintained, day, {8: readings(flag="M")}),
                *day_of_reports(spiking, day, {8: readings(nh3n=SPIKE)}),
            ]
        )
        scenario.settle()

    expected = {link_down.id: (at(day, 8), at(day, 20)), analyser_fault.id: (at(day, 12), at(day, 16))}
    for station_id, (fired_at, resolved_at) in expected.items():
        (fired,) = maintenance.notices("firing", station_id=station_id)
        assert (fired["rule"], fired["kind"]) == ("no_valid_data", "data_availability")
        assert fired["labels"]["category"] == "data"
        assert _time(fired) == fired_at
        (resolved,) = maintenance.notices("resolved", station_id=station_id)
        assert resolved["alert_id"] == fired["alert_id"]
        assert _time(resolved) == resolved_at
    assert len(maintenance.events) == 4
    assert duty_room.of(category="data") == []
    (water,) = duty_room.notices("firing")
    assert (water["rule"], water["station"]["id"]) == ("water_quality", spiking.id)
    assert {e["station"]["id"] for e in duty_room.all()} == {spiking.id}


def test_a_district_below_its_compliance_threshold_for_the_month_is_one_regional_alert(
    tmp_path: Path, mosquitto: MosquittoServer, duty_room: Receiver
) -> None:
    """Over the last month, one of a district's three sections misses its target every day (rate
    2/3 < 0.8) while another district's three meet theirs: after the daily assessments, one
    `district_compliance` alert fires for the first district and none for the other, whatever
    today's date (the month to date is judged once 7 days are stored)."""
    bad = [river_station(f"sc-bad-{n}", "Dadukou") for n in (1, 2, 3)]
    good = [river_station(f"sc-good-{n}", "Banan") for n in (1, 2, 3)]
    days = [local_day(back) for back in range(35, 0, -1)]
    class_iv = readings(nh3n=CLASS_IV)
    reports = [
        Report(s, at(day, hour), class_iv if s is bad[0] else readings())
        for day in days
        for hour in HOURS
        for s in (*bad, *good)
    ]
    with ScenarioDaemon(tmp_path, mosquitto.port, [*bad, *good], [duty_room], catch_up_days=31) as scenario:
        scenario.publish(reports)
        assessed = scenario.assess()
        scenario.settle()

    assert len(assessed) == 32, assessed  # catch_up_days back from the newest due day
    assert _judged_months(assessed), assessed
    regional = duty_room.of(kind="regional_period")
    (fired,) = [e for e in regional if e["status"] == "firing"]
    assert fired["rule"] == "district_compliance"
    assert fired["labels"]["district"] == "Dadukou"
    assert fired["values"]["compliance_rate"] == pytest.approx(2 / 3)
    assert fired["values"]["assessable"] == 3
    assert fired["severity"] == "warning"
    assert [e for e in regional if e is not fired] == []
    assert duty_room.of(district="Banan") == []


def _judged_months(assessed: list[str]) -> set[str]:
    """Months with at least 7 assessed days (the rule's `min_days`): at least one whatever the date."""
    by_month: dict[str, int] = {}
    for day in map(date.fromisoformat, assessed):
        by_month[day.strftime("%Y-%m")] = by_month.get(day.strftime("%Y-%m"), 0) + 1
    return {month for month, count in by_month.items() if count >= 7}
