"""exceedance: one parameter beyond the limit of the station's target class, or a fixed threshold.

One alert per (station, parameter). Without `threshold`, the limit is the GB 3838 limit of the
station's target class on its water body: `max` items (CODMn, NH3-N, TP...) fire above it, DO
(a `min` item) below it, pH outside 6–9; by default every item the standard assesses on that water
body is watched (TN of lakes and reservoirs included, as it is assessed separately there).
With `threshold` (and `parameters`), the value fires above it, or below it with
`direction: below` — for codes the standard has no limit for, such as turbidity.

Hysteresis: `recovery_margin` is relative; a value must come back `margin` inside the limit to
count as recovered (0.1: below 90 % of a maximum, above 110 % of a minimum). Between the two the
finding is HOLD and the alert keeps its state. Values are the newest normal-flag readings or,
with `window`, rolling means, as for compliance_drop.

A reading flagged T (above the analyser's upper range) counts as "at least this value": beyond
the limit it fires (a spill that saturates the analyser raises the alert), within it it holds,
never clears (the real value may be higher). Rolling means leave T values out.

Example:
    rules:
      - {name: exceedance, kind: exceedance, recovery_margin: 0.05}
      - {name: turbidity_high, kind: exceedance, parameters: [turb], threshold: 500, severity: info}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from alerts.rules.base import (
    Condition,
    Finding,
    RuleConfigBase,
    Scope,
    View,
    fmt,
    item_label,
    unit_of,
)
from alerts.windows import Evidence
from config.registry import Station
from config.standards import Assessment, Standard
from config.times import ns


class ExceedanceConfig(RuleConfigBase):
    kind: Literal["exceedance"] = Field("exceedance", description="Rule kind.")
    parameters: tuple[str, ...] | None = Field(
        None, description="Codes to watch; every item the standard assesses when absent."
    )
    threshold: float | None = Field(None, description="Fixed threshold instead of the target-class limit.")
    direction: Literal["above", "below"] = Field("above", description="Which side of `threshold` fires.")
    recovery_margin: float = Field(
        0.0, ge=0, lt=1, description="Relative margin inside the limit to recover."
    )
    window: timedelta | None = Field(None, description="Rolling mean window; the newest values when absent.")
    max_age: timedelta = Field(timedelta(days=1), description="Newest values older than this are not judged.")

    @model_validator(mode="after")
    def _threshold_needs_parameters(self) -> ExceedanceConfig:
        if self.threshold is not None and not self.parameters:
            raise ValueError("a fixed threshold needs `parameters`")
        return self


# (low, high, what, label, unit, range text, limit values): what `_judge` says besides the value.
_Limits = tuple[float | None, float | None, str, str, str, str, dict[str, float]]


class ExceedanceRule:
    kind: ClassVar[str] = "exceedance"
    scope: ClassVar[Scope] = Scope.STATION

    def __init__(self, config: ExceedanceConfig) -> None:
        self.config = config
        self._window_ns = None if config.window is None else ns(config.window)
        self._max_age_ns = ns(config.max_age)
        # Pure functions of the standard and the station's water body and target, asked at every
        # evaluation; kept for one standard at a time.
        self._standard: Standard | None = None
        self._codes: dict[str, tuple[str, ...]] = {}
        self._limits: dict[tuple[str, str, str], _Limits | None] = {}

    def evaluate(self, view: View) -> list[Finding]:
        station = view.station
        if view.standard is not self._standard:
            self._standard, self._codes, self._limits = view.standard, {}, {}
        codes = self.config.parameters
        if not codes:
            codes = self._codes.get(station.water_body)
            if codes is None:
                codes = self._codes[station.water_body] = _assessed(view.standard, station)
        values = view.window.values(codes, view.at_ns, window_ns=self._window_ns, max_age_ns=self._max_age_ns)
        findings = []
        for evidence in values.values():
            finding = self._judge(view.standard, station, evidence)
            if finding is not None:
                findings.append(finding)
        return findings

    def _judge(self, standard: Standard, station: Station, evidence: Evidence) -> Finding | None:
        key = (station.water_body, station.target_class.value, evidence.parameter)
        if key in self._limits:
            limits = self._limits[key]
        else:
            limits = self._limits[key] = self._limits_of(standard, station, evidence.parameter)
        if limits is None:
            return None
        low, high, what, label, unit, range_text, limit_values = limits
        value = evidence.value
        margin = self.config.recovery_margin
        if (low is not None and value < low) or (high is not None and value > high):
            condition = Condition.FIRING
        elif (
            (low is None or value >= low * (1 + margin))
            and (high is None or value <= high * (1 - margin))
            and not evidence.flag.is_lower_bound  # T: the real value may be higher still
        ):
            condition = Condition.CLEAR
        else:
            condition = Condition.HOLD
        code = evidence.parameter
        state = "超标 / beyond" if condition is Condition.FIRING else "within"
        return Finding(
            condition,
            evidence.time_ns,
            summary=f"{station.name}: {label} {fmt(value)} {unit} {state} {what}",
            description=f"{station.name} ({station.id}): {label} is {fmt(value)} {unit}; {what} is "
            f"{range_text}.",
            station_id=station.id,
            parameter=code,
            values={code: value, **limit_values},
            evidence=(evidence,),
        )

    def _limits_of(self, standard: Standard, station: Station, code: str) -> _Limits | None:
        """The bounds of a code and the texts that describe them (values aside)."""
        bounds = self._bounds(standard, station, code)
        if bounds is None:
            return None
        low, high, what = bounds
        unit = unit_of(standard, code)
        limit_values = {f"{code}_low": low} if low is not None else {}
        if high is not None:
            limit_values[f"{code}_high"] = high
        return low, high, what, item_label(standard, code), unit, _range_text(low, high, unit), limit_values

    def _bounds(
        self, standard: Standard, station: Station, code: str
    ) -> tuple[float | None, float | None, str] | None:
        """(low, high, name) of the acceptable range, or None when nothing applies to the code."""
        threshold = self.config.threshold
        if threshold is not None:
            if self.config.direction == "above":
                return None, threshold, f"the threshold {fmt(threshold)}"
            return threshold, None, f"the threshold {fmt(threshold)}"
        item = standard.items.get(code)
        if item is None or item.kind == "none":
            return None
        target = station.target_class
        what = f"the class {target.value} limit (GB 3838 {target.value}类限值)"
        if item.kind == "range":
            return item.low, item.high, what
        limits = item.limits_for(station.water_body)
        assert limits is not None  # the standard's loader guarantees limits on max and min items
        limit = limits[standard.classes.index(target)]
        return (None, limit, what) if item.kind == "max" else (limit, None, what)


def _assessed(standard: Standard, station: Station) -> tuple[str, ...]:
    return tuple(
        code
        for code, item in standard.items.items()
        if item.kind != "none" and item.assessment_for(station.water_body) is not Assessment.NOT_ASSESSED
    )


def _range_text(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{fmt(low)}–{fmt(high)} {unit}".rstrip()
    if high is not None:
        return f"at most {fmt(high)} {unit}".rstrip()
    assert low is not None
    return f"at least {fmt(low)} {unit}".rstrip()
