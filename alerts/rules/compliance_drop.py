"""compliance_drop: a monitoring point's GB 3838 class is worse than its target class.

The class comes from `alerts.classify` (single-factor method) over the station's values: the
newest normal-flag reading of each item (readings older than `max_age` left out), or, with
`window`, the mean of the normal readings in that rolling window. One alert per station; the
items that set the class are its primary pollutants. FIRING when the class is worse than the
target, CLEAR when it meets it (the class is discrete, so the hysteresis is the recovery count).

Example:
    rules:
      - {name: compliance_drop, kind: compliance_drop, severity: critical}
      - {name: compliance_drop_daily, kind: compliance_drop, window: P1D, for: PT0S}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from alerts.rules.base import (
    Condition,
    Finding,
    RuleConfigBase,
    Scope,
    View,
    class_name,
    fmt,
    item_label,
    point_status,
    unit_of,
)
from config.times import ns


class ComplianceDropConfig(RuleConfigBase):
    kind: Literal["compliance_drop"] = Field("compliance_drop", description="Rule kind.")
    window: timedelta | None = Field(
        None, description="Rolling mean window (e.g. PT4H, P1D); the newest values when absent."
    )
    max_age: timedelta = Field(
        timedelta(days=1), description="Newest values older than this do not take part in the class."
    )


class ComplianceDropRule:
    kind: ClassVar[str] = "compliance_drop"
    scope: ClassVar[Scope] = Scope.STATION

    def __init__(self, config: ComplianceDropConfig) -> None:
        self.config = config
        self._window_ns = None if config.window is None else ns(config.window)
        self._max_age_ns = ns(config.max_age)

    def evaluate(self, view: View) -> list[Finding]:
        station = view.station
        if "water" not in station.kinds:
            return []
        status = point_status(
            view.standard,
            station,
            view.window,
            view.at_ns,
            window_ns=self._window_ns,
            max_age_ns=self._max_age_ns,
        )
        if status is None:
            return []
        result = status.classification
        target = station.target_class.value
        water_class = class_name(result.water_class)
        basis = "" if self.config.window is None else f" ({_window_text(self.config.window)} mean)"
        if result.compliant:
            return [
                Finding(
                    Condition.CLEAR,
                    status.observed_ns,
                    summary=f"{station.name}: 水质{water_class}类，达到目标{target}类 / "
                    f"class {water_class}{basis} meets target {target}",
                    description=f"{station.name} ({station.id}) is back within its target class {target}.",
                    station_id=station.id,
                    values={code: e.value for code, e in status.evidence.items() if code in result.assessed},
                    evidence=tuple(status.evidence[code] for code in result.assessed),
                    water_class=water_class,
                )
            ]
        causes = [
            f"{item_label(view.standard, code)} {fmt(status.evidence[code].value)} "
            f"{unit_of(view.standard, code)}: class {result.parameters[code].value}"
            + (
                f", 超标{fmt(result.exceedance[code])}倍 / {fmt(100 * result.exceedance[code])} % over "
                f"the class {target} limit"
                if code in result.exceedance
                else ""
            )
            for code in result.primary_pollutants
        ]
        return [
            Finding(
                Condition.FIRING,
                status.observed_ns,
                summary=f"{station.name}: 水质{water_class}类，未达到目标{target}类 / "
                f"class {water_class}{basis}, worse than target {target}",
                description=f"{station.name} ({station.id}, {station.river}, {station.district}) is out of "
                f"compliance: class {water_class} against target {target}. "
                f"主要污染指标 / primary pollutants: {'; '.join(causes)}.",
                station_id=station.id,
                values={code: e.value for code, e in status.evidence.items() if code in result.assessed},
                evidence=tuple(status.evidence[code] for code in result.primary_pollutants),
                water_class=water_class,
                primary_pollutants=result.primary_pollutants,
            )
        ]


def _window_text(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"
