"""Alert rules: one module per kind, one small protocol, one registry.

A rule reads a `View` and returns `Finding`s (see `alerts.rules.base`); it never touches the
clock, the database or the network. The engine decides when to evaluate it from its `scope`.

Kinds: water_quality and data_availability (judged from the stations' period values, scope
STREAM: `judge`), regional_period (judged on regions' period figures, scope PERIOD: `judge`),
silent_station, water_level, and the instant-reading kinds kept for configurations that name
them: compliance_drop, exceedance, regional_compliance, class_share, instrument_fault. Adding
one: `alerts/rules/<kind>.py` with `<Kind>Config` and `<Kind>Rule`, then add both to
`RuleConfig`, `RULES` and `make_rule` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, Protocol

from pydantic import Field

from alerts.rules.base import Finding, RuleConfigBase, Scope, View
from alerts.rules.class_share import ClassShareConfig, ClassShareRule
from alerts.rules.compliance_drop import ComplianceDropConfig, ComplianceDropRule
from alerts.rules.data_availability import DataAvailabilityConfig, DataAvailabilityRule
from alerts.rules.exceedance import ExceedanceConfig, ExceedanceRule
from alerts.rules.instrument_fault import InstrumentFaultConfig, InstrumentFaultRule
from alerts.rules.regional_compliance import RegionalComplianceConfig, RegionalComplianceRule
from alerts.rules.regional_period import RegionalPeriodConfig, RegionalPeriodRule
from alerts.rules.silent_station import SilentStationConfig, SilentStationRule
from alerts.rules.water_level import WaterLevelConfig, WaterLevelRule
from alerts.rules.water_quality import WaterQualityConfig, WaterQualityRule


class Rule(Protocol):
    kind: ClassVar[str]
    scope: ClassVar[Scope]

    @property
    def config(self) -> RuleConfigBase: ...

    def evaluate(self, view: View) -> list[Finding]:
        """The rule's findings as of `view.at_ns`; pure."""
        ...


RuleConfig = Annotated[
    WaterQualityConfig
    | DataAvailabilityConfig
    | RegionalPeriodConfig
    | ComplianceDropConfig
    | ExceedanceConfig
    | RegionalComplianceConfig
    | ClassShareConfig
    | SilentStationConfig
    | InstrumentFaultConfig
    | WaterLevelConfig,
    Field(discriminator="kind"),
]

RULES: Final[Mapping[str, type[Rule]]] = {
    c.kind: c
    for c in (
        WaterQualityRule,
        DataAvailabilityRule,
        RegionalPeriodRule,
        ComplianceDropRule,
        ExceedanceRule,
        RegionalComplianceRule,
        ClassShareRule,
        SilentStationRule,
        InstrumentFaultRule,
        WaterLevelRule,
    )
}


def make_rule(config: RuleConfigBase) -> Rule:
    """The rule a config section describes (its `kind` picks the class)."""
    match config:
        case WaterQualityConfig():
            return WaterQualityRule(config)
        case DataAvailabilityConfig():
            return DataAvailabilityRule(config)
        case RegionalPeriodConfig():
            return RegionalPeriodRule(config)
        case ComplianceDropConfig():
            return ComplianceDropRule(config)
        case ExceedanceConfig():
            return ExceedanceRule(config)
        case RegionalComplianceConfig():
            return RegionalComplianceRule(config)
        case ClassShareConfig():
            return ClassShareRule(config)
        case SilentStationConfig():
            return SilentStationRule(config)
        case InstrumentFaultConfig():
            return InstrumentFaultRule(config)
        case WaterLevelConfig():
            return WaterLevelRule(config)
    raise TypeError(f"no rule for config {type(config).__name__}")


__all__ = ["RULES", "Finding", "Rule", "RuleConfig", "RuleConfigBase", "Scope", "View", "make_rule"]
