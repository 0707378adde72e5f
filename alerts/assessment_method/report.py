"""A period's report: every section and region, against the previous period and last year.

`build_report(daily, stations, period, standard, rules, scope)` assesses the sections of `stations`
(water-quality stations only, optionally those of one district, basin or river) over the period,
the previous period (环比, months and quarters) and the same period last year (同比), and sums
them up per district, basin, river and overall. `report_json` is the JSON document of
`ecowatch report --format json`; the renderers (render_*.py) print the same report.

`daily` holds whatever days the reader found: a period without data gives sections without a class
(and empty comparisons), never an error. `report_windows(period)` names the days to read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any, get_args
from zoneinfo import ZoneInfo

from alerts.assessment_method.daily import DailyValues
from alerts.assessment_method.period import Period
from alerts.assessment_method.region import (
    GROUPINGS,
    ClassChange,
    GroupBy,
    RegionFigures,
    class_changes,
    group_name,
    group_sections,
    rank_districts,
    region_figures,
)
from alerts.assessment_method.rules import AssessmentRules, Figure
from alerts.assessment_method.section import SectionResult, assess_section
from alerts.assessment_method.statistics import ItemStat, period_stats
from alerts.assessment_method.values import round_half_even
from config.registry import Station
from config.standards import Standard

FIGURES: tuple[Figure, ...] = get_args(Figure)


class ScopeError(ValueError):
    """A region filter that is not `district:NAME`, `basin:NAME` or `river:NAME`."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Restrict a report to one district, basin or river."""

    kind: GroupBy
    name: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, sep, name = text.partition(":")
        for by in GROUPINGS:
            if sep and kind == by and name.strip():
                return cls(by, name.strip())
        raise ScopeError(f"{text!r}: use district:NAME, basin:NAME or river:NAME")

    def matches(self, station: Station) -> bool:
        return group_name(station, self.kind) == self.name


@dataclass(frozen=True, slots=True)
class SectionReport:
    """A section this period, the previous period and the same period last year."""

    current: SectionResult
    previous: SectionResult | None
    last_year: SectionResult | None


@dataclass(frozen=True, slots=True)
class RegionReport:
    """A region's figures this period and in the periods compared."""

    current: RegionFigures
    previous: RegionFigures | None
    last_year: RegionFigures | None
    changed_vs_previous: tuple[ClassChange, ...]
    changed_vs_last_year: tuple[ClassChange, ...]
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a period report prints."""

    period: Period
    previous_period: Period | None
    last_year_period: Period
    standard: Standard
    rules: AssessmentRules
    scope: Scope | None
    sections: tuple[SectionReport, ...]
    regions: dict[GroupBy, dict[str, RegionReport]]
    overall: RegionReport


def report_windows(period: Period) -> list[tuple[date, date]]:
    """The local day ranges a report of `period` reads: the period, the previous one, last year's."""
    periods = [period, period.previous(), period.last_year()]
    return [(p.start, p.end) for p in periods if p is not None]


def station_zones(stations: Sequence[Station], rules: AssessmentRules) -> dict[str, tzinfo]:
    """Each station's zone for its local days: its own, else the rules' default."""
    default = ZoneInfo(rules.default_timezone)
    return {s.id: ZoneInfo(s.timezone) if s.timezone else default for s in stations}


def assess_period(
    daily: DailyValues,
    stations: Sequence[Station],
    period: Period,
    standard: Standard,
    rules: AssessmentRules,
) -> dict[str, SectionResult]:
    """Every station's section result over `period`, in the order of `stations`."""
    per_station: dict[str, dict[str, ItemStat]] = {}
    for (station_id, code), stat in period_stats(daily, period, rules).items():
        per_station.setdefault(station_id, {})[code] = stat
    return {s.id: assess_section(s, per_station.get(s.id, {}), standard, rules) for s in stations}


def build_report(
    daily: DailyValues,
    stations: Sequence[Station],
    period: Period,
    standard: Standard,
    rules: AssessmentRules,
    *,
    scope: Scope | None = None,
) -> Report:
    """The report of `period` over the water-quality stations of `stations` (within `scope`)."""
    selected = [s for s in stations if "water" in s.kinds and (scope is None or scope.matches(s))]
    previous_period = period.previous()
    last_year_period = period.last_year()
    current = assess_period(daily, selected, period, standard, rules)
    previous = (
        None if previous_period is None else assess_period(daily, selected, previous_period, standard, rules)
    )
    last_year = assess_period(daily, selected, last_year_period, standard, rules)

    def region(ids: Sequence[str]) -> RegionReport:
        return _region_report(
            ids, current, previous=previous, last_year=last_year, standard=standard, rules=rules
        )

    regions: dict[GroupBy, dict[str, RegionReport]] = {}
    for by in GROUPINGS:
        groups = group_sections(list(current.values()), by)
        regions[by] = {name: region([s.station.id for s in members]) for name, members in groups.items()}
    ranks = rank_districts({name: r.current for name, r in regions["district"].items()}, rules)
    regions["district"] = {name: replace(r, rank=ranks.get(name)) for name, r in regions["district"].items()}
    return Report(
        period=period,
        previous_period=previous_period,
        last_year_period=last_year_period,
        standard=standard,
        rules=rules,
        scope=scope,
        sections=tuple(
            SectionReport(current[s.id], None if previous is None else previous[s.id], last_year[s.id])
            for s in selected
        ),
        regions=regions,
        overall=region([s.id for s in selected]),
    )


