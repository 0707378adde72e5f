"""Configuration of the alert engine: the standard, the rules, the defaults, the scheduler.

`alerts: {}` gives the default rule set (`DEFAULT_RULES`, with its reasons in the README's alert
table): one water-quality alert per station judged on the provisional daily value against its
target class (`water_quality`), no valid data (`data_availability`, category `data`), silent
stations, water level at the warning and guaranteed levels and rising fast, and regional
compliance rates per district over the month (`regional_period`). The instant-reading kinds
(compliance_drop, exceedance, regional_compliance, class_share, instrument_fault) remain for
configurations that name them. Giving `rules` replaces the whole set. Rule settings left unset
take `defaults`. Durations are ISO 8601 (`PT10S`, `PT4H`, `P1D`) or seconds.

Example:
    alerts:
      standard: config/standards/gb3838-2002.yaml
      allowed_lateness: P1D
      history_retention: P90D
      defaults: {for: PT0S, recovery: {samples: 2}, renotify_interval: PT4H, min_refire_interval: PT30M}
      scheduler: {tick_interval: PT10S, daily_assessment_at: "08:00", timezone: Asia/Shanghai}
      rules:
        - {name: water_quality, kind: water_quality, critical_after: PT12H}
        - {name: no_valid_data, kind: data_availability}
        - {name: silent_station, kind: silent_station, intervals: 3, recovery: {samples: 1}}
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any, Final

from pydantic import ConfigDict, Field, TypeAdapter, field_validator

from alerts.incidents.config import IncidentConfig
from alerts.rules import RuleConfig
from alerts.rules.base import RecoveryConfig
from alerts.station_values import Basis
from config.types import StrictModel, TimeZoneName
from ingest.model import DataKind

_DEFAULT_RULE_DATA: Final[list[dict[str, Any]]] = [
    # One alert per station for its water, on the provisional daily value (the method judges days,
    # not readings); a T reading or an emergency reading (2x the class V limit) alerts at once.
    # Warning one class worse than the target; critical at 劣V, two classes worse, or after a day.
    {"name": "water_quality", "kind": "water_quality", "severity": "warning"},
    # Data problems are not water problems: B at once, D/F/M after an hour, C after two.
    {"name": "no_valid_data", "kind": "data_availability", "severity": "warning", "recovery": {"samples": 1}},
    {"name": "silent_station", "kind": "silent_station", "intervals": 3, "recovery": {"samples": 1}},
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
    # Regional figures over the month so far, from the method's daily values: a district's share of
    # sections meeting their targets, a basin's share of class I–III; never one section's reading.
    {
        "name": "district_compliance",
        "kind": "regional_period",
        "group_by": "district",
        "figure": "compliance_rate",
        "threshold": 0.8,
        "period": "month",
        "min_sections": 3,
        "min_days": 7,
        "recovery": {"samples": 1},
        "renotify_interval": "P1D",
    },
    {
        "name": "basin_good_share",
        "kind": "regional_period",
        "group_by": "basin",
        "figure": "good_share",
        "threshold": 0.75,
        "period": "month",
        "min_sections": 5,
        "min_days": 7,
        "recovery": {"samples": 1},
        "renotify_interval": "P1D",
    },
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
    basis: Basis = Field(
        "daily",
        description="The period whose provisional value the water rules judge: the local day so far "
        "(the assessment method's daily value) or the month so far.",
    )
    incidents: IncidentConfig = Field(
        IncidentConfig(),
        description="Following a pollution event along the river network (needs the registry's "
        "`network:`); see alerts/incidents.",
    )
    data_kinds: tuple[DataKind, ...] = Field(
        (DataKind.REALTIME,),
        min_length=1,
        description="Kinds of value the rules judge; hourly and daily means repeat the real-time values "
        "and would count the same water twice.",
    )

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: tuple[RuleConfig, ...]) -> tuple[RuleConfig, ...]:
        names = [rule.name for rule in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        return value
