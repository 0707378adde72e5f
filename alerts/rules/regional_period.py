"""regional_period: a region's period figure (达标率 or 优良比例) is below its threshold.

What a bureau publishes and is ranked on: per district, basin or river (`group_by`), the share of
assessable sections meeting their target class (`figure: compliance_rate`, 断面达标率) or of class
I–III (`figure: good_share`, 水质优良比例), each section classed on its period value by the 2011
method from the daily values the daily assessment stored (`alerts.region_figures`) — never on one
reading. `period: month` judges the month to date (from the 1st to the day just assessed),
`period: day` that day's daily values.

One alert per region, identified by the group label (`district: 渝中区`). FIRING when the figure
is below `threshold`; CLEAR when it is at least `threshold` plus `recovery_margin` (capped at 1);
HOLD in between. Not judged (no finding, the alert keeps its state): regions with fewer than
`min_sections` assessable sections (one section's bad day is that station's alert, not a regional
event), and a month to date with fewer than `min_days` days stored (a month's figure after one or
two days is one day's figure; until then a month's alert keeps its state into the next month).
`match` may only name the grouping's own label (the region).

Judged after each daily assessment (`Scope.PERIOD`): the engine computes the figures for the rule's
(`group_by`, `period`) and calls `judge(figures)`; `evaluate` on a view finds nothing.

Example:
    rules:
      - {name: district_compliance, kind: regional_period, group_by: district,
         figure: compliance_rate, threshold: 0.8, min_sections: 3}
      - {name: basin_good_share, kind: regional_period, group_by: basin,
         figure: good_share, threshold: 0.75, min_sections: 5}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import ClassVar, Final, Literal, Protocol

from pydantic import Field, model_validator

from alerts.rules.base import Condition, Finding, GroupBy, RuleConfigBase, Scope, View, share_text

RegionFigureName = Literal["compliance_rate", "good_share"]
GROUP_NAMES: Final[dict[str, tuple[str, str]]] = {
    "district": ("区县", "district"),
    "basin": ("流域", "basin"),
    "river": ("河流", "river"),
}
FIGURE_NAMES: Final[dict[RegionFigureName, tuple[str, str]]] = {
    "compliance_rate": ("断面达标率", "compliance rate"),
    "good_share": ("水质优良(I–III类)断面比例", "class I–III share"),
}


class PeriodFigure(Protocol):
    """What `judge` reads of a region's period figure: `alerts.region_figures.RegionFigure`.

    A protocol, so that rules never import the module that reads the alert database (the store
    imports the rules' base: a cycle).
    """

    @property
    def group_by(self) -> GroupBy: ...
    @property
    def region(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def period_kind(self) -> Literal["month", "day"]: ...
    @property
    def last_day(self) -> date: ...
    @property
    def period_end_ns(self) -> int: ...
    @property
    def days_stored(self) -> int: ...
    @property
    def sections(self) -> int: ...
    @property
    def assessable(self) -> int: ...
    @property
    def meeting_target(self) -> int: ...
    @property
    def class_i_iii(self) -> int: ...
    @property
    def compliance_rate(self) -> float | None: ...
    @property
    def good_share(self) -> float | None: ...
    @property
    def stations(self) -> Mapping[str, str]: ...
    @property
    def below_target(self) -> tuple[str, ...]: ...
    @property
    def worse_than_iii(self) -> tuple[str, ...]: ...


class RegionalPeriodConfig(RuleConfigBase):
    kind: Literal["regional_period"] = Field("regional_period", description="Rule kind.")
    group_by: GroupBy = Field("district", description="Judge districts, basins or rivers.")
    figure: RegionFigureName = Field(
        "compliance_rate",
        description="compliance_rate: share of assessable sections meeting their target (达标率); "
        "good_share: share of class I–III (水质优良比例).",
    )
    threshold: float = Field(gt=0, le=1, description="Fires when the figure is below this (0–1).")
    recovery_margin: float = Field(
        0.0, ge=0, lt=1, description="Added to threshold (capped at 1) for the figure to recover."
    )
    period: Literal["month", "day"] = Field(
        "month", description="month: the month to date, from the days stored; day: one day's values."
    )
    min_sections: int = Field(3, ge=1, description="Regions with fewer assessable sections are not judged.")
    # 28: reachable in every month, February included.
    min_days: int = Field(
        7, ge=1, le=28, description="A month to date with fewer days stored is not judged (period: month)."
    )

    @model_validator(mode="after")
    def _match_names_the_region(self) -> RegionalPeriodConfig:
        others = sorted(set(self.match) - {self.group_by})
        if others:
            raise ValueError(
                f"match: a {self.group_by} rule can only match its {self.group_by}, not {', '.join(others)}"
            )
        return self


class RegionalPeriodRule:
    kind: ClassVar[str] = "regional_period"
    scope: ClassVar[Scope] = Scope.PERIOD

    def __init__(self, config: RegionalPeriodConfig) -> None:
        self.config = config

    def evaluate(self, view: View) -> list[Finding]:  # noqa: ARG002 - the Rule protocol's signature
        """Nothing: period rules are judged on period figures (`judge`), not on views."""
        return []

    def judge(self, figures: Sequence[PeriodFigure]) -> list[Finding]:
        """One finding per region of the rule's grouping and period that is judged (module doc)."""
        config = self.config
        wanted = config.match.get(config.group_by)
        findings = []
        for fig in figures:
            if fig.group_by != config.group_by or fig.period_kind != config.period:
                continue
            if wanted is not None and fig.region != wanted:
                continue
            if fig.assessable < config.min_sections:
                continue
            if fig.period_kind == "month" and fig.days_stored < config.min_days:
                continue
            value = fig.compliance_rate if config.figure == "compliance_rate" else fig.good_share
            if value is None:
                continue
            findings.append(self._finding(fig, value))
        return findings

    def _finding(self, fig: PeriodFigure, value: float) -> Finding:
        config = self.config
        recover_at = min(1.0, config.threshold + config.recovery_margin)
        zh, en = FIGURE_NAMES[config.figure]
        pct, limit = share_text(value), _percent(config.threshold)
        if value < config.threshold:
            condition = Condition.FIRING
            verdict = f"{zh} {pct}，低于 {limit} / {en} {pct} below {limit}"
        elif value >= recover_at:
            condition = Condition.CLEAR
            verdict = f"{zh} {pct}，不低于 {limit} / {en} {pct} at or above {limit}"
        else:
            condition = Condition.HOLD
            back = _percent(recover_at)
            verdict = f"{zh} {pct}，尚未回到 {back} / {en} {pct}, not yet back to {back}"
        values = {
            config.figure: value,
            "threshold": config.threshold,
            "sections": float(fig.sections),
            "assessable": float(fig.assessable),
            "meeting_target": float(fig.meeting_target),
            "class_i_iii": float(fig.class_i_iii),
            "days_stored": float(fig.days_stored),
        }
        if fig.compliance_rate is not None:
            values["compliance_rate"] = fig.compliance_rate
        if fig.good_share is not None:
            values["good_share"] = fig.good_share
        return Finding(
            condition,
            fig.period_end_ns,
            summary=f"{fig.region} {fig.period} {verdict}",
            description=_description(config, fig, pct),
            group=(config.group_by, fig.region),
            values=values,
            context=dict(fig.stations),
        )


def _description(config: RegionalPeriodConfig, fig: PeriodFigure, pct: str) -> str:
    group_zh, group_en = GROUP_NAMES[config.group_by]
    limit = _percent(config.threshold)
    last = fig.last_day
    if fig.period_kind == "month":
        when_zh = f"{fig.period}（{last.month}月1日至{last.day}日，{fig.days_stored} 天有日均值）"
        when_en = f"{fig.period} to {last.isoformat()} ({fig.days_stored} days of daily values)"
    else:
        when_zh = when_en = fig.period
    if config.figure == "compliance_rate":
        counted, counted_zh, counted_en = fig.meeting_target, "达到水质目标", "meet their target"
        listed, listed_zh, listed_en = fig.below_target, "未达标", "missing their target"
    else:
        counted, counted_zh, counted_en = fig.class_i_iii, "为 I–III 类", "are class I–III"
        listed, listed_zh, listed_en = fig.worse_than_iii, "IV 类及以下", "class IV or worse"
    sections = "、".join(f"{sid} {fig.stations[sid]}" for sid in listed) or "无"
    sections_en = ", ".join(f"{sid} {fig.stations[sid]}" for sid in listed) or "none"
    unassessed = fig.sections - fig.assessable
    zh = (
        f"{group_zh} {fig.region} {when_zh}：{fig.sections} 个断面中 {fig.assessable} 个可评价，"
        f"{counted} 个{counted_zh}（{pct}，阈值 {limit}）；{listed_zh}：{sections}"
        + (f"；不可评价 {unassessed} 个" if unassessed else "")
        + "。"
    )
    en = (
        f"{group_en} {fig.region}, {when_en}: {counted} of {fig.assessable} assessable sections "
        f"{counted_en} ({pct}, threshold {limit}); {listed_en}: {sections_en}"
        + (f"; {unassessed} not assessable" if unassessed else "")
        + "."
    )
    return f"{zh} / {en}"


def _percent(share: float) -> str:
    """A threshold as configured: 0.8 -> "80 %", 0.875 -> "87.5 %"."""
    return f"{100 * share:.4g} %"
