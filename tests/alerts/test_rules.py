"""Every rule kind, evaluated alone on a view built from readings: what fires, what clears, what holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from alerts.rules import RULES, Rule, RuleConfig, make_rule
from alerts.rules.base import Condition, Finding, Scope, View
from alerts.windows import Admission, StationWindow
from config.registry import Registry, Station
from config.standards import default_standard
from config.times import ns, to_ns
from ingest.model import DataFlag, Reading
from tests.alerts.engine_support import T0, reading, report, water
from tests.helpers import station

_ADAPTER: TypeAdapter[RuleConfig] = TypeAdapter(RuleConfig)


def _rule(**config: Any) -> Rule:
    return make_rule(_ADAPTER.validate_python({"name": "r", **config}))


def _view(stations: Sequence[Station], readings: Sequence[Reading], at: datetime, **extra: Any) -> View:
    registry = Registry(list(stations))
    windows = {s.id: StationWindow(s.id, ns(timedelta(days=3))) for s in stations}
    for r in sorted(readings, key=lambda r: r.time_ns):
        window = windows[r.station_id]
        admission = window.admit(r, ns(timedelta(days=1)))
        if admission in (Admission.NEW, Admission.LATE):
            window.add(r, admission)
    return View(to_ns(at), default_standard(), registry, windows, extra.pop("started_ns", to_ns(T0)), **extra)


def _one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


ST = station("st-1", target_class="II", warning_level=180.0, guaranteed_level=183.0, kinds=("water", "hydro"))


def test_registry_lists_every_kind_once() -> None:
    """RULES maps each kind to its class, and every class names its scope."""
    assert set(RULES) == {
        "water_quality",
        "data_availability",
        "regional_period",
        "compliance_drop",
        "exceedance",
        "regional_compliance",
        "class_share",
        "silent_station",
        "instrument_fault",
        "water_level",
    }
    assert all(isinstance(cls.scope, Scope) for cls in RULES.values())


def test_compliance_drop_names_the_class_and_primary_pollutants() -> None:
    """A class II point with NH3-N of class V fires, naming nh3n; clean values clear."""
    rule = _rule(kind="compliance_drop")
    bad = _one(rule.evaluate(_view([ST], water(T0, nh3n=1.8), T0, station_id="st-1")))
    assert bad.condition is Condition.FIRING
    assert (bad.water_class, bad.primary_pollutants) == ("V", ("nh3n",))
    assert bad.station_id == "st-1"
    assert bad.parameter is None
    assert [e.parameter for e in bad.evidence] == ["nh3n"]
    assert "nh3n" in bad.description
    good = _one(rule.evaluate(_view([ST], water(T0), T0, station_id="st-1")))
    assert (good.condition, good.water_class) == (Condition.CLEAR, "II")


def test_compliance_drop_on_a_rolling_mean() -> None:
    """With a window, the class comes from the mean: one high value among low ones stays compliant."""
    readings = [
        *water(T0, nh3n=0.2),
        *water(T0 + timedelta(hours=1), nh3n=0.2),
        *water(T0 + timedelta(hours=2), nh3n=0.9),
    ]
    at = T0 + timedelta(hours=2)
    instant = _one(_rule(kind="compliance_drop").evaluate(_view([ST], readings, at, station_id="st-1")))
    mean = _one(
        _rule(kind="compliance_drop", window="PT4H").evaluate(_view([ST], readings, at, station_id="st-1"))
    )
    assert instant.condition is Condition.FIRING
    assert mean.condition is Condition.CLEAR
    assert mean.values["nh3n"] == pytest.approx(1.3 / 3)


def test_exceedance_against_the_target_class_limit_with_hysteresis() -> None:
    """NH3-N above the class II limit fires; just under it holds; under the margin clears; DO fires low."""
    rule = _rule(kind="exceedance", recovery_margin=0.1)

    def judge(**values: float) -> dict[str | None, Condition]:
        found = rule.evaluate(_view([ST], report(T0, values), T0, station_id="st-1"))
        return {f.parameter: f.condition for f in found}

    assert judge(nh3n=0.51)["nh3n"] is Condition.FIRING
    assert judge(nh3n=0.5)["nh3n"] is Condition.HOLD  # a value on the limit meets the class
    assert judge(nh3n=0.45)["nh3n"] is Condition.CLEAR
    assert judge(do=5.9)["do"] is Condition.FIRING  # DO is a minimum
    assert judge(ph=9.2)["ph"] is Condition.FIRING
    assert "temp" not in judge(temp=35.0)  # water temperature is not assessed


def test_exceedance_with_a_fixed_threshold() -> None:
    """A fixed threshold watches a code the standard has no limit for, above or below."""
    above = _rule(kind="exceedance", parameters=["turb"], threshold=500)
    below = _rule(kind="exceedance", parameters=["do"], threshold=4, direction="below")
    view = _view([ST], [reading("turb", 650, T0), reading("do", 3.5, T0)], T0, station_id="st-1")
    assert _one(above.evaluate(view)).condition is Condition.FIRING
    assert _one(below.evaluate(view)).condition is Condition.FIRING
    with pytest.raises(ValidationError, match="parameters"):
        _ADAPTER.validate_python({"name": "r", "kind": "exceedance", "threshold": 1})


def _district_points() -> tuple[list[Station], list[Reading]]:
    stations = [
        station("a-1", district="A", basin="B1"),
        station("a-2", district="A", basin="B1"),
        station("b-1", district="B", basin="B1"),
        station("b-2", district="B", basin="B2", kinds=("hydro",)),
    ]
    readings = [
        *water(T0, station_id="a-1", nh3n=0.3),
        *water(T0, station_id="a-2", nh3n=2.5),  # worse than V against target III
        *water(T0, station_id="b-1", nh3n=0.3),
    ]
    return stations, readings


def test_regional_compliance_per_district() -> None:
    """The share of points meeting target fires per district below the threshold; hydrology stations do not count."""
    stations, readings = _district_points()
    found = {
        f.group: f
        for f in _rule(kind="regional_compliance", group_by="district").evaluate(
            _view(stations, readings, T0)
        )
    }
    assert found[("district", "A")].condition is Condition.FIRING
    assert found[("district", "A")].values["share_meeting_target"] == 0.5
    assert found[("district", "A")].context["a-2"] == "劣V (target III)"
    assert found[("district", "B")].condition is Condition.CLEAR
    assert found[("district", "B")].values["assessed"] == 1.0
    half = _rule(kind="regional_compliance", group_by="basin", min_share=0.6, recovery_margin=0.2)
    basin = _one(half.evaluate(_view(stations, readings, T0)))
    assert basin.group == ("basin", "B1")
    assert basin.condition is Condition.HOLD  # 2 of 3: above 0.6, below 0.6 + 0.2


def test_class_share_good_and_worse_than_v() -> None:
    """Class I–III share below its minimum or worse-than-V share above its maximum fires."""
    stations, readings = _district_points()
    good = _one(
        _rule(kind="class_share", group_by="basin", min_good_share=0.5).evaluate(
            _view(stations, readings, T0)
        )
    )
    bad = _one(
        _rule(kind="class_share", group_by="basin", max_worse_than_v_share=0.0).evaluate(
            _view(stations, readings, T0)
        )
    )
    assert good.condition is Condition.CLEAR
    assert good.values["share_class_i_iii"] == pytest.approx(2 / 3)
    assert bad.condition is Condition.FIRING
    assert bad.values["share_worse_than_v"] == pytest.approx(1 / 3)
    with pytest.raises(ValidationError, match="min_good_share"):
        _ADAPTER.validate_python({"name": "r", "kind": "class_share"})


def test_silent_station_counts_from_engine_start_for_never_seen_stations() -> None:
    """A station that never reported is silent once the threshold has passed since the engine started."""
    rule = _rule(kind="silent_station", intervals=3)
    quiet = station("st-1", report_interval_s=600)
    early = _one(rule.evaluate(_view([quiet], [], T0 + timedelta(minutes=29), station_id="st-1")))
    late = _one(rule.evaluate(_view([quiet], [], T0 + timedelta(minutes=30), station_id="st-1")))
    assert early.condition is Condition.HOLD
    assert late.condition is Condition.FIRING
    assert "never reported" in late.description


def test_silent_station_after_restart_and_on_a_reading() -> None:
    """A stale station fires only a threshold after this process started; a fresh reading clears it."""
    rule = _rule(kind="silent_station", after="PT30M")
    last = water(T0)
    restarted = to_ns(T0 + timedelta(hours=5))
    held = _one(
        rule.evaluate(
            _view([ST], last, T0 + timedelta(hours=5, minutes=10), station_id="st-1", started_ns=restarted)
        )
    )
    fired = _one(
        rule.evaluate(
            _view([ST], last, T0 + timedelta(hours=5, minutes=30), station_id="st-1", started_ns=restarted)
        )
    )
    fresh = _one(
        rule.evaluate(_view([ST], water(T0 + timedelta(hours=6)), T0 + timedelta(hours=6), station_id="st-1"))
    )
    assert (held.condition, fired.condition, fresh.condition) == (
        Condition.HOLD,
        Condition.FIRING,
        Condition.CLEAR,
    )


def test_instrument_fault_watches_its_flags_only() -> None:
    """Maintenance fires the default instrument_fault flags; calibration only a rule that lists C."""
    faults = _rule(kind="instrument_fault")
    calibration = _rule(kind="instrument_fault", flags=["C"])
    maintenance = [reading("do", 8.0, T0, flag=DataFlag.MAINTENANCE), reading("ph", 7.5, T0)]
    calibrating = [reading("ph", 7.0, T0, flag=DataFlag.CALIBRATION)]
    found = _one(faults.evaluate(_view([ST], maintenance, T0, station_id="st-1")))
    assert found.condition is Condition.FIRING
    assert found.context == {"do": "M"}
    assert _one(faults.evaluate(_view([ST], calibrating, T0, station_id="st-1"))).condition is Condition.CLEAR
    assert (
        _one(calibration.evaluate(_view([ST], calibrating, T0, station_id="st-1"))).condition
        is Condition.FIRING
    )
    with pytest.raises(ValueError, match="do not mean an instrument fault"):
        _rule(kind="instrument_fault", flags=["N"])


def test_water_level_warning_and_guaranteed_levels() -> None:
    """Reaching the warning level fires, the hysteresis band holds, below the margin clears."""
    warning = _rule(kind="water_level", condition="warning", recovery_margin=0.2)
    guaranteed = _rule(kind="water_level", condition="guaranteed")

    def level(rule: Any, value: float) -> Condition:
        return _one(
            rule.evaluate(_view([ST], [reading("level", value, T0)], T0, station_id="st-1"))
        ).condition

    assert level(warning, 180.0) is Condition.FIRING
    assert level(warning, 179.9) is Condition.HOLD
    assert level(warning, 179.7) is Condition.CLEAR
    assert level(guaranteed, 182.0) is Condition.CLEAR
    assert level(guaranteed, 183.5) is Condition.FIRING
    no_levels = station("st-1")
    assert warning.evaluate(_view([no_levels], [reading("level", 999.0, T0)], T0, station_id="st-1")) == []


def test_water_level_rise_rate() -> None:
    """A rise faster than the rate over the window fires; a slow rise clears; too short a span is not judged."""
    rule = _rule(kind="water_level", condition="rise_rate", rate_m_per_h=0.5, rate_window="PT1H")

    def rising(step_m: float, minutes: Sequence[int]) -> list[Finding]:
        readings = [
            reading("level", 170 + step_m * k, T0 + timedelta(minutes=m)) for k, m in enumerate(minutes)
        ]
        at = T0 + timedelta(minutes=minutes[-1])
        return rule.evaluate(_view([ST], readings, at, station_id="st-1"))

    fast = _one(rising(0.2, [0, 15, 30, 45, 60]))
    assert fast.condition is Condition.FIRING
    assert fast.values["rise_m_per_h"] == pytest.approx(0.8)
    assert _one(rising(0.05, [0, 15, 30, 45, 60])).condition is Condition.CLEAR
    assert rising(0.5, [0, 10]) == []
    with pytest.raises(ValidationError, match="rate_m_per_h"):
        _ADAPTER.validate_python({"name": "r", "kind": "water_level", "condition": "rise_rate"})


def test_rules_respect_their_station_match() -> None:
    """`match` limits a rule to stations with those labels."""
    config = _ADAPTER.validate_python({"name": "r", "kind": "compliance_drop", "match": {"district": "A"}})
    assert config.applies_to(station("x", district="A"))
    assert not config.applies_to(station("y", district="B"))
    with pytest.raises(ValidationError, match="cannot be overridden"):
        _ADAPTER.validate_python({"name": "r", "kind": "compliance_drop", "labels": {"severity": "x"}})
