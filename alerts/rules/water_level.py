"""water_level: river level at the warning or guaranteed level of the station, or rising fast.

One alert per (station, parameter `level`), on the newest normal-flag reading:
- `condition: warning` fires when the level reaches the station's `warning_level` (警戒水位),
  `guaranteed` when it reaches `guaranteed_level` (保证水位); stations without that level in the
  registry are not judged. CLEAR below the level minus `recovery_margin` (m), HOLD between.
- `condition: rise_rate` fires when the level rose faster than `rate_m_per_h` over the last
  `rate_window` (first to last normal reading in it, at least half the window apart); CLEAR when
  the rise rate is at most `rate_m_per_h` minus `recovery_margin` (m/h).

Example:
    rules:
      - {name: warning_level, kind: water_level, condition: warning, severity: warning}
      - {name: guaranteed_level, kind: water_level, condition: guaranteed, severity: critical}
      - {name: level_rise, kind: water_level, condition: rise_rate, rate_m_per_h: 0.5, rate_window: PT1H}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, PositiveFloat, model_validator

from alerts.rules.base import Condition, Finding, RuleConfigBase, Scope, View, fmt
from alerts.windows import Evidence
from config.registry import Station
from config.times import ns

_NS_PER_HOUR = 3_600_000_000_000
LEVEL_NAMES = {"warning": "警戒水位 warning level", "guaranteed": "保证水位 guaranteed level"}


class WaterLevelConfig(RuleConfigBase):
    kind: Literal["water_level"] = Field("water_level", description="Rule kind.")
    condition: Literal["warning", "guaranteed", "rise_rate"] = Field(
        description="warning / guaranteed: the level reached; rise_rate: rising faster than rate_m_per_h."
    )
    parameter: str = Field("level", description="Code of the water level, in m.")
    recovery_margin: float = Field(0.1, ge=0, description="m (or m/h for rise_rate) back below to recover.")
    rate_m_per_h: PositiveFloat | None = Field(None, description="Rise rate that fires (rise_rate only).")
    rate_window: timedelta = Field(timedelta(hours=1), description="Window the rise rate is measured over.")
    max_age: timedelta = Field(timedelta(hours=6), description="Levels older than this are not judged.")

    @model_validator(mode="after")
    def _rate_for_rise(self) -> WaterLevelConfig:
        if (self.condition == "rise_rate") != (self.rate_m_per_h is not None):
            raise ValueError("rate_m_per_h is required with condition rise_rate, and only with it")
        return self


class WaterLevelRule:
    kind: ClassVar[str] = "water_level"
    scope: ClassVar[Scope] = Scope.STATION

    def __init__(self, config: WaterLevelConfig) -> None:
        self.config = config
        self._max_age_ns = ns(config.max_age)

    def evaluate(self, view: View) -> list[Finding]:
        if self.config.condition == "rise_rate":
            return self._rise(view)
        station = view.station
        limit = station.warning_level if self.config.condition == "warning" else station.guaranteed_level
        if limit is None:
            return []
        code = self.config.parameter
        level = view.window.value(code, view.at_ns, window_ns=None, max_age_ns=self._max_age_ns)
        if level is None:
            return []
        if level.value >= limit:
            condition = Condition.FIRING
        elif level.value <= limit - self.config.recovery_margin:
            condition = Condition.CLEAR
        else:
            condition = Condition.HOLD
        name = LEVEL_NAMES[self.config.condition]
        delta = level.value - limit
        relation = f"{fmt(delta)} m above" if delta >= 0 else f"{fmt(-delta)} m below"
        return [
            Finding(
                condition,
                level.time_ns,
                summary=f"{station.name}: 水位 {fmt(level.value)} m, {relation} the {name} {fmt(limit)} m",
                description=f"{station.name} ({station.id}, {station.river}): water level "
                f"{fmt(level.value)} m is {relation} the {name} of {fmt(limit)} m.",
                station_id=station.id,
                parameter=code,
                values={code: level.value, f"{self.config.condition}_level": limit},
                evidence=(level,),
            )
        ]

    def _rise(self, view: View) -> list[Finding]:
        station = view.station
        code = self.config.parameter
        series = view.window.series.get(code)
        if series is None:
            return []
        window_ns = ns(self.config.rate_window)
        samples = series.between(view.at_ns - window_ns, view.at_ns)
        if len(samples) < 2 or samples[-1].time_ns - samples[0].time_ns < window_ns // 2:
            return []
        if view.at_ns - samples[-1].time_ns > self._max_age_ns:
            return []
        first, last = samples[0], samples[-1]
        rate = (last.value - first.value) / ((last.time_ns - first.time_ns) / _NS_PER_HOUR)
        assert self.config.rate_m_per_h is not None  # the config validator requires it
        limit = self.config.rate_m_per_h
        if rate > limit:
            condition = Condition.FIRING
        elif rate <= limit - self.config.recovery_margin:
            condition = Condition.CLEAR
        else:
            condition = Condition.HOLD
        return [
            Finding(
                condition,
                last.time_ns,
                summary=f"{station.name}: 水位上涨 {fmt(rate)} m/h / level rising {fmt(rate)} m/h "
                f"(limit {fmt(limit)} m/h)",
                description=_rise_text(station, first.value, last.value, rate, limit),
                station_id=station.id,
                parameter=code,
                values={code: last.value, "rise_m_per_h": rate, "rate_limit_m_per_h": limit},
                evidence=(
                    Evidence(code, first.value, first.time_ns),
                    Evidence(code, last.value, last.time_ns),
                ),
            )
        ]


def _rise_text(station: Station, first: float, last: float, rate: float, limit: float) -> str:
    return (
        f"{station.name} ({station.id}, {station.river}): the water level went from {fmt(first)} m to "
        f"{fmt(last)} m, {fmt(rate)} m/h against a limit of {fmt(limit)} m/h."
    )
