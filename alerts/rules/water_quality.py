"""water_quality: one alert per station for its water, judged as the assessment method judges.

One identity per station (never per item or per rule): every item that puts the section out of
its target is listed in the same alert, with its basis, value, class and multiple, and the alert is
updated as the event evolves. The station's provisional period values (`alerts.station_values`:
the daily value so far by default, `AlertsConfig.basis`) are compared with the limits of its
target class; a single reading alerts only when

- it carries flag T (over the analyser's range: the real value is at least this much) and is
  worse than the target (`over_range`), or
- it passes the item's emergency threshold (`emergency_multiple` times the class V limit, or
  `emergency_limits`): an acute event no daily mean should be allowed to dilute.

Severity follows how far and how long: the rule's `severity` (warning) for an item one class worse
than the target; critical when an item is 劣V, `critical_classes_worse` classes worse, past an
emergency threshold, or when the alert has been firing for `critical_after`. A day's value of
fewer than `provisional_results` results (the first reports of a day) or a single T reading is
provisional: it can fire a warning but never a critical alert by class, so one spike in the
day's first report is a warning like a spike at any other hour. A change of severity
is a transition of the same alert (escalated / de-escalated), not a new alert; it de-escalates
only once the milder findings have lasted `deescalate_after`, so a daily mean wavering across a
class limit does not page anyone twice.

Items: those the standard assesses for the station's water body. Lake and reservoir TN is assessed
separately by the method (reported beside the class, never setting it) and alerts only with
`lake_tn: true`: in the Three Gorges reservoir bays TN is routinely above 1.0 mg/L, and an alert
that never clears is muted. FIRING while any item is out; CLEAR when the items with a value are all
within the target and none is without valid data (flagged B/D/F/M with no valid result in the
period: the section is then not assessable, never compliant; the data_availability rule speaks
for it); HOLD otherwise, and without any value.

Example:
    rules:
      - {name: water_quality, kind: water_quality, critical_after: P1D, emergency_multiple: 2.0}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Final, Literal

from pydantic import Field

from alerts.classify import classify_value
from alerts.rules.base import Condition, Finding, RuleConfigBase, Scope, Severity, View, fmt
from alerts.station_values import ItemValues, StationValues
from config.registry import Station, WaterClass
from config.standards import Assessment, Standard
from ingest.model import DataFlag

_T: Final = DataFlag.OVER_RANGE
_BASIS_TEXT: Final = {"daily": "日均值", "monthly": "月均值", "saturated": "超量程", "emergency": "瞬时值"}
_INSTANT_BASES: Final = frozenset({"saturated", "emergency"})


class WaterQualityConfig(RuleConfigBase):
    kind: Literal["water_quality"] = Field("water_quality", description="Rule kind.")
    critical_classes_worse: int = Field(
        2, ge=1, le=5, description="An item this many classes worse than the target makes the alert critical."
    )
    critical_after: timedelta | None = Field(
        timedelta(days=1), description="An alert firing this long becomes critical; null: never by time."
    )
    deescalate_after: timedelta | None = Field(
        timedelta(hours=2),
        description="A critical alert turns back to warning only once milder findings have lasted this "
        "long (station time); null: at once.",
    )
    emergency_multiple: float = Field(
        2.0,
        ge=0,
        description="A single valid reading above this multiple of the class V limit (below the limit "
        "divided by it, for DO) alerts at once, critical; 0 disables.",
    )
    emergency_limits: dict[str, float] = Field(
        {}, description="Per-item emergency thresholds, in the item's unit, replacing the multiple."
    )
    over_range: bool = Field(True, description="A T-flagged reading worse than the target alerts at once.")
    lake_tn: bool = Field(False, description="Alert on lake and reservoir TN (assessed separately).")
    min_results: int = Field(1, ge=1, description="Valid results a period needs before its value is judged.")
    provisional_results: int = Field(
        4,
        ge=1,
        description="Until the period has this many results its value is provisional: it can fire a "
        "warning, but only an emergency reading makes the alert critical (the method's "
        "`min_results_per_day`, UNVERIFIED: 4 of the six 4-hourly results).",
    )
    instant_max_age: timedelta = Field(
        timedelta(days=1), description="A T or emergency reading older than this no longer alerts by itself."
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """An item as judged at one station: its limits against the target class and the emergency."""

    code: str
    kind: str  # max | min | range
    limit: float  # the target class's limit (range: unused)
    low: float
    high: float
    # A single valid reading outside [calm_low, calm_high] passes the emergency threshold; both
    # infinite when the item has none.
    calm_low: float = -math.inf
    calm_high: float = math.inf


@dataclass(frozen=True, slots=True)
class Out:
    """One item out of its target: on what basis, the value, its class and multiple (max items)."""

    code: str
    basis: str
    value: float
    water_class: WaterClass
    multiple: float | None
    # Single readings, or a period value of fewer than `provisional_results` results: it may fire
    # a warning, but only an emergency makes it critical.
    provisional: bool = False
    emergency: bool = False
    results: int = 0


class WaterQualityRule:
    kind: ClassVar[str] = "water_quality"
    scope: ClassVar[Scope] = Scope.STREAM

    def __init__(self, config: WaterQualityConfig) -> None:
        self.config = config
        # By (water body, target class): the stations that share them share their targets.
        self._targets: dict[tuple[str, WaterClass], dict[str, _Target]] = {}
        self._instant_max_age_ns = int(config.instant_max_age.total_seconds() * 1e9)

    def evaluate(self, view: View) -> list[Finding]:  # noqa: ARG002 - judged from period values (`judge`)
        return []

    def judge(
        self,
        station: Station,
        values: StationValues,
        at_ns: int,
        standard: Standard,
        basis: str,
        *,
        quiet: bool = False,
    ) -> list[Finding]:
        """The station's finding at `at_ns`; `quiet` (no alert is active) skips a clear one.

        Items are taken in the order the station reported them; the finding ranks them.
        """
        if "water" not in station.kinds:
            return []
        key = (station.water_body, station.target_class)
        targets = self._targets.get(key)
        if targets is None:
            targets = self._targets[key] = self._targets_of(station, standard)
        outs: list[Out] = []
        seen = 0
        blind = False
        min_results = self.config.min_results
        for code, item in values.items.items():
            target = targets.get(code)
            if target is None:
                continue
            in_period = item.period_start_ns <= at_ns < item.period_end_ns
            if item.problem_flag is not None and not (in_period and item.count >= min_results):
                blind = True  # no valid value of this item: the section cannot be called compliant
            if in_period and (item.count >= min_results or item.t_max is not None):
                value = item.period_value()
                if value is not None:
                    seen += 1
                    if _worse(target, value):
                        out = _out(station, standard, target, basis, value, t_only=item.count == 0)
                        results = item.results
                        provisional = results < self.config.provisional_results
                        outs.append(dataclasses.replace(out, results=results, provisional=provisional))
            # A single reading speaks only when flagged T or past the emergency bounds.
            flag = item.instant_flag
            if (
                (flag == _T or not target.calm_low <= item.instant <= target.calm_high)
                and item.instant_ns == item.newest_ns
                and at_ns - item.instant_ns <= self._instant_max_age_ns
            ):
                instant = self._instant(station, standard, target, item)
                if instant is not None:
                    outs.append(instant)
        if outs:
            return [self._firing(station, standard, outs, basis, at_ns)]
        if seen and not quiet and not blind:
            return [
                Finding(
                    Condition.CLEAR,
                    at_ns,
                    summary=f"{station.name}：水质达到目标{station.target_class.value}类 / meets target "
                    f"class {station.target_class.value}",
                    description=f"{station.name} ({station.id}) 各项指标达到目标类别 / every item within "
                    "its target.",
                    station_id=station.id,
                )
            ]
        return []

    # --- findings --------------------------------------------------------------------------------
    def _instant(self, station: Station, standard: Standard, target: _Target, item: ItemValues) -> Out | None:
        value = item.instant
        beyond = not target.calm_low <= value <= target.calm_high
        if item.instant_flag == DataFlag.OVER_RANGE:
            if self.config.over_range and target.kind == "max" and value > target.limit:
                out = _out(station, standard, target, "saturated", value)
                return dataclasses.replace(out, provisional=True, emergency=beyond, results=1)
            return None
        if item.instant_flag != DataFlag.NORMAL or not beyond or item.instant_below_dl:
            return None
        out = _out(station, standard, target, "emergency", value)
        return dataclasses.replace(out, provisional=True, emergency=True, results=1)

    def _firing(
        self, station: Station, standard: Standard, outs: list[Out], basis: str, at_ns: int
    ) -> Finding:
        target = station.target_class
        worst = max(outs, key=lambda o: o.water_class.rank)
        critical = any(o.emergency or (not o.provisional and self._critical_class(o, target)) for o in outs)
        # A provisional value that would be critical by its class (a new day's first reports of a
        # spill still going on) neither escalates nor counts as milder: the finding keeps the
        # alert's severity (None; a new alert fires at the rule's).
        undecided = not critical and any(o.provisional and self._critical_class(o, target) for o in outs)
        severity: Severity | None = None if undecided else "critical" if critical else self.config.severity
        ranked = sorted(outs, key=lambda o: (-o.water_class.rank, -(o.multiple or 0.0)))
        codes = tuple(dict.fromkeys(o.code for o in ranked))
        lines = [_line(standard, o) for o in ranked]
        return Finding(
            Condition.FIRING,
            at_ns,
            summary=f"{station.name}：{'；'.join(lines[:3])}{'等' if len(lines) > 3 else ''}",
            description=f"{station.name}（{station.id}，{station.river}，{station.district}）水质未达到目标"
            f"{target.value}类：{'；'.join(lines)}。/ out of its target class {target.value}.",
            station_id=station.id,
            values={_key(o): o.value for o in ranked},
            water_class=worst.water_class.value,
            primary_pollutants=codes,
            context={_key(o): _context(o, basis) for o in ranked},
            severity=severity,
        )

    def _critical_class(self, out: Out, target: WaterClass) -> bool:
        return (
            out.water_class is WaterClass.WORSE_THAN_V
            or out.water_class.rank - target.rank >= self.config.critical_classes_worse
        )

    # --- targets ---------------------------------------------------------------------------------
    def _targets_of(self, station: Station, standard: Standard) -> dict[str, _Target]:
        index = standard.classes.index(station.target_class)
        out: list[_Target] = []
        for code, item in standard.items.items():
            assessment = item.assessment_for(station.water_body)
            if assessment is Assessment.NOT_ASSESSED or item.kind == "none":
                continue
            if assessment is Assessment.SEPARATELY and not self.config.lake_tn:
                continue
            if item.kind == "range":
                assert item.low is not None
                assert item.high is not None
                emergency = self.config.emergency_limits.get(code)
                calm_high = math.inf if emergency is None else emergency
                out.append(_Target(code, "range", math.nan, item.low, item.high, calm_high=calm_high))
                continue
            limits = item.limits_for(station.water_body)
            assert limits is not None
            emergency = self.config.emergency_limits.get(code)
            if emergency is None and self.config.emergency_multiple > 0:
                v_limit = limits[-1]
                emergency = (
                    v_limit * self.config.emergency_multiple
                    if item.kind == "max"
                    else v_limit / self.config.emergency_multiple
                )
            low, high = -math.inf, math.inf
            if emergency is not None:
                low, high = (emergency, math.inf) if item.kind == "min" else (-math.inf, emergency)
            out.append(_Target(code, item.kind, limits[index], math.nan, math.nan, low, high))
        return {target.code: target for target in out}


def _out(
    station: Station, standard: Standard, target: _Target, basis: str, value: float, *, t_only: bool = False
) -> Out:
    water_class = classify_value(standard, target.code, value, station.water_body) or WaterClass.WORSE_THAN_V
    multiple = value / target.limit - 1 if target.kind == "max" and target.limit > 0 else None
    return Out(target.code, "saturated" if t_only else basis, value, water_class, multiple)


def _worse(target: _Target, value: float) -> bool:
    if target.kind == "max":
        return value > target.limit
    if target.kind == "min":
        return value < target.limit
    return not target.low <= value <= target.high


def _line(standard: Standard, out: Out) -> str:
    item = standard.items[out.code]
    unit = "" if item.unit in ("1", "") else f" {standard.unit_of(out.code)}"
    prefix = "≥" if out.basis == "saturated" else ""
    basis = _BASIS_TEXT.get(out.basis, "")
    if out.provisional and out.basis not in _INSTANT_BASES:
        basis += f"（暂，{out.results}个数据）"  # a day's value of too few results to call it one yet
    text = f"{item.name_zh}{basis}{prefix}{fmt(out.value)}{unit}，{out.water_class.value}类"
    if out.multiple is not None and out.multiple > 0:
        # 超标倍数 as bureaus publish it, two decimals (a hair over the limit still says so).
        text += f"，超标{out.multiple:.2f}倍" if out.multiple >= 0.01 else "，超标<0.01倍"
    return text


def _key(out: Out) -> str:
    """`nh3n` for a period value, `nh3n:saturated` / `nh3n:emergency` for a single reading."""
    return out.code if out.basis not in _INSTANT_BASES else f"{out.code}:{out.basis}"


def _context(out: Out, basis: str) -> str:
    multiple = "" if out.multiple is None else f", multiple {fmt(out.multiple)}"
    shown = out.basis if out.basis in _INSTANT_BASES else basis
    return f"{shown} {fmt(out.value)} class {out.water_class.value}{multiple}"
