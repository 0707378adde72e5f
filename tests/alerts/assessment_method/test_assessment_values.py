"""Reported values: GB/T 8170 rounding, the "<DL" rule, the over-range lower bound, the class."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alerts.assessment_method.rules import default_rules
from alerts.assessment_method.statistics import ItemStat
from alerts.assessment_method.values import item_value, round_half_even
from config.registry import WaterClass
from config.standards import default_standard

STANDARD = default_standard()
RULES = default_rules()


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (0.125, 2, "0.12"),  # 5 followed by nothing, 2 even: dropped
        (0.135, 2, "0.14"),  # 3 odd: up
        (0.1251, 2, "0.13"),  # something after the 5: up
        (0.124, 2, "0.12"),
        (0.126, 2, "0.13"),
        (2.675, 2, "2.68"),  # the float is 2.67499999...: round() says 2.67, GB/T 8170 on "2.675" says 2.68
        (1.015, 2, "1.02"),  # likewise 1.01499999...
        (4.025, 2, "4.02"),
        (0.13499999999999998, 2, "0.14"),  # float noise of a mean that is 0.135
        (2.5, 0, "2"),
        (3.5, 0, "4"),
        (0.0725, 3, "0.072"),
        (-0.001, 2, "0.00"),  # no negative zero
        (0.00005, 5, "0.00005"),
    ],
)
def test_gb_t_8170_rounding(value: float, places: int, expected: str) -> None:
    """Round half to even on the decimal the float stands for (四舍六入五成双)."""
    assert f"{round_half_even(value, places):f}" == expected


def _stat(mean: float | None, dl: float = 0.0, top: float | None = None) -> ItemStat:
    return ItemStat(mean, dl, top, 30, 1)


def test_rounded_before_classing() -> None:
    """NH3-N mean 0.1504 is reported 0.150 and meets class I (<= 0.15); 0.1505 is 0.150 too (even)."""
    for mean in (0.1504, 0.1505):
        value = item_value("nh3n", _stat(mean), STANDARD, RULES, "river")
        assert (value.text, value.water_class) == ("0.150", WaterClass.I)
    value = item_value("nh3n", _stat(0.1515), STANDARD, RULES, "river")
    assert (value.text, value.water_class) == ("0.152", WaterClass.II)


def test_below_detection_is_reported_and_classed_as_the_limit() -> None:
    """A mean of 0.005 under a limit of 0.01 is "<0.01", classed as 0.01 (TP class I)."""
    value = item_value("tp", _stat(0.005, dl=0.01), STANDARD, RULES, "river")
    assert (value.text, value.value, value.below_dl) == ("<0.01", Decimal("0.01"), True)
    assert value.water_class is WaterClass.I


def test_below_detection_classes_by_the_limit_even_when_poor() -> None:
    """Mercury under a detection limit of 0.0001: classed as 0.0001, class III, never as clean as I."""
    value = item_value("hg", _stat(0.00005, dl=0.0001), STANDARD, RULES, "river")
    assert (value.text, value.water_class) == ("<0.0001", WaterClass.III)


def test_mean_above_the_detection_limit_is_a_plain_value() -> None:
    """A mean of 0.0725 with a limit of 0.05 is reported 0.072 (GB/T 8170), not "<0.05"."""
    value = item_value("nh3n", _stat(0.0725, dl=0.05), STANDARD, RULES, "river")
    assert (value.text, value.below_dl) == ("0.072", False)


def test_over_range_raises_the_period_value() -> None:
    """NH3-N mean 0.3 with a T result of 2.5: the value is at least 2.5, class 劣V."""
    value = item_value("nh3n", _stat(0.3, top=2.5), STANDARD, RULES, "river")
    assert (value.text, value.at_least, value.water_class) == ("≥2.500", True, WaterClass.WORSE_THAN_V)


def test_over_range_below_the_mean_keeps_the_mean_as_a_lower_bound() -> None:
    """A T result below the mean changes nothing but marks the value as a lower bound."""
    value = item_value("codmn", _stat(12.0, top=10.0), STANDARD, RULES, "river")
    assert (value.text, value.at_least, value.water_class) == ("≥12.00", True, WaterClass.V)


def test_over_range_only() -> None:
    """A period of T results only is classed by its largest T result."""
    value = item_value("tp", _stat(None, top=0.5), STANDARD, RULES, "river")
    assert (value.text, value.water_class) == ("≥0.500", WaterClass.WORSE_THAN_V)


def test_lake_tp_limits() -> None:
    """TP 0.05 is class II on a river and class III on a lake or reservoir."""
    assert item_value("tp", _stat(0.05), STANDARD, RULES, "river").water_class is WaterClass.II
    assert item_value("tp", _stat(0.05), STANDARD, RULES, "lake").water_class is WaterClass.III
    assert item_value("tp", _stat(0.05), STANDARD, RULES, "reservoir").water_class is WaterClass.III


def test_items_beyond_the_standard_have_no_class() -> None:
    """Chlorophyll a is reported (one decimal) without a class."""
    value = item_value("chla", _stat(12.34), STANDARD, RULES, "lake")
    assert (value.text, value.water_class) == ("12.3", None)
    assert value.to_json() == {
        "value": 12.3, "text": "12.3", "class": None, "below_dl": False, "at_least": False, "days": 30, "months": 1,
    }  # fmt: skip
