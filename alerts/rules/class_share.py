"""class_share: too few class I–III points (优良比例), or too many worse than V (劣V比例), in a region.

Over the classed water-quality stations of each group (`group_by`), the share of class I–III
and the share worse than class V. One alert per group; FIRING when the good share is below
`min_good_share` or the worse-than-V share is above `max_worse_than_v_share` (set either or
both), CLEAR when both are back past their threshold by `recovery_margin`. Evaluated on ticks.

Example:
    rules:
      - {name: basin_class_share, kind: class_share, group_by: basin, min_good_share: 0.9,
         max_worse_than_v_share: 0.0}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Final, Literal

from pydantic import Field, model_validator

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
from config.registry import WaterClass

# Classes I–III are "good" (优良) in the national assessment; IV and V are light to medium pollution.
GOOD_CLASSES: Final = frozenset({WaterClass.I, WaterClass.II, WaterClass.III})


class ClassShareConfig(RuleConfigBase):
    kind: Literal["class_share"] = Field("class_share", description="Rule kind.")
    group_by: GroupBy = Field("basin", description="Group stations by district, basin or river.")
    min_good_share: float | None = Field(
        None, ge=0, le=1, description="Fires when the share of class I–III points is below this."
    )
    max_worse_than_v_share: float | None = Field(
        None, ge=0, lt=1, description="Fires when the share of points worse than class V is above this."
    )
    recovery_margin: float = Field(0.0, ge=0, lt=1, description="How far back past a threshold to recover.")
    min_stations: int = Field(1, ge=1, description="Groups with fewer classed stations are not judged.")
    window: timedelta | None = Field(None, description="Rolling mean window of each station's class.")
    max_age: timedelta = Field(timedelta(days=1), description="Stations with older values count as no data.")

    @model_validator(mode="after")
    def _some_threshold(self) -> ClassShareConfig:
        if self.min_good_share is None and self.max_worse_than_v_share is None:
            raise ValueError("set min_good_share, max_worse_than_v_share or both")
        return self


class ClassShareRule:
    kind: ClassVar[str] = "class_share"
    scope: ClassVar[Scope] = Scope.REGION

    def __init__(self, config: ClassShareConfig) -> None:
        self.config = config

    def evaluate(self, view: View) -> list[Finding]:
        config = self.config
        findings = []
        for region in judged_regions(view, config):
            assessed = region.assessed
            classes = [p.classification.water_class for _, p in assessed]
            good = sum(1 for c in classes if c in GOOD_CLASSES) / len(classes)
            bad = sum(1 for c in classes if c is WaterClass.WORSE_THAN_V) / len(classes)
            low, high = config.min_good_share, config.max_worse_than_v_share
            margin = config.recovery_margin
            breached = (low is not None and good < low) or (high is not None and bad > high)
            recovered = (low is None or good >= min(1.0, low + margin)) and (
                high is None or bad <= max(0.0, high - margin)
            )
            condition = Condition.FIRING if breached else Condition.CLEAR if recovered else Condition.HOLD
            findings.append(
                Finding(
                    condition,
                    region.observed_ns,
                    summary=f"{region.value}: 优良(I–III类)比例 {share_text(good)}, "
                    f"劣V类比例 {share_text(bad)} / class I–III {share_text(good)}, "
                    f"worse than V {share_text(bad)}",
                    description=f"{config.group_by} {region.value}: of {len(assessed)} classed points, "
                    f"{share_text(good)} are class I–III"
                    + ("" if low is None else f" (at least {share_text(low)} wanted)")
                    + f" and {share_text(bad)} worse than class V"
                    + ("" if high is None else f" (at most {share_text(high)} allowed)")
                    + ".",
                    group=(config.group_by, region.value),
                    values={
                        "share_class_i_iii": good,
                        "share_worse_than_v": bad,
                        "assessed": float(len(assessed)),
                    },
                    context=region.context(),
                )
            )
        return findings
