"""The data_availability rule (`no_valid_data` in the defaults) through the service, fake clock.

B (link down) fires at once; D, F, M after an hour and C after two (`persist`, per flag), measured
in station time from the run's first flagged reading; a valid reading ends the run and, with the
default `recovery: {samples: 1}`, resolves the alert. Data alerts are `category: data`, water ones
`category: water`, and a station without valid data raises no water-quality alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from alerts.config import AlertsConfig
from alerts.events import AlertEvent
from alerts.lifecycle import AlertState
from alerts.service import AlertService
from config.registry import Registry
from ingest.model import DataFlag, Reading
from tests.alerts.engine_support import (
    CLEAN,
    T0,
    FakeClock,
    events,
    make_service,
    one_station_registry,
    reading,
    rules_config,
    water,
)
from tests.helpers import station

DATA: Final = "no_valid_data"
H: Final = timedelta(hours=1)
B: Final = DataFlag.COMMS
D: Final = DataFlag.FAULT


def _service(
    tmp_path: Path, config: AlertsConfig | None = None, registry: Registry | None = None
) -> AlertService:
    """The default rules (no_valid_data among them) unless `config` is given."""
    return make_service(tmp_path, registry or one_station_registry(), config or AlertsConfig(), FakeClock())


def _da_only(**settings: Any) -> AlertsConfig:
    return rules_config({"name": DATA, "kind": "data_availability", "recovery": {"samples": 1}, **settings})


def flagged(
    at: datetime, flag: DataFlag, *, station_id: str = "st-1", values: Mapping[str, float] | None = None
) -> list[Reading]:
    """A report whose every item carries `flag` (values: CLEAN, some replaced)."""
    return [
        reading(code, value, at, station_id=station_id, flag=flag)
        for code, value in {**CLEAN, **(values or {})}.items()
    ]


def _of(service: AlertService, rule: str) -> list[AlertEvent]:
    return [e for e in events(service) if e.rule == rule]


def _statuses(service: AlertService, rule: str = DATA) -> list[str]:
    return [e.status for e in _of(service, rule)]


# --- when it fires --------------------------------------------------------------------------------
def test_b_fires_at_once(tmp_path: Path) -> None:
    """A report flagged B (link down) fires one no_valid_data warning on that reading."""
    service = _service(tmp_path)
    service.write(water(T0))
    service.write(flagged(T0 + H, B))
    [event] = _of(service, DATA)
    assert (event.status, event.severity, event.kind, event.event_at) == (
        "firing",
        "warning",
        "data_availability",
        T0 + H,
    )
    assert set(event.values) == set(CLEAN)  # every item lacks valid data, for 0 minutes so far
    assert set(event.values.values()) == {0.0}


def test_d_for_less_than_an_hour_is_nothing(tmp_path: Path) -> None:
    """D at T0 and 59 minutes later: a routine blip, below the 1 h persist."""
    service = _service(tmp_path)
    service.write(flagged(T0, D))
    service.write(flagged(T0 + timedelta(minutes=59), D))
    assert _statuses(service) == []
    assert service.engine.station_alerts("st-1") == []


def test_d_for_over_an_hour_fires(tmp_path: Path) -> None:
    """D at T0 and again 2 h later: the run has lasted 2 h, it fires on the second reading."""
    service = _service(tmp_path)
    service.write(flagged(T0, D))
    service.write(flagged(T0 + 2 * H, D))
    [event] = _of(service, DATA)
    assert (event.status, event.event_at) == ("firing", T0 + 2 * H)
    assert event.values == dict.fromkeys(CLEAN, 120.0)  # minutes without valid data
    [record] = service.engine.station_alerts("st-1")
    assert record.cause["context"] == dict.fromkeys(CLEAN, "D")


def test_d_at_exactly_the_persist_fires(tmp_path: Path) -> None:
    """A run of exactly 1 h has lasted the persist."""
    service = _service(tmp_path)
    service.write(flagged(T0, D))
    service.write(flagged(T0 + H, D))
    assert _statuses(service) == ["firing"]


def test_the_run_counts_from_its_first_flagged_reading(tmp_path: Path) -> None:
    """Valid, then D at 1 h, 1.5 h and 2.5 h: it fires at 2.5 h (1.5 h of D), not at 1.5 h."""
    service = _service(tmp_path)
    service.write(water(T0))
    service.write(flagged(T0 + H, D))
    service.write(flagged(T0 + 1.5 * H, D))
    assert _statuses(service) == []
    service.write(flagged(T0 + 2.5 * H, D))
    [event] = _of(service, DATA)
    assert (event.event_at, event.values["nh3n"]) == (T0 + 2.5 * H, 90.0)


def test_a_valid_reading_breaks_a_run(tmp_path: Path) -> None:
    """D, valid, D 50 minutes apart: no run lasts an hour, nothing fires."""
    service = _service(tmp_path)
    service.write(flagged(T0, D))
    service.write(water(T0 + timedelta(minutes=50)))
    service.write(flagged(T0 + timedelta(minutes=100), D))
    assert _statuses(service) == []


@pytest.mark.parametrize(
    ("flag", "quiet", "fires"),
    [
        (DataFlag.STOPPED, timedelta(minutes=50), H),
        (DataFlag.MAINTENANCE, timedelta(minutes=50), H),
        (DataFlag.CALIBRATION, timedelta(minutes=110), 2 * H),
    ],
)
def test_default_persist_per_flag(tmp_path: Path, flag: DataFlag, quiet: timedelta, fires: timedelta) -> None:
    """F and M fire after an hour, C (calibration) only after two."""
    service = _service(tmp_path)
    service.write(flagged(T0, flag))
    service.write(flagged(T0 + quiet, flag))
    assert _statuses(service) == []
    service.write(flagged(T0 + fires, flag))
    [event] = _of(service, DATA)
    assert event.event_at == T0 + fires


def test_persist_is_configurable_per_flag(tmp_path: Path) -> None:
    """persist {D: PT10M}: D for 15 minutes fires; B, not listed, never does."""
    service = _service(tmp_path, _da_only(persist={"D": "PT10M"}))
    service.write(flagged(T0, B))
    service.write(flagged(T0 + 3 * H, B))
    assert _statuses(service) == []
    service.write(flagged(T0 + 4 * H, D))
    service.write(flagged(T0 + 4 * H + timedelta(minutes=15), D))
    assert _statuses(service) == ["firing"]


def test_one_item_without_valid_data_is_enough(tmp_path: Path) -> None:
    """Only NH3-N flagged B, the rest valid: the alert lists NH3-N alone."""
    service = _service(tmp_path)
    service.write([*water(T0)[:-1], reading("nh3n", 0.0, T0, flag=B)])
    [event] = _of(service, DATA)
    assert event.values == {"nh3n": 0.0}


# --- when it clears -------------------------------------------------------------------------------
def test_a_valid_reading_clears(tmp_path: Path) -> None:
    """B, then a valid report: resolved on that one reading (recovery: 1 sample by default)."""
    service = _service(tmp_path)
    service.write(flagged(T0, B))
    service.write(water(T0 + H))
    assert _statuses(service) == ["firing", "resolved"]
    resolved = _of(service, DATA)[-1]
    assert (resolved.event_at, resolved.ends_at) == (T0 + H, T0 + H)
    [record] = service.engine.station_alerts("st-1")
    assert record.state is AlertState.RESOLVED


def test_it_clears_only_once_every_item_is_valid(tmp_path: Path) -> None:
    """B on every item, then only NH3-N valid: still firing; once all are valid, resolved."""
    service = _service(tmp_path)
    service.write(flagged(T0, B))
    service.write([reading("nh3n", 0.3, T0 + H)])
    assert _statuses(service) == ["firing"]
    service.write(water(T0 + 2 * H))
    assert _statuses(service) == ["firing", "resolved"]


def test_a_t_reading_is_valid_data(tmp_path: Path) -> None:
    """A T result is a measurement: after B it clears the data alert (and the water rule speaks)."""
    service = _service(tmp_path)
    service.write([*water(T0)[:-1], reading("nh3n", 0.0, T0, flag=B)])
    service.write([*water(T0 + H)[:-1], reading("nh3n", 3.0, T0 + H, flag=DataFlag.OVER_RANGE)])
    assert _statuses(service) == ["firing", "resolved"]
    assert _statuses(service, "water_quality") == ["firing"]


def test_fires_again_after_recovery(tmp_path: Path) -> None:
    """B, valid, B again a day later: two episodes of the same alert."""
    service = _service(tmp_path)
    service.write(flagged(T0, B))
    service.write(water(T0 + H))
    service.write(flagged(T0 + 24 * H, B))
    fired = _of(service, DATA)
    assert [e.status for e in fired] == ["firing", "resolved", "firing"]
    assert len({e.alert_id for e in fired}) == 1


# --- data problems are not water problems ---------------------------------------------------------
def test_categories_tell_data_from_water(tmp_path: Path) -> None:
    """no_valid_data is labelled category data, water_quality category water."""
    registry = Registry([station(sid, target_class="II", report_interval_s=3600) for sid in ("st-1", "st-2")])
    service = _service(tmp_path, registry=registry)
    service.write([*flagged(T0, B), *water(T0, station_id="st-2", nh3n=0.8)])
    [data] = _of(service, DATA)
    [water_alert] = _of(service, "water_quality")
    assert (data.labels["category"], data.labels["station_id"]) == ("data", "st-1")
    assert (water_alert.labels["category"], water_alert.labels["station_id"]) == ("water", "st-2")


def test_a_station_with_b_has_no_water_quality_alert(tmp_path: Path) -> None:
    """B readings carrying NH3-N 9.9 (劣V and past the emergency, were they valid): a data alert only."""
    service = _service(tmp_path)
    service.write(water(T0))
    service.write(flagged(T0 + H, B, values={"nh3n": 9.9, "do": 0.5}))
    service.write(flagged(T0 + 2 * H, B, values={"nh3n": 9.9, "do": 0.5}))
    assert [(e.rule, e.status) for e in events(service)] == [(DATA, "firing")]


def test_a_day_without_valid_data_does_not_resolve_a_water_alert(tmp_path: Path) -> None:
    """A firing water alert, then a whole local day of B: not assessable, never compliant, so the
    water alert holds (firing), while the data alert fires."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    next_day = T0 + 16 * H  # 00:00 on 2 July in Shanghai
    for i in range(0, 24, 4):
        service.write(flagged(next_day + i * H, B))
    assert _statuses(service, "water_quality") == ["firing"]
    assert _statuses(service) == ["firing"]
    by_rule = {r.rule: r.state for r in service.engine.station_alerts("st-1")}
    assert by_rule == {"water_quality": AlertState.FIRING, DATA: AlertState.FIRING}


