"""Figures of a region (district, river, basin, the whole registry) from its sections' results.

- `assessed`: sections with a class; `sections`: all water-quality sections of the region, so the
  not assessable are visible (they are left out of every share, as the method defines the shares
  over assessed sections).
- Shares of assessed sections (exact fractions until printed): I–III (水质优良比例), 劣V, and the
  compliance rate (达标率: sections meeting their target).
- Grade: from `min_sections_for_shares` assessed sections (5), by the share rungs (first match,
  compared exactly: 90 % is 优); with fewer, each item's reported value is averaged over the
  assessed sections that have it (as decimals, then GB/T 8170 to the item's precision), classed
  (lake limits when every section is a lake or reservoir), and the worst class graded as a section.
- Changes: figures against the previous period and the same period last year, and the sections
  whose class changed (both periods assessed).
- District ranking: by `ranking` (share I–III, then 劣V, then compliance by default); ties share
  a rank (1, 2, 2, 4); districts with no assessed section are not ranked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from alerts.assessment_method.rules import AssessmentRules, Figure
from alerts.assessment_method.section import SectionResult
from alerts.assessment_method.values import round_half_even
from alerts.classify import classify_value
from config.registry import Station, WaterClass
from config.standards import LAKE_LIKE, Assessment, Standard, WaterBody

GroupBy = Literal["district", "basin", "river"]
GROUPINGS: tuple[GroupBy, ...] = ("district", "basin", "river")
GOOD: frozenset[WaterClass] = frozenset({WaterClass.I, WaterClass.II, WaterClass.III})


@dataclass(frozen=True, slots=True)
class RegionFigures:
    """A region's counts, shares and grade over one period."""

    sections: int
    assessed: int
    meeting_target: int
    class_i_iii: int
    worse_than_v: int
    grade: str | None
    grade_basis: Literal["shares", "mean_values"] | None
    mean_class: WaterClass | None  # the class of the averaged values (fewer sections than the rungs need)

    def figure(self, name: Figure) -> Fraction | None:
        """A share or rate of assessed sections, exact; None without an assessed section."""
        if not self.assessed:
            return None
        part = {
            "share_i_iii": self.class_i_iii,
            "share_worse_than_v": self.worse_than_v,
            "compliance_rate": self.meeting_target,
        }[name]
        return Fraction(part, self.assessed)


@dataclass(frozen=True, slots=True)
class ClassChange:
    """A section whose class differs between two periods."""

    station_id: str
    before: WaterClass
    after: WaterClass

    @property
    def direction(self) -> Literal["better", "worse"]:
        return "better" if self.after.rank < self.before.rank else "worse"


def region_figures(
    sections: Sequence[SectionResult], standard: Standard, rules: AssessmentRules
) -> RegionFigures:
    """The figures of the region made of `sections`."""
    assessed = [s for s in sections if s.water_class is not None]
    good = sum(1 for s in assessed if s.water_class in GOOD)
    bad = sum(1 for s in assessed if s.water_class is WaterClass.WORSE_THAN_V)
    meeting = sum(1 for s in assessed if s.meets_target)
    grade: str | None = None
    basis: Literal["shares", "mean_values"] | None = None
    mean_class: WaterClass | None = None
    if len(assessed) >= rules.region_grades.min_sections_for_shares:
        share_good, share_bad = Fraction(good, len(assessed)), Fraction(bad, len(assessed))
        grade, basis = _grade_by_shares(share_good, share_bad, rules), "shares"
    elif assessed:
        mean_class = _class_of_means(assessed, standard, rules)
        if mean_class is not None:
            grade, basis = rules.section_grades[mean_class], "mean_values"
    return RegionFigures(len(sections), len(assessed), meeting, good, bad, grade, basis, mean_class)


def group_sections(sections: Sequence[SectionResult], by: GroupBy) -> dict[str, list[SectionResult]]:
    """Sections by district, basin or river name, names sorted."""
    groups: dict[str, list[SectionResult]] = {}
    for section in sections:
        groups.setdefault(group_name(section.station, by), []).append(section)
    return dict(sorted(groups.items()))


def rank_districts(figures: Mapping[str, RegionFigures], rules: AssessmentRules) -> dict[str, int]:
    """Rank (1 = best) of every region with an assessed section."""
    keyed: list[tuple[tuple[Fraction, ...], str]] = []
    for name, fig in figures.items():
        if not fig.assessed:
            continue
        figures_ = [fig.figure(k.figure) or Fraction(0) for k in rules.ranking]
        key = tuple(-v if k.order == "desc" else v for v, k in zip(figures_, rules.ranking, strict=True))
        keyed.append((key, name))
    keyed.sort()
    ranks: dict[str, int] = {}
    previous: tuple[Fraction, ...] | None = None
    for position, (key, name) in enumerate(keyed, start=1):
        ranks[name] = ranks[keyed[position - 2][1]] if key == previous else position
        previous = key
    return ranks


def class_changes(
    current: Mapping[str, SectionResult], before: Mapping[str, SectionResult]
) -> list[ClassChange]:
    """Sections assessed in both periods whose class differs, in the order of `current`."""
    out: list[ClassChange] = []
    for station_id, now in current.items():
        then = before.get(station_id)
        if now.water_class is None or then is None or then.water_class is None:
            continue
        if now.water_class is not then.water_class:
            out.append(ClassChange(station_id, then.water_class, now.water_class))
    return out


def _grade_by_shares(good: Fraction, bad: Fraction, rules: AssessmentRules) -> str:
    for rung in rules.region_grades.by_shares:
        if rung.min_share_i_iii is not None and good < Fraction(repr(rung.min_share_i_iii)):
            continue
        if rung.max_share_worse_than_v is not None and bad >= Fraction(repr(rung.max_share_worse_than_v)):
            continue
        return rung.grade
    return rules.region_grades.by_shares[-1].grade


def _class_of_means(
    assessed: Sequence[SectionResult], standard: Standard, rules: AssessmentRules
) -> WaterClass | None:
    body: WaterBody = "lake" if all(s.station.water_body in LAKE_LIKE for s in assessed) else "river"
    worst: WaterClass | None = None
    for code, item in standard.items.items():
        if item.assessment_for(body) is not Assessment.ASSESSED or code not in rules.decimals:
            continue
        values = [s.values[code].value for s in assessed if code in s.values]
        if not values:
            continue
        mean = round_half_even(sum(values, Decimal(0)) / len(values), rules.decimals[code])
        water_class = classify_value(standard, code, float(mean), body)
        if water_class is not None and (worst is None or water_class.rank > worst.rank):
            worst = water_class
    return worst


_ATTRIBUTES: dict[GroupBy, Callable[[Station], str]] = {
    "district": lambda s: s.district,
    "basin": lambda s: s.basin,
    "river": lambda s: s.river,
}


def group_name(station: Station, by: GroupBy) -> str:
    """The station's district, basin or river."""
    return _ATTRIBUTES[by](station)
