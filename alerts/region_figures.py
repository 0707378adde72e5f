"""Regions' period figures for the period rules: compliance rate and class I–III share, by the method.

The period rules (`alerts.rules.regional_period`) judge a region on what a bureau publishes: the
share of its sections meeting their target (达标率) and the share of class I–III (水质优良比例),
each section classed on its period value by the 2011 method (`alerts.assessment_method`), never on
one reading. The figures come from the daily values the daily assessment stored in the alert
database (`daily_values`), so they use the days stored so far and nothing else: no readings store,
no day that has not been assessed.

- `period="month"`: the month of `day`, from its first day up to and including `day` (the month to
  date; the method's monthly validity is cut to the days elapsed, as for the year to date's last
  month). Its label is the month's, `2026-07`.
- `period="day"`: `day` alone (its daily value), label `2026-07-03`.

A section counts in `sections`; with a class for the period it is `assessable` and counts in the
shares (the method defines them over assessed sections); without one (data missing, a required
item lacking) it is listed as 不可评价 and never counts as compliant.

    figures = region_figures(db_path, registry, standard, rules, group_by="district",
                             period="month", day=date(2026, 7, 16))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

from alerts.assessment_method.daily import DailyValues
from alerts.assessment_method.period import Period
from alerts.assessment_method.region import GOOD, GroupBy, group_sections
from alerts.assessment_method.region import region_figures as method_figures
from alerts.assessment_method.report import assess_period
from alerts.assessment_method.rules import AssessmentRules
from alerts.assessment_method.section import SectionResult
from alerts.assessment_method.stored import from_rows
from alerts.store import read_daily_values
from config.registry import Station
from config.standards import Standard
from config.times import to_ns

FigurePeriod = Literal["month", "day"]
# What a section without a class for the period is called in reports (the method's wording).
NOT_ASSESSABLE: Final = "不可评价"


@dataclass(frozen=True, slots=True)
class RegionFigure:
    """One region's figures over one period (module docstring); shares of assessable sections."""

    group_by: GroupBy
    region: str
    period: str  # label: "2026-07" (month to date) or "2026-07-03" (a day)
    period_kind: FigurePeriod
    last_day: date  # the last local day included (`day`)
    period_end_ns: int  # end of the last day included (rules' default zone), UTC ns
    days_stored: int  # days of the period with stored daily values (any station)
    sections: int
    assessable: int
    meeting_target: int
    class_i_iii: int
    compliance_rate: float | None  # meeting_target / assessable; None without an assessable section
    good_share: float | None  # class_i_iii / assessable
    stations: Mapping[str, str]  # station id -> "IV (目标 III)", "不可评价 (目标 II)"
    below_target: tuple[str, ...] = ()  # assessable sections worse than their target
    worse_than_iii: tuple[str, ...] = ()  # assessable sections of class IV, V or 劣V


def figure_period(kind: FigurePeriod, day: date) -> Period:
    """The month of `day` up to and including it, or `day` alone."""
    if kind == "day":
        return Period("day", day, day + timedelta(days=1))
    return Period("month", day.replace(day=1), day + timedelta(days=1))


def region_figures(
    db_path: Path,
    stations: Mapping[str, Station],
    standard: Standard,
    rules: AssessmentRules,
    *,
    group_by: GroupBy,
    period: FigurePeriod,
    day: date,
) -> list[RegionFigure]:
    """Each region's figures over the period, from the alert database's stored daily values.

    The arguments are those of `alerts.assessment.PeriodAssessments` (the database, the registry,
    the standard and the assessment rules). Regions sorted by name; nothing stored gives regions
    whose sections are all 不可评价.
    """
    span = figure_period(period, day)
    daily, present = from_rows(read_daily_values(db_path, span.start.isoformat(), span.end.isoformat()))
    days = sum(1 for d in present if span.start <= d < span.end)
    return figures_of(daily, days, stations.values(), standard, rules, group_by=group_by, period=span)


def figures_of(
    daily: DailyValues,
    days_stored: int,
    stations: Iterable[Station],
    standard: Standard,
    rules: AssessmentRules,
    *,
    group_by: GroupBy,
    period: Period,
) -> list[RegionFigure]:
    """The figures of each region from daily values (pure: the core of `region_figures`)."""
    if period.kind not in ("month", "day"):
        raise ValueError(f"period figures are of a month to date or a day, not a {period.kind}")
    kind: FigurePeriod = "day" if period.kind == "day" else "month"
    # The report's selection (build_report): water-quality stations only.
    selected = [s for s in stations if "water" in s.kinds]
    results = assess_period(daily, selected, period, standard, rules)
    zone = ZoneInfo(rules.default_timezone)
    end_ns = to_ns(datetime.combine(period.end, time(0), tzinfo=zone))
    out = []
    for region, members in group_sections(list(results.values()), group_by).items():
        fig = method_figures(members, standard, rules)
        out.append(
            RegionFigure(
                group_by=group_by,
                region=region,
                period=period.label,
                period_kind=kind,
                last_day=period.end - timedelta(days=1),
                period_end_ns=end_ns,
                days_stored=days_stored,
                sections=fig.sections,
                assessable=fig.assessed,
                meeting_target=fig.meeting_target,
                class_i_iii=fig.class_i_iii,
                compliance_rate=_float(fig.meeting_target, fig.assessed),
                good_share=_float(fig.class_i_iii, fig.assessed),
                stations={s.station.id: _class_text(s) for s in members},
                below_target=tuple(s.station.id for s in members if s.meets_target is False),
                worse_than_iii=tuple(
                    s.station.id for s in members if s.water_class is not None and s.water_class not in GOOD
                ),
            )
        )
    return out


def _class_text(section: SectionResult) -> str:
    water_class = NOT_ASSESSABLE if section.water_class is None else section.water_class.value
    return f"{water_class} (目标 {section.station.target_class.value})"


def _float(part: int, whole: int) -> float | None:
    # Unrounded: the rules compare it with their threshold (4/5 is exactly 0.8 as a float).
    return part / whole if whole else None