@pytest.mark.parametrize("flag", [B, D, DataFlag.STOPPED, DataFlag.MAINTENANCE])
def test_one_item_without_valid_data_keeps_the_water_alert_from_clearing(
    tmp_path: Path, flag: DataFlag
) -> None:
    """NH3-N out on day 1; all of day 2 NH3-N is flagged (B, D, F or M) while the other items are
    clean: without a valid NH3-N result the section is not assessable, so the water alert holds
    (the clean items do not clear it) and the data alert speaks for the station."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    next_day = T0 + 16 * H  # 00:00 on 2 July in Shanghai
    for i in range(0, 24, 4):
        at = next_day + i * H
        service.write([*water(at)[:-1], reading("nh3n", 0.3, at, flag=flag)])
    assert _statuses(service, "water_quality") == ["firing"]
    assert _statuses(service) == ["firing"]
    by_rule = {r.rule: r.state for r in service.engine.station_alerts("st-1")}
    assert by_rule == {"water_quality": AlertState.FIRING, DATA: AlertState.FIRING}


def test_an_item_flagged_after_valid_results_today_lets_the_water_alert_clear(tmp_path: Path) -> None:
    """NH3-N out on day 1; on day 2 a clean NH3-N result at 00:00, then maintenance (M) from 04:00:
    the day has a valid NH3-N value (0.3, within class II), so the section is assessable and the
    water alert resolves on its second clean finding, while the data alert fires for the M run."""
    service = _service(tmp_path)
    service.write(water(T0, nh3n=0.8))
    next_day = T0 + 16 * H
    service.write(water(next_day))
    for i in (4, 8, 12):
        at = next_day + i * H
        service.write([*water(at)[:-1], reading("nh3n", 0.0, at, flag=DataFlag.MAINTENANCE)])
    assert _statuses(service, "water_quality") == ["firing", "resolved"]
    assert _of(service, "water_quality")[-1].event_at == next_day + 4 * H
    assert _statuses(service) == ["firing"]
