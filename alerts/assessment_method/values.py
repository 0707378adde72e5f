"""From a period statistic to the reported, classed value of an item.

In this order:
1. Below detection: a mean below the largest detection limit of its below-DL results is reported
   as "<DL" and classed as the detection limit (the limit as reported, not rounded).
2. Rounding: otherwise the mean is rounded to the item's reporting precision by GB/T 8170 (round
   half to even, 四舍六入五成双): the float is first written with 12 significant digits, which
   removes binary noise (0.13499999999999998 is 0.135) and nothing a result can carry, then
   rounded as a decimal, so 0.125 -> 0.12 and 0.135 -> 0.14 at two places.
3. Over range: with `over_range.bound: period`, a value below the period's largest T result (also
   rounded) becomes that result. Whenever T results counted, the value is a lower bound:
   `at_least`, shown "≥".
4. Class: GB 3838-2002 class of the rounded value on the section's water body (alerts.classify).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from alerts.assessment_method.rules import AssessmentRules
from alerts.assessment_method.statistics import ItemStat
from alerts.classify import classify_value
from config.registry import WaterClass
from config.standards import Standard, WaterBody

# Significant digits kept from a float before rounding: float noise sits near the 16th.
_SIGNIFICANT: Final = ".12g"


@dataclass(frozen=True, slots=True)
class ItemValue:
    """An item's period value as reported: `value` is what is classed (the DL when `below_dl`)."""

    code: str
    value: Decimal
    below_dl: bool
    at_least: bool
    water_class: WaterClass | None
    days: int
    months: int

    @property
    def text(self) -> str:
        """The value as a report prints it: 0.120, <0.01, ≥2.500."""
        prefix = "<" if self.below_dl else "≥" if self.at_least else ""
        return prefix + f"{self.value:f}"

    def to_json(self) -> dict[str, object]:
        return {
            "value": float(self.value),
            "text": self.text,
            "class": None if self.water_class is None else self.water_class.value,
            "below_dl": self.below_dl,
            "at_least": self.at_least,
            "days": self.days,
            "months": self.months,
        }


def round_half_even(value: float | Decimal, decimals: int) -> Decimal:
    """GB/T 8170 rounding of `value` to `decimals` places (see the module docstring)."""
    exact = value if isinstance(value, Decimal) else Decimal(format(value, _SIGNIFICANT))
    rounded = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    return rounded.copy_abs() if rounded.is_zero() else rounded  # no "-0.00"


def decimal_of(number: float) -> Decimal:
    """A float as the decimal it was written as (0.1 -> Decimal("0.1"))."""
    return Decimal(repr(number))


def item_value(
    code: str, stat: ItemStat, standard: Standard, rules: AssessmentRules, water_body: WaterBody
) -> ItemValue:
    """The reported and classed value of `code` from its period statistic."""
    decimals = rules.decimals[code]
    value: Decimal | None = None
    below = False
    if stat.mean is not None:
        if stat.dl > 0 and stat.mean < stat.dl:
            value, below = decimal_of(stat.dl), True
        else:
            value = round_half_even(stat.mean, decimals)
    at_least = stat.t_max is not None
    if stat.t_max is not None and rules.over_range.bound == "period":
        top = round_half_even(stat.t_max, decimals)
        if value is None or top > value:
            value, below = top, False
    if value is None:  # only T results, bound "day": the days carry the raised values
        raise ValueError(f"{code}: a statistic without a mean or an over-range value")
    water_class = classify_value(standard, code, float(value), water_body) if code in standard.items else None
    return ItemValue(code, value, below, at_least, water_class, stat.days, stat.months)
