"""The assessment of one section (断面) over a period, from its items' period values.

- Class: the worst class among the items that set the section's class on its water body (GB 3838
  data: 21 items, TN of lakes and reservoirs apart). A section lacking a required item
  (`required_items`) has no class, no grade, no main pollutants and `meets_target` None: missing
  data never makes it better. Items that are present are still reported and still listed when
  worse than the target.
- Lakes and reservoirs: TP by the lake limits, TN classed on its own (`separately`), and the
  trophic state index when its items are present (trophic.py).
- Main pollutants (主要污染指标): when the class is worse than III, the items worse than class III,
  cyanide and the heavy metals of `priority_items` first, then the worst class first, then the
  largest exceedance multiple (value / class III limit − 1, `max` items only, so none for pH, DO,
  temperature); at most `max_items`. `order: multiple` ranks by multiple alone.
- Items worse than the target (超标因子), separately: every item that sets the class and is worse
  than the target class, ranked the same way, with its multiple against the target class's limit.
- Meets target: class equal to or better than the target. Grade: by class (`section_grades`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from alerts.assessment_method.rules import AssessmentRules
from alerts.assessment_method.statistics import ItemStat
from alerts.assessment_method.trophic import TrophicState, trophic_state
from alerts.assessment_method.values import ItemValue, decimal_of, item_value, round_half_even
from config.registry import Station, WaterClass
from config.standards import LAKE_LIKE, Assessment, Standard


@dataclass(frozen=True, slots=True)
class Pollutant:
    """An item worse than a reference class, with its exceedance multiple (None: not defined)."""

    code: str
    water_class: WaterClass
    multiple: Decimal | None

    def to_json(self) -> dict[str, object]:
        return {
            "parameter": self.code,
            "class": self.water_class.value,
            "multiple": None if self.multiple is None else float(self.multiple),
        }


@dataclass(frozen=True, slots=True)
class SectionResult:
    """One section's assessment over one period."""

    station: Station
    values: dict[str, ItemValue]
    missing: tuple[str, ...]
    water_class: WaterClass | None
    meets_target: bool | None
    grade: str | None
    primary_pollutants: tuple[Pollutant, ...]
    worse_than_target: tuple[Pollutant, ...]
    separately: dict[str, WaterClass]
    trophic: TrophicState | None

    @property
    def assessable(self) -> bool:
        return self.water_class is not None


def assess_section(
    station: Station, stats: Mapping[str, ItemStat], standard: Standard, rules: AssessmentRules
) -> SectionResult:
    """The section's result from its items' period statistics (item code -> statistic)."""
    values = {
        code: item_value(code, stats[code], standard, rules, station.water_body)
        for code in item_order(standard, rules)
        if code in stats
    }
    return section_result(station, values, standard, rules)


def item_order(standard: Standard, rules: AssessmentRules) -> list[str]:
    """The reported items: the standard's order, then the extra items."""
    return [code for code in (*standard.items, *rules.extra_items) if code in rules.decimals]


def section_result(
    station: Station, values: Mapping[str, ItemValue], standard: Standard, rules: AssessmentRules
) -> SectionResult:
    """The section's result from its items' reported values."""
    body = station.water_body
    classed: dict[str, WaterClass] = {}
    separately: dict[str, WaterClass] = {}
    for code, value in values.items():
        item = standard.items.get(code)
        if item is None or value.water_class is None:
            continue
        assessment = item.assessment_for(body)
        if assessment is Assessment.ASSESSED:
            classed[code] = value.water_class
        elif assessment is Assessment.SEPARATELY:
            separately[code] = value.water_class
    missing = tuple(code for code in rules.required_items.for_body(body) if code not in values)
    worst = max(classed.values(), key=lambda c: c.rank, default=None)
    water_class = None if missing else worst
    reference = rules.primary_pollutants.reference_class
    decimals = rules.primary_pollutants.multiple_decimals
    primary: tuple[Pollutant, ...] = ()
    if water_class is not None and water_class.rank > reference.rank:
        over = _worse_than(reference, classed, values, standard, station, decimals=decimals)
        primary = tuple(_ranked(over, standard, rules)[: rules.primary_pollutants.max_items])
    target = station.target_class
    over_target = _worse_than(target, classed, values, standard, station, decimals=decimals)
    worse = _ranked(over_target, standard, rules)
    trophic = None
    if body in LAKE_LIKE:
        trophic = trophic_state({code: v.value for code, v in values.items()}, rules.trophic)
    return SectionResult(
        station=station,
        values=dict(values),
        missing=missing,
        water_class=water_class,
        meets_target=None if water_class is None else water_class.rank <= target.rank,
        grade=None if water_class is None else rules.section_grades[water_class],
        primary_pollutants=primary,
        worse_than_target=tuple(worse),
        separately=separately,
        trophic=trophic,
    )


def multiple(
    code: str, value: Decimal, reference: WaterClass, standard: Standard, station: Station, *, decimals: int
) -> Decimal | None:
    """Exceedance multiple against the reference class's limit (max items above it only)."""
    item = standard.items[code]
    limits = item.limits_for(station.water_body)
    if item.kind != "max" or limits is None:
        return None
    limit = decimal_of(limits[standard.classes.index(reference)])
    if value <= limit:
        return None
    return round_half_even(value / limit - 1, decimals)


def _worse_than(
    reference: WaterClass,
    classed: Mapping[str, WaterClass],
    values: Mapping[str, ItemValue],
    standard: Standard,
    station: Station,
    *,
    decimals: int,
) -> Iterable[Pollutant]:
    for code, water_class in classed.items():
        if water_class.rank > reference.rank:
            value = values[code].value
            yield Pollutant(
                code, water_class, multiple(code, value, reference, standard, station, decimals=decimals)
            )


def _ranked(pollutants: Iterable[Pollutant], standard: Standard, rules: AssessmentRules) -> list[Pollutant]:
    settings = rules.primary_pollutants
    order = {code: i for i, code in enumerate(standard.items)}
    by_class = settings.order == "class_then_multiple"

    def key(p: Pollutant) -> tuple[bool, int, bool, Decimal, int]:
        return (
            p.code not in settings.priority_items,
            -p.water_class.rank if by_class else 0,
            p.multiple is None,
            -(p.multiple or Decimal(0)),
            order[p.code],
        )

    return sorted(pollutants, key=key)
