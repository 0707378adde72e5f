"""silent_station: no reading from a registered station for too long.

The registry is the inventory: every station in it is watched, including one that never
reported. Silence is measured from the station's newest reading (event time) to now (wall
clock, on every tick), and at the earliest from the start of this engine process: after a
restart the readings log may still hold the station's recent readings, so it gets one full
threshold to deliver them before it is called silent (an alert already firing stays firing).
Threshold: `after`, or `intervals` times the station's `report_interval_s`.

FIRING when silent for the threshold; CLEAR as soon as a reading within the threshold exists
(one sample recovers it, unless `recovery` says otherwise); HOLD while the threshold has not
passed since this process started but the newest reading is older (unknown yet).

Example:
    rules:
      - {name: silent_station, kind: silent_station, intervals: 3}
      - {name: hydro_silent, kind: silent_station, after: PT30M, match: {basin: 长江}}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from alerts.rules.base import Condition, Finding, RuleConfigBase, Scope, View
from config.times import ns

_NS_PER_MINUTE = 60_000_000_000


class SilentStationConfig(RuleConfigBase):
    kind: Literal["silent_station"] = Field("silent_station", description="Rule kind.")
    after: timedelta | None = Field(None, description="Silent after this long without a reading...")
    intervals: float = Field(
        3.0, gt=1, description="...or, without `after`, after this many report intervals of the station."
    )


class SilentStationRule:
    kind: ClassVar[str] = "silent_station"
    scope: ClassVar[Scope] = Scope.CLOCK

    def __init__(self, config: SilentStationConfig) -> None:
        self.config = config

    def evaluate(self, view: View) -> list[Finding]:
        station = view.station
        if self.config.after is not None:
            threshold_ns = ns(self.config.after)
        else:
            threshold_ns = int(self.config.intervals * station.report_interval_s * 1_000_000_000)
        last = view.window.watermark_ns
        at = view.at_ns
        if last is not None and at - last < threshold_ns:
            condition = Condition.CLEAR
        elif at - max(last if last is not None else view.started_ns, view.started_ns) >= threshold_ns:
            condition = Condition.FIRING
        else:
            condition = Condition.HOLD
        threshold_min = threshold_ns / _NS_PER_MINUTE
        if last is None:
            silent_text = "has never reported since monitoring started / 自监控开始以来从未上报数据"
            silent_for = (at - view.started_ns) / _NS_PER_MINUTE
        else:
            silent_for = (at - last) / _NS_PER_MINUTE
            silent_text = f"has sent nothing for {silent_for:.0f} min / {silent_for:.0f} 分钟无数据"
        return [
            Finding(
                condition,
                last,
                summary=f"{station.name}: 站点无数据 / station silent"
                if condition is not Condition.CLEAR
                else f"{station.name}: reporting again / 恢复上报",
                description=f"{station.name} ({station.id}, {station.district}) {silent_text}; "
                f"it should report every {station.report_interval_s / 60:g} min and is called silent "
                f"after {threshold_min:g} min.",
                station_id=station.id,
                values={"silent_minutes": max(0.0, silent_for), "threshold_minutes": threshold_min},
            )
        ]
