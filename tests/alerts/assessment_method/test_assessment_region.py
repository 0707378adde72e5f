"""Regional figures: shares, compliance, grade by shares or by averaged values, changes, ranking."""

from __future__ import annotations

from fractions import Fraction

from alerts.assessment_method.region import (
    ClassChange,
    RegionFigures,
    class_changes,
    group_sections,
    rank_districts,
    region_figures,
)
from alerts.assessment_method.rules import default_rules
from alerts.assessment_method.section import SectionResult, assess_section
from alerts.assessment_method.statistics import ItemStat
from config.registry import WaterClass
from config.standards import WaterBody, default_standard
from tests.helpers import station

STANDARD = default_standard()
RULES = default_rules()
C = WaterClass
# NH3-N decides the class: every other item is class I.
BY_CLASS = {C.I: 0.1, C.II: 0.3, C.III: 0.8, C.IV: 1.2, C.V: 1.8, C.WORSE_THAN_V: 2.5}
CLEAN = {"ph": 7.5, "do": 8.0, "codmn": 1.5, "tp": 0.01}


def section(
    sid: str,
    water_class: WaterClass | None,
    target: WaterClass = C.III,
    district: str = "渝中区",
    body: WaterBody = "river",
    values: dict[str, float] | None = None,
) -> SectionResult:
    items = (
        values
        if values is not None
        else CLEAN | ({} if water_class is None else {"nh3n": BY_CLASS[water_class]})
    )
    stats = {code: ItemStat(v, 0.0, None, 30, 1) for code, v in items.items()}
    result = assess_section(
        station(sid, target_class=target, district=district, water_body=body), stats, STANDARD, RULES
    )
    assert result.water_class is water_class
    return result


def classes(*wanted: WaterClass | None) -> list[SectionResult]:
    return [section(f"s{i}", c) for i, c in enumerate(wanted)]


def test_shares_and_compliance_of_assessed_sections() -> None:
    """Ten sections, one not assessable: nine assessed; I–III 6/9, 劣V 2/9, compliance (target III) 6/9."""
    fig = region_figures(
        classes(C.I, C.II, C.II, C.III, C.III, C.III, C.IV, C.WORSE_THAN_V, C.WORSE_THAN_V, None),
        STANDARD,
        RULES,
    )
    assert (fig.sections, fig.assessed, fig.class_i_iii, fig.worse_than_v, fig.meeting_target) == (
        10,
        9,
        6,
        2,
        6,
    )
    assert fig.figure("share_i_iii") == Fraction(2, 3)
    assert fig.figure("share_worse_than_v") == Fraction(2, 9)
    assert fig.figure("compliance_rate") == Fraction(2, 3)
    assert (fig.grade, fig.grade_basis) == ("中度污染", "shares")


def test_share_rungs_at_their_bounds() -> None:
    """90 % I–III is 优, 75 % 良好; below 75 %: 劣V under 20 % 轻度, 20 % to under 40 % 中度, 40 % on 重度."""
    ten = [C.II] * 9 + [C.IV]
    assert region_figures(classes(*ten), STANDARD, RULES).grade == "优"
    four = [C.II] * 3 + [C.IV]
    assert region_figures(classes(*four * 2), STANDARD, RULES).grade == "良好"
    light = [C.II] * 7 + [C.IV] * 2 + [C.WORSE_THAN_V]  # 70 % I–III, 10 % 劣V
    assert region_figures(classes(*light), STANDARD, RULES).grade == "轻度污染"
    middle = [C.II] * 7 + [C.IV] + [C.WORSE_THAN_V] * 2  # 劣V exactly 20 %
    assert region_figures(classes(*middle), STANDARD, RULES).grade == "中度污染"
    heavy = [C.II] * 6 + [C.WORSE_THAN_V] * 4  # 劣V exactly 40 %
    assert region_figures(classes(*heavy), STANDARD, RULES).grade == "重度污染"


def test_exactly_five_sections_use_the_shares() -> None:
    """Five sections, four II and one 劣V: shares (80 % I–III) give 良好, not the averaged values."""
    fig = region_figures(classes(C.II, C.II, C.II, C.II, C.WORSE_THAN_V), STANDARD, RULES)
    assert (fig.grade, fig.grade_basis, fig.mean_class) == ("良好", "shares", None)


def test_fewer_than_five_sections_average_the_items() -> None:
    """II and 劣V: NH3-N (0.3 + 2.5) / 2 = 1.4 is class IV, 轻度污染 (the shares would say 重度污染)."""
    fig = region_figures(classes(C.II, C.WORSE_THAN_V), STANDARD, RULES)
    assert (fig.grade, fig.grade_basis, fig.mean_class) == ("轻度污染", "mean_values", C.IV)
    fig = region_figures(classes(C.II, C.WORSE_THAN_V, C.WORSE_THAN_V), STANDARD, RULES)
    assert fig.mean_class is C.V  # (0.3 + 2.5 + 2.5) / 3 = 1.767
    assert fig.grade == "中度污染"


def test_averaged_values_use_lake_limits_only_for_lakes() -> None:
    """TP 0.05 and 0.07: mean 0.06 is IV on lakes, II on rivers; a mixed region uses river limits."""
    values = {"ph": 7.5, "do": 8.0, "codmn": 1.5, "nh3n": 0.1, "tn": 0.2}
    lakes = [
        section("a", C.III, body="lake", values=values | {"tp": 0.05}),
        section("b", C.IV, body="lake", values=values | {"tp": 0.07}),
    ]
    assert region_figures(lakes, STANDARD, RULES).mean_class is C.IV
    mixed = [lakes[0], section("c", C.II, values=values | {"tp": 0.07})]
    assert region_figures(mixed, STANDARD, RULES).mean_class is C.II


def test_region_without_assessed_sections() -> None:
    """No assessed section: no shares, no grade."""
    fig = region_figures(classes(None, None), STANDARD, RULES)
    assert (fig.sections, fig.assessed, fig.grade) == (2, 0, None)
    assert fig.figure("share_i_iii") is None


def test_class_changes_between_periods() -> None:
    """Sections assessed in both periods with another class are listed, better or worse."""
    now = {s.station.id: s for s in classes(C.II, C.III, C.IV, None)}
    before = {s.station.id: s for s in classes(C.III, C.III, C.II, C.II)}
    changes = class_changes(now, before)
    assert changes == [ClassChange("s0", C.III, C.II), ClassChange("s2", C.II, C.IV)]
    assert [c.direction for c in changes] == ["better", "worse"]


def test_district_ranking_with_ties() -> None:
    """Ranked by I–III share, then 劣V share, then compliance; equal figures share a rank."""

    def fig(good: int, bad: int, meeting: int, assessed: int = 10) -> RegionFigures:
        return RegionFigures(assessed, assessed, meeting, good, bad, None, None, None)

    ranks = rank_districts(
        {
            "A": fig(8, 1, 8),
            "B": fig(9, 0, 9),
            "C": fig(8, 0, 7),
            "D": fig(8, 0, 7),
            "E": fig(8, 0, 8),
            "F": fig(0, 0, 0, assessed=0),
        },
        RULES,
    )
    assert ranks == {"B": 1, "E": 2, "C": 3, "D": 3, "A": 5}


def test_grouping_by_district() -> None:
    """Sections group by their station's district, names sorted."""
    sections = [
        section("a", C.II, district="万州区"),
        section("b", C.II),
        section("c", C.II, district="万州区"),
    ]
    groups = group_sections(sections, "district")
    assert list(groups) == ["万州区", "渝中区"]
    assert [s.station.id for s in groups["万州区"]] == ["a", "c"]
