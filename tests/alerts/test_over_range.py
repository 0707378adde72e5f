"""A reading flagged T (above the analyser's range) is "at least this value" for the exceedance rule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter

from alerts.rules import RuleConfig, make_rule
from alerts.rules.base import Condition, Finding, View
from alerts.windows import Admission, StationWindow
from config.registry import Registry
from config.standards import default_standard
from config.times import ns, to_ns
from ingest.model import DataFlag, Reading
from tests.alerts.engine_support import T0, reading, water
from tests.helpers import station

ST = station("st-1", target_class="II")
OVER_RANGE = DataFlag.OVER_RANGE


def exceedance(readings: Sequence[Reading], **config: Any) -> dict[str | None, Finding]:
    """The exceedance rule's findings by parameter, evaluated at the newest reading's time."""
    rule = make_rule(TypeAdapter(RuleConfig).validate_python({"name": "r", "kind": "exceedance", **config}))
    window = StationWindow("st-1", ns(timedelta(days=3)))
    for r in sorted(readings, key=lambda r: r.time_ns):
        admission = window.admit(r, ns(timedelta(days=1)))
        if admission in (Admission.NEW, Admission.LATE):
            window.add(r, admission)
    at = max(r.time_ns for r in readings)
    view = View(at, default_standard(), Registry([ST]), {"st-1": window}, to_ns(T0), station_id="st-1")
    return {f.parameter: f for f in rule.evaluate(view)}


def test_a_saturated_analyser_fires_on_its_lower_bound() -> None:
    """Clean NH3-N, then T at 10 mg/L: the alert fires on 10 (flag T), not on the older clean value."""
    later = T0 + timedelta(hours=4)
    finding = exceedance([*water(T0, nh3n=0.3), reading("nh3n", 10.0, later, flag=OVER_RANGE)])["nh3n"]
    assert finding.condition is Condition.FIRING
    assert [(e.value, e.flag) for e in finding.evidence] == [(10.0, OVER_RANGE)]


def test_a_lower_bound_within_the_limit_never_clears() -> None:
    """A firing NH3-N followed by T at 0.4 (under the class II limit) holds: the real value may be higher."""
    later = T0 + timedelta(hours=4)
    finding = exceedance([*water(T0, nh3n=1.8), reading("nh3n", 0.4, later, flag=OVER_RANGE)])["nh3n"]
    assert finding.condition is Condition.HOLD
    measured = exceedance([*water(T0, nh3n=1.8), reading("nh3n", 0.4, later)])["nh3n"]
    assert measured.condition is Condition.CLEAR


def test_other_flags_are_still_not_judged() -> None:
    """A fault (D) or a link failure (B) after clean data leaves the clean value in force."""
    later = T0 + timedelta(hours=4)
    for flag in (DataFlag.FAULT, DataFlag.COMMS):
        finding = exceedance([*water(T0, nh3n=0.3), reading("nh3n", 10.0, later, flag=flag)])["nh3n"]
        assert (finding.condition, finding.evidence[0].value) == (Condition.CLEAR, 0.3)


def test_rolling_means_leave_lower_bounds_out() -> None:
    """With a window, the mean is of N values only: a T value neither raises nor lowers it."""
    readings = [*water(T0, nh3n=0.3), reading("nh3n", 10.0, T0 + timedelta(hours=1), flag=OVER_RANGE)]
    finding = exceedance(readings, window="PT4H")["nh3n"]
    assert (finding.condition, finding.evidence[0].value, finding.evidence[0].samples) == (
        Condition.CLEAR,
        0.3,
        1,
    )