def _region_report(
    ids: Sequence[str],
    current: Mapping[str, SectionResult],
    *,
    previous: Mapping[str, SectionResult] | None,
    last_year: Mapping[str, SectionResult],
    standard: Standard,
    rules: AssessmentRules,
) -> RegionReport:
    now = {i: current[i] for i in ids}
    return RegionReport(
        current=region_figures(list(now.values()), standard, rules),
        previous=None if previous is None else region_figures([previous[i] for i in ids], standard, rules),
        last_year=region_figures([last_year[i] for i in ids], standard, rules),
        changed_vs_previous=() if previous is None else tuple(class_changes(now, previous)),
        changed_vs_last_year=tuple(class_changes(now, last_year)),
    )


def report_json(report: Report) -> dict[str, Any]:
    """The report as the JSON document of `ecowatch report --format json`."""
    places = report.rules.share_decimals
    return {
        "period": _period_json(report.period),
        "previous_period": None if report.previous_period is None else _period_json(report.previous_period),
        "last_year_period": _period_json(report.last_year_period),
        "standard": report.standard.name,
        "method": report.rules.method,
        "scope": None if report.scope is None else {"kind": report.scope.kind, "name": report.scope.name},
        "sections": [_section_json(s) for s in report.sections],
        "regions": {
            by: {name: _region_json(r, places) for name, r in report.regions[by].items()} for by in GROUPINGS
        },
        "overall": _region_json(report.overall, places),
    }


def share(value: Fraction | None, places: int) -> float | None:
    """A share as a JSON number, GB/T 8170-rounded to `places` decimals."""
    if value is None:
        return None
    return float(round_half_even(Decimal(value.numerator) / Decimal(value.denominator), places))


def _period_json(period: Period) -> dict[str, str]:
    return {
        "label": period.label,
        "label_zh": period.label_zh,
        "kind": period.kind,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
    }


def _section_json(report: SectionReport) -> dict[str, Any]:
    s = report.current
    station = s.station
    return {
        "station_id": station.id,
        "name": station.name,
        "river": station.river,
        "basin": station.basin,
        "district": station.district,
        "water_body": station.water_body,
        "target": station.target_class.value,
        "assessable": s.assessable,
        "class": _class(s),
        "meets_target": s.meets_target,
        "grade": s.grade,
        "missing": list(s.missing),
        "primary_pollutants": [
            {"parameter": p.code, "multiple": None if p.multiple is None else float(p.multiple)}
            for p in s.primary_pollutants
        ],
        "worse_than_target": [p.to_json() for p in s.worse_than_target],
        "separately_assessed": {code: c.value for code, c in s.separately.items()},
        "trophic": None
        if s.trophic is None
        else {"tli": float(s.trophic.tli), "grade": s.trophic.grade, "items": list(s.trophic.items)},
        "values": {code: v.to_json() for code, v in s.values.items()},
        "previous_class": _class(report.previous),
        "last_year_class": _class(report.last_year),
    }


def _region_json(region: RegionReport, places: int) -> dict[str, Any]:
    out = {**_figures_json(region.current, places)}
    out["previous"] = None if region.previous is None else _figures_json(region.previous, places)
    out["last_year"] = None if region.last_year is None else _figures_json(region.last_year, places)
    out["change_vs_previous"] = _change_json(region.current, region.previous, places)
    out["change_vs_last_year"] = _change_json(region.current, region.last_year, places)
    out["changed_vs_previous"] = [_class_change_json(c) for c in region.changed_vs_previous]
    out["changed_vs_last_year"] = [_class_change_json(c) for c in region.changed_vs_last_year]
    out["rank"] = region.rank
    return out


def _figures_json(fig: RegionFigures, places: int) -> dict[str, Any]:
    return {
        "sections": fig.sections,
        "assessed": fig.assessed,
        "meeting_target": fig.meeting_target,
        "class_i_iii": fig.class_i_iii,
        "worse_than_v": fig.worse_than_v,
        **{name: share(fig.figure(name), places) for name in FIGURES},
        "grade": fig.grade,
        "grade_basis": fig.grade_basis,
        "mean_class": None if fig.mean_class is None else fig.mean_class.value,
    }


def _change_json(
    now: RegionFigures, before: RegionFigures | None, places: int
) -> dict[str, float | None] | None:
    if before is None:
        return None
    out: dict[str, float | None] = {}
    for name in FIGURES:
        a, b = now.figure(name), before.figure(name)
        out[name] = None if a is None or b is None else share(a - b, places)
    return out


def _class_change_json(change: ClassChange) -> dict[str, str]:
    return {
        "station_id": change.station_id,
        "from": change.before.value,
        "to": change.after.value,
        "direction": change.direction,
    }


def _class(section: SectionResult | None) -> str | None:
    return None if section is None or section.water_class is None else section.water_class.value
