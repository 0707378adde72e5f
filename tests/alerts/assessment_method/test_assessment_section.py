"""A section's assessment: worst item, required items, lakes, TLI, main pollutants, target, grade."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alerts.assessment_method.rules import AssessmentRules, default_rules
from alerts.assessment_method.section import Pollutant, SectionResult, assess_section
from alerts.assessment_method.statistics import ItemStat
from alerts.assessment_method.trophic import grade_of, trophic_state
from config.registry import WaterClass
from config.standards import WaterBody, default_standard
from tests.helpers import station

STANDARD = default_standard()
RULES = default_rules()
C = WaterClass
CLEAN = {"ph": 7.5, "do": 8.0, "codmn": 3.0, "nh3n": 0.3, "tp": 0.08}  # class II by CODMn, NH3-N, TP


def assess(
    values: dict[str, float],
    target: WaterClass = C.III,
    body: WaterBody = "river",
    rules: AssessmentRules = RULES,
    top: dict[str, float] | None = None,
) -> SectionResult:
    stats = {code: ItemStat(v, 0.0, (top or {}).get(code), 30, 1) for code, v in values.items()}
    return assess_section(station("s1", target_class=target, water_body=body), stats, STANDARD, rules)


def test_class_is_the_worst_item() -> None:
    """Clean values with CODMn 7.0 (IV): class IV, grade 轻度污染, misses a III target."""
    result = assess(CLEAN | {"codmn": 7.0})
    assert (result.water_class, result.grade, result.meets_target) == (C.IV, "轻度污染", False)
    assert result.assessable


def test_meets_target_when_equal_or_better() -> None:
    """Class II meets targets II and III, not I."""
    assert assess(CLEAN, target=C.II).meets_target is True
    assert assess(CLEAN, target=C.III).meets_target is True
    assert assess(CLEAN, target=C.I).meets_target is False


def test_ph_alone_is_not_assessable() -> None:
    """`--target II ph=7.5` alone: no class, no grade, meets_target None — never "class I, meets target"."""
    result = assess({"ph": 7.5}, target=C.II)
    assert not result.assessable
    assert (result.water_class, result.meets_target, result.grade) == (None, None, None)
    assert result.missing == ("do", "codmn", "nh3n", "tp")
    assert result.primary_pollutants == ()


def test_missing_item_never_makes_a_section_better() -> None:
    """Without TP (its analyser flagged D all month) a section is not assessable, not class I."""
    result = assess({"ph": 7.5, "do": 8.0, "codmn": 1.5, "nh3n": 0.1}, target=C.II)
    assert (result.water_class, result.meets_target, result.missing) == (None, None, ("tp",))


def test_items_worse_than_target_are_listed_even_when_not_assessable() -> None:
    """Present items worse than the target are facts an operator needs, class or not."""
    result = assess({"ph": 7.5, "nh3n": 1.7}, target=C.II)
    assert result.water_class is None
    assert result.worse_than_target == (Pollutant("nh3n", C.V, Decimal("2.40")),)


def test_grades_by_class() -> None:
    """I and II 优, III 良好, IV 轻度污染, V 中度污染, 劣V 重度污染."""
    cases = {0.1: "优", 0.3: "优", 0.8: "良好", 1.2: "轻度污染", 1.8: "中度污染", 2.2: "重度污染"}
    for nh3n, grade in cases.items():
        assert assess(CLEAN | {"nh3n": nh3n, "tp": 0.01, "codmn": 1.0}).grade == grade


def test_main_pollutants_against_class_iii_with_multiples() -> None:
    """TP 0.4 (V, 1.00), NH3-N 1.3 (IV, 0.30), CODMn 7.0 (IV, 0.17): worst class first, then multiple."""
    result = assess(CLEAN | {"tp": 0.4, "nh3n": 1.3, "codmn": 7.0})
    assert result.water_class is C.V
    assert result.primary_pollutants == (
        Pollutant("tp", C.V, Decimal("1.00")),
        Pollutant("nh3n", C.IV, Decimal("0.30")),
        Pollutant("codmn", C.IV, Decimal("0.17")),
    )


def test_at_most_three_main_pollutants_without_multiple_last() -> None:
    """Four items 劣V: TP 2.00, CODMn 1.83, NH3-N 1.50 by multiple; DO (no multiple) is cut."""
    result = assess(CLEAN | {"do": 1.6, "nh3n": 2.5, "tp": 0.6, "codmn": 17.0})
    assert [(p.code, p.multiple) for p in result.primary_pollutants] == [
        ("tp", Decimal("2.00")),
        ("codmn", Decimal("1.83")),
        ("nh3n", Decimal("1.50")),
    ]
    assert [p.code for p in result.worse_than_target] == ["tp", "codmn", "nh3n", "do"]


def test_do_is_a_main_pollutant_without_multiple() -> None:
    """DO 2.5 (V) next to NH3-N 1.8 (V, 0.80): NH3-N first, DO after it, with no multiple."""
    result = assess(CLEAN | {"do": 2.5, "nh3n": 1.8})
    assert result.primary_pollutants == (Pollutant("nh3n", C.V, Decimal("0.80")), Pollutant("do", C.V, None))


def test_no_main_pollutants_at_class_iii_or_better() -> None:
    """Class III is not worse than III: no main pollutants, whatever the target."""
    result = assess(CLEAN | {"nh3n": 1.0}, target=C.II)
    assert result.water_class is C.III
    assert result.primary_pollutants == ()
    assert result.worse_than_target == (Pollutant("nh3n", C.III, Decimal("1.00")),)


def test_worse_than_target_multiple_against_target_limit() -> None:
    """Target II, CODMn 4.04 (III): worse than target by 4.04 / 4 - 1 = 0.01."""
    result = assess(CLEAN | {"codmn": 4.04}, target=C.II)
    assert result.worse_than_target == (Pollutant("codmn", C.III, Decimal("0.01")),)


def test_priority_items_come_first() -> None:
    """Cadmium 0.008 (V, a priority heavy metal) leads NH3-N 2.5 (劣V); without priority, 劣V leads."""
    result = assess(CLEAN | {"cd": 0.008, "nh3n": 2.5})
    assert [p.code for p in result.primary_pollutants] == ["cd", "nh3n"]
    settings = RULES.primary_pollutants.model_copy(update={"priority_items": ()})
    plain = RULES.model_copy(update={"primary_pollutants": settings})
    assert [p.code for p in assess(CLEAN | {"cd": 0.008, "nh3n": 2.5}, rules=plain).primary_pollutants] == [
        "nh3n",
        "cd",
    ]


def test_order_by_multiple_alone() -> None:
    """TP 0.31 (V, 0.55) and CODMn 9.9 (IV, 0.65): by class TP first; with `order: multiple` CODMn."""
    values = CLEAN | {"tp": 0.31, "codmn": 9.9}
    assert [p.code for p in assess(values).primary_pollutants] == ["tp", "codmn"]
    settings = RULES.primary_pollutants.model_copy(update={"order": "multiple"})
    rules = RULES.model_copy(update={"primary_pollutants": settings})
    assert [(p.code, p.multiple) for p in assess(values, rules=rules).primary_pollutants] == [
        ("codmn", Decimal("0.65")),
        ("tp", Decimal("0.55")),
    ]


def test_over_range_item_sets_the_class() -> None:
    """NH3-N mean 0.3 with a T result 2.5: at least 2.5, 劣V, main pollutant at 1.50."""
    result = assess(CLEAN, target=C.II, top={"nh3n": 2.5})
    assert result.water_class is C.WORSE_THAN_V
    assert result.values["nh3n"].text == "≥2.500"
    assert result.primary_pollutants == (Pollutant("nh3n", C.WORSE_THAN_V, Decimal("1.50")),)


def test_lake_tp_limits_and_separate_tn() -> None:
    """Lake: TP 0.05 is III (a river's II); TN 1.2 is classed IV on its own and never sets the class."""
    lake = assess(CLEAN | {"tp": 0.05, "tn": 1.2}, body="lake")
    assert lake.water_class is C.III
    assert lake.separately == {"tn": C.IV}
    assert lake.meets_target is True
    river = assess(CLEAN | {"tp": 0.05, "tn": 1.2})
    assert (river.water_class, river.separately) == (C.II, {})


def test_lake_needs_tn() -> None:
    """TN is a required item of lakes and reservoirs (for its separate class)."""
    result = assess(CLEAN | {"tp": 0.05}, body="reservoir")
    assert (result.water_class, result.missing) == (None, ("tn",))


def test_tli_worked_example() -> None:
    """Chl a 10, TP 0.05, TN 1.0, SD 1.0, CODMn 4.0.

    TLI(j): chla 10(2.5 + 1.086 ln 10) = 50.006; TP 10(9.436 + 1.624 ln 0.05) = 45.709;
    TN 10(5.453 + 0) = 54.530; SD 10(5.118 - 0) = 51.180; CODMn 10(0.109 + 2.661 ln 4) = 37.979.
    Weights r^2 / 3.7558: 0.26626, 0.18787, 0.17903, 0.18342, 0.18342.
    TLI(Σ) = 13.314 + 8.587 + 9.763 + 9.388 + 6.966 = 48.02 -> 48.0, 中营养.
    """
    values = {"chla": Decimal("10.0"), "tp": Decimal("0.050"), "tn": Decimal("1.00"), "sd": Decimal("1.00"),
              "codmn": Decimal("4.00")}  # fmt: skip
    state = trophic_state(values, RULES.trophic)
    assert state is not None
    assert (state.tli, state.grade) == (Decimal("48.0"), "中营养")
    assert trophic_state({k: v for k, v in values.items() if k != "sd"}, RULES.trophic) is None


def test_tli_of_a_lake_section() -> None:
    """A lake with all five items gets TLI 49.7 (中营养); a river gets none."""
    values = CLEAN | {"codmn": 5.0, "tp": 0.05, "tn": 1.2, "chla": 10.0, "sd": 1.0}
    lake = assess(values, body="lake")
    assert lake.trophic is not None
    assert (lake.trophic.tli, lake.trophic.grade) == (Decimal("49.7"), "中营养")
    assert assess(values).trophic is None


@pytest.mark.parametrize(
    ("tli", "grade"),
    [("29.9", "贫营养"), ("30.0", "中营养"), ("50.0", "中营养"), ("50.1", "轻度富营养"), ("60.0", "轻度富营养"),
     ("60.1", "中度富营养"), ("70.0", "中度富营养"), ("70.1", "重度富营养")],
)  # fmt: skip
def test_tli_grade_bounds(tli: str, grade: str) -> None:
    """< 30 贫营养; 30..50 中营养; (50, 60] 轻度; (60, 70] 中度; > 70 重度富营养."""
    assert grade_of(Decimal(tli), RULES.trophic) == grade
