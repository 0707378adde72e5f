"""Trophic state index of lakes and reservoirs, TLI(Σ), and its grade.

湖泊（水库）富营养化评价方法及分级技术规定 (中国环境监测总站, 2001):
TLI(Σ) = Σ Wj · TLI(j), Wj = rij² / Σ rij² over the items used, TLI(j) = 10 (a + b ln xj), with
chlorophyll a in mg/m³ (= µg/L), TP, TN, CODMn in mg/L, transparency in m. The coefficients, the
items required and the grade bounds are data (`trophic` in config/standards/assessment.yaml). The
inputs are the items' reported period values (the detection limit for a "<DL" value); the index is
rounded by GB/T 8170 to `trophic.decimals` and graded on the rounded value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from alerts.assessment_method.rules import Trophic
from alerts.assessment_method.values import round_half_even


@dataclass(frozen=True, slots=True)
class TrophicState:
    """TLI(Σ), its grade, and the items it was computed from."""

    tli: Decimal
    grade: str
    items: tuple[str, ...]


def trophic_state(values: Mapping[str, Decimal], rules: Trophic) -> TrophicState | None:
    """TLI(Σ) from the items' values, or None when a required item is missing or not positive."""
    used = [code for code in rules.items if code in values and values[code] > 0]
    if any(code not in used for code in rules.required) or not used:
        return None
    weights = {code: rules.items[code].r ** 2 for code in used}
    total = math.fsum(weights.values())
    tli = math.fsum(weights[code] / total * _index(rules, code, float(values[code])) for code in used)
    rounded = round_half_even(tli, rules.decimals)
    return TrophicState(rounded, grade_of(rounded, rules), tuple(used))


def _index(rules: Trophic, code: str, value: float) -> float:
    """TLI(j) = 10 (a + b ln x)."""
    coefficients = rules.items[code]
    return 10 * (coefficients.a + coefficients.b * math.log(value))


def grade_of(tli: Decimal, rules: Trophic) -> str:
    """The grade of a (rounded) TLI: the first whose bound holds."""
    for grade in rules.grades:
        if grade.below is not None and tli < Decimal(repr(grade.below)):
            return grade.grade
        if grade.at_most is not None and tli <= Decimal(repr(grade.at_most)):
            return grade.grade
        if grade.below is None and grade.at_most is None:
            return grade.grade
    return rules.grades[-1].grade
