"""regional_compliance: the share of points meeting their target in a district or basin is too low.

Over the water-quality stations of each group (`group_by`: district, basin or river) that have a
class as of now (values no older than `max_age`), the share whose class meets its target. One
alert per group, identified by the group label (`district: 渝中区`). FIRING when the share is
below `min_share` (1.0: any point out of compliance), CLEAR when it is at least `min_share` plus
`recovery_margin` (capped at 1). Groups with fewer than `min_stations` classed points are not
judged. Evaluated on each tick, at the wall clock.

Example:
    rules:
      - {name: district_compliance, kind: regional_compliance, group_by: district, min_share: 1.0}
      - {name: basin_compliance, kind: regional_compliance, group_by: basin, min_share: 0.9,
         recovery_margin: 0.05}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from alerts.rules.base import (
    Condition,
    Finding,
    GroupBy,
    RuleConfigBase,
    Scope,
    View,
    judged_regions,
    share_text,
)

GROUP_NAMES_ZH = {"district": "区县", "basin": "流域", "river": "河流"}


class RegionalComplianceConfig(RuleConfigBase):
    kind: Literal["regional_compliance"] = Field("regional_compliance", description="Rule kind.")
    group_by: GroupBy = Field("district", description="Group stations by district, basin or river.")
    min_share: float = Field(
        1.0, gt=0, le=1, description="Fires when the share meeting target is below this."
    )
    recovery_margin: float = Field(
        0.0, ge=0, lt=1, description="Added to min_share (capped at 1) to recover."
    )
    min_stations: int = Field(1, ge=1, description="Groups with fewer classed stations are not judged.")
    window: timedelta | None = Field(None, description="Rolling mean window of each station's class.")
    max_age: timedelta = Field(timedelta(days=1), description="Stations with older values count as no data.")


class RegionalComplianceRule:
    kind: ClassVar[str] = "regional_compliance"
    scope: ClassVar[Scope] = Scope.REGION

    def __init__(self, config: RegionalComplianceConfig) -> None:
        self.config = config

    def evaluate(self, view: View) -> list[Finding]:
        config = self.config
        findings = []
        for region in judged_regions(view, config):
            assessed = region.assessed
            meeting = [s for s, p in assessed if p.classification.compliant]
            failing = [s for s, p in assessed if not p.classification.compliant]
            share = len(meeting) / len(assessed)
            if share < config.min_share:
                condition = Condition.FIRING
            elif share >= min(1.0, config.min_share + config.recovery_margin):
                condition = Condition.CLEAR
            else:
                condition = Condition.HOLD
            where = f"{GROUP_NAMES_ZH[config.group_by]} {region.value}"
            failing_text = ", ".join(f"{s.name} ({s.id})" for s in failing) or "none"
            findings.append(
                Finding(
                    condition,
                    region.observed_ns,
                    summary=f"{where}: 达标率 {share_text(share)} / {len(meeting)} of {len(assessed)} points "
                    f"meet their target (threshold {share_text(config.min_share)})",
                    description=f"{config.group_by} {region.value}: {len(meeting)} of {len(assessed)} "
                    f"classed monitoring points meet their target class ({share_text(share)}). "
                    f"Out of compliance: {failing_text}.",
                    group=(config.group_by, region.value),
                    values={
                        "share_meeting_target": share,
                        "stations": float(len(region.points)),
                        "assessed": float(len(assessed)),
                        "meeting_target": float(len(meeting)),
                    },
                    context=region.context(),
                )
            )
        return findings
