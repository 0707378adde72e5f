"""Configuration of the alert engine: the standard, the rules, the defaults, the scheduler.

`alerts: {}` gives the default rule set (`DEFAULT_RULES`): compliance drop and parameter
exceedance against each point's target class, silent stations, instrument faults (and long
calibrations), water level at the warning and guaranteed levels and rising fast, and regional
compliance rates per district and basin (class shares, `class_share`, are there to add). Giving
`rules` replaces the whole set. Rule settings
left unset take `defaults`. Durations are ISO 8601 (`PT10S`, `PT4H`, `P1D`) or seconds.

Example:
    alerts:
      standard: config/standards/gb3838-2002.yaml
      allowed_lateness: P1D
      history_retention: P90D
      defaults: {for: PT0S, recovery: {samples: 2}, renotify_interval: PT4H, min_refire_interval: PT30M}
      scheduler: {tick_interval: PT10S, daily_assessment_at: "08:00", timezone: Asia/Shanghai}
      rules:
        - {name: compliance_drop, kind: compliance_drop, severity: critical}
        - {name: silent_station, kind: silent_station, intervals: 3, recovery: {samples: 1}}
        - {name: district_compliance, kind: regional_compliance, group_by: district}
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any, Final

from pydantic import ConfigDict, Field, TypeAdapter, field_validator

from alerts.rules import RuleConfig
from alerts.rules.base import RecoveryConfig
from config.types import StrictModel, TimeZoneName

_DEFAULT_RULE_DATA: Final[list[dict[str, Any]]] = [
    # "Learn within a minute": a point out of compliance fires on its first reading; two compliant
    # samples in a row resolve it, so a value hovering at a class limit does not flap.
    {"name": "compliance_drop", "kind": "compliance_drop", "severity": "critical"},
    {"name": "exceedance", "kind": "exceedance", "severity": "warning", "recovery_margin": 0.05},
    {"name": "silent_station", "kind": "silent_station", "intervals": 3, "recovery": {"samples": 1}},
    {
        "name": "instrument_fault",
        "kind": "instrument_fault",
        "flags": ["D", "F", "M"],
        "for": "PT1M",
        "recovery": {"samples": 1},
    },
    {
        "name": "calibration_overrun",
        "kind": "instrument_fault",
        "flags": ["C"],
        "for": "PT1H",
        "severity": "info",
        "recovery": {"samples": 1},
    },
    {"name": "warning_level", "kind": "water_level", "condition": "warning", "recovery": {"samples": 1}},
    {
        "name": "guaranteed_level",
        "kind": "water_level",
        "condition": "guaranteed",
        "severity": "critical",
        "recovery": {"samples": 1},
    },
    {
        "name": "level_rise",
        "kind": "water_level",
        "condition": "rise_rate",
        "rate_m_per_h": 0.5,
        "rate_window": "PT1H",
    },
    {"name": "district_compliance", "kind": "regional_compliance", "group_by": "district", "min_share": 1.0},
    {"name": "basin_compliance", "kind": "regional_compliance", "group_by": "basin", "min_share": 1.0},
]
_RULES_ADAPTER: Final[TypeAdapter[tuple[RuleConfig, ...]]] = TypeAdapter(tuple[RuleConfig, ...])
DEFAULT_RULES: Final[tuple[RuleConfig, ...]] = _RULES_ADAPTER.validate_python(_DEFAULT_RULE_DATA)


class RuleDefaults(StrictModel):
    """Lifecycle settings for rules that do not set their own."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    pending: timedelta = Field(
        timedelta(0), alias="for", description="How long a condition must hold before it fires."
    )
    recovery: RecoveryConfig = Field(
        RecoveryConfig(samples=2), description="Hysteresis: consecutive samples and time to resolve."
    )
    renotify_interval: timedelta = Field(
        timedelta(hours=4), description="Reminder interval while firing and not acknowledged; PT0S: none."
    )
    min_refire_interval: timedelta = Field(
        timedelta(minutes=30),
        description="Flap damping: a firing notice comes at least this long after the identity's "
        "last resolved one.",
    )


class SchedulerConfig(StrictModel):
    """The time-driven work (APScheduler, see alerts.scheduler)."""

    tick_interval: timedelta = Field(
        timedelta(seconds=10),
        ge=timedelta(seconds=1),
        description="Silent stations, pending and recovery by time, regional roll-ups, reminders.",
    )
    timezone: TimeZoneName = Field(
        "Asia/Shanghai", description="Zone of the daily assessment's clock and days."
    )
    daily_assessment_at: time = Field(
        time(8, 0), description="Local time the previous day is assessed (daily means, classes, rates)."
    )
    catch_up_days: int = Field(
        7, ge=0, le=31, description="Days missed while down that the next assessment still makes up."
    )
    housekeeping_interval: timedelta = Field(
        timedelta(hours=1), ge=timedelta(minutes=1), description="How often old history is pruned."
    )
    misfire_grace_time: timedelta = Field(
        timedelta(hours=1),
        description="A run delayed by up to this long still runs (once: missed runs are coalesced).",
    )


class AlertsConfig(StrictModel):
    """The `alerts` section; see the module docstring."""

    standard: Path | None = Field(None, description="Standard file; the shipped GB 3838-2002 when absent.")
    rules: tuple[RuleConfig, ...] = Field(
        DEFAULT_RULES, description="The rules; the default set when absent."
    )
    defaults: RuleDefaults = Field(RuleDefaults(), description="Settings of rules that leave them unset.")
    allowed_lateness: timedelta = Field(
        timedelta(days=1),
        ge=timedelta(0),
        description="Readings up to this much older than a station's newest are kept for rolling means "
        "(not evaluated on their own); older ones are ignored and counted.",
    )
    history_retention: timedelta = Field(
        timedelta(days=90), ge=timedelta(days=1), description="Transitions and assessments older are pruned."
    )
    scheduler: SchedulerConfig = Field(SchedulerConfig(), description="Time-driven work.")

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: tuple[RuleConfig, ...]) -> tuple[RuleConfig, ...]:
        names = [rule.name for rule in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        return value
