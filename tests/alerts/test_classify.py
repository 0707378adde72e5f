"""GB 3838-2002 single-factor classification, checked against the whole table of the shipped file.

The table cases are generated from config/standards/gb3838-2002.yaml with an oracle that reads the
limits directly and states the rule differently from the code (by comparing limits, not values),
so a wrong table row, a wrong comparison or a wrong lake/river choice each fail here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest

from alerts.classify import Classification, classify, classify_readings, classify_value
from config.registry import WaterClass
from config.standards import Item, WaterBody, default_standard
from ingest.model import DataFlag, Reading

STANDARD = default_standard()
BODIES: tuple[WaterBody, ...] = get_args(WaterBody)
# Relative step off a limit: far below the spacing of any two limits, far above float rounding.
EPS = 1e-9
V = WaterClass
WORSE = WaterClass.WORSE_THAN_V


def _limits(item: Item, body: WaterBody) -> tuple[float, ...] | None:
    if body in ("lake", "reservoir") and item.limits_lake is not None:
        return item.limits_lake
    return item.limits


def _assessment(item: Item, body: WaterBody) -> bool | str:
    if body in ("lake", "reservoir") and item.assessed_lake is not None:
        return item.assessed_lake
    return item.assessed


def _first(limits: tuple[float, ...], pick: Any) -> WaterClass:
    """The best class whose limit satisfies `pick`, or 劣V when none does."""
    for water_class, limit in zip(STANDARD.classes, limits, strict=True):
        if pick(limit):
            return water_class
    return WORSE


@dataclass(frozen=True)
class TableCase:
    body: WaterBody
    code: str
    value: float
    expected: WaterClass


def _table_cases() -> Iterator[Any]:
    for body in BODIES:
        for code, item in STANDARD.items.items():
            limits = _limits(item, body)
            if limits is None:
                continue
            for k, limit in enumerate(limits):
                same = _first(limits, lambda x, limit=limit: x == limit)
                if item.kind == "max":
                    # On or under a limit: the best class with that limit; over it: the next laxer limit.
                    laxer = _first(limits, lambda x, limit=limit: x > limit)
                    at, below, above = same, same, laxer
                else:
                    laxer = _first(limits, lambda x, limit=limit: x < limit)
                    at, below, above = same, laxer, same
                roman = STANDARD.classes[k].value
                for where, value, expected in (
                    ("at", limit, at),
                    ("below", limit * (1 - EPS), below),
                    ("above", limit * (1 + EPS), above),
                ):
                    yield pytest.param(
                        TableCase(body, code, value, expected), id=f"{body}-{code}-{roman}-{where}"
                    )


def _range_cases() -> Iterator[Any]:
    for body in BODIES:
        for code, item in STANDARD.items.items():
            if item.kind != "range":
                continue
            assert item.low is not None
            assert item.high is not None
            best = STANDARD.classes[0]
            for where, value, expected in (
                ("low", item.low, best),
                ("high", item.high, best),
                ("middle", (item.low + item.high) / 2, best),
                ("under-low", item.low * (1 - EPS), WORSE),
                ("over-high", item.high * (1 + EPS), WORSE),
            ):
                yield pytest.param(TableCase(body, code, value, expected), id=f"{body}-{code}-{where}")


TABLE_CASES = list(_table_cases())
RANGE_CASES = list(_range_cases())


def test_the_table_is_covered() -> None:
    """The generated cases reach every item with limits on every water body, with lake limits for TP."""
    assert len(TABLE_CASES) == sum(
        15 for body in BODIES for item in STANDARD.items.values() if _limits(item, body) is not None
    )
    assert len(TABLE_CASES) >= 3 * 20 * 15
    lake_tp = {
        case.values[0].value for case in TABLE_CASES if case.id.startswith("lake-tp-") and "-at" in case.id
    }
    assert STANDARD.items["tp"].limits_lake is not None
    assert lake_tp == set(STANDARD.items["tp"].limits_lake)
    assert any(case.id == "river-ph-low" for case in RANGE_CASES)


@pytest.mark.parametrize("case", TABLE_CASES + RANGE_CASES)
def test_value_on_and_around_every_limit(case: TableCase) -> None:
    """A value on a limit meets that class, just past it the next class (or 劣V), for every item and body."""
    assert classify_value(STANDARD, case.code, case.value, case.body) is case.expected

    result = classify(STANDARD, {case.code: case.value}, case.body)
    assert result.parameters == {case.code: case.expected}
    assessment = _assessment(STANDARD.items[case.code], case.body)
    if assessment is True:
        assert result.water_class is case.expected
        assert result.assessed == (case.code,)
    else:
        assert result.water_class is None
        assert result.assessed == ()
    if assessment == "separately":
        assert result.separately_assessed == {case.code: case.expected}
    else:
        assert result.separately_assessed == {}


@pytest.mark.parametrize("body", BODIES)
def test_unclassified_items_are_reported_without_a_class(body: WaterBody) -> None:
    """Items of kind none (water temperature) keep their value but get no class and set none."""
    codes = [code for code, item in STANDARD.items.items() if item.kind == "none"]
    assert "temp" in codes
    for code in codes:
        assert classify_value(STANDARD, code, 35.0, body) is None
    result = classify(STANDARD, dict.fromkeys(codes, 35.0), body, V.III)
    assert result.values == dict.fromkeys(codes, 35.0)
    assert result.parameters == {}
    assert result.water_class is None
    assert result.compliant is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7.5, V.I),
        (7.49, V.II),
        (6.0, V.II),
        (5.0, V.III),
        (4.2, V.IV),
        (3.0, V.IV),
        (2.0, V.V),
        (1.99, WORSE),
    ],
)
def test_dissolved_oxygen_is_a_minimum(value: float, expected: WaterClass) -> None:
    """DO meets a class when at or above its limit: higher oxygen is better water."""
    assert classify_value(STANDARD, "do", value, "river") is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(6.0, V.I), (9.0, V.I), (7.2, V.I), (5.99, WORSE), (9.01, WORSE), (0.0, WORSE)]
)
def test_ph_meets_every_class_inside_6_to_9_and_none_outside(value: float, expected: WaterClass) -> None:
    """pH inside 6–9 (bounds included) reports class I; outside it is 劣V."""
    assert classify_value(STANDARD, "ph", value, "river") is expected


def test_shared_limits_give_the_best_class() -> None:
    """Where classes I and II share a limit (COD 15, BOD5 3), a value on it is class I."""
    assert classify_value(STANDARD, "cod", 15.0, "river") is V.I
    assert classify_value(STANDARD, "bod5", 3.0, "river") is V.I
    assert classify_value(STANDARD, "cod", 15.1, "river") is V.III


def test_codes_outside_the_standard_are_ignored() -> None:
    """Codes the standard does not list (conductivity, turbidity) classify as nothing and change nothing."""
    assert classify_value(STANDARD, "cond", 350.0, "river") is None
    result = classify(STANDARD, {"cond": 350.0, "turb": 900.0, "do": 8.0}, "river")
    assert result.values == {"do": 8.0}
    assert result.parameters == {"do": V.I}
    assert result.water_class is V.I


def test_non_finite_values_and_a_worse_than_v_target_are_refused() -> None:
    """NaN or infinity cannot be classified, and 劣V is not a target."""
    with pytest.raises(ValueError, match="nh3n"):
        classify_value(STANDARD, "nh3n", float("nan"), "river")
    with pytest.raises(ValueError, match="do"):
        classify(STANDARD, {"do": float("inf")}, "river")
    with pytest.raises(ValueError, match="target"):
        classify(STANDARD, {"do": 8.0}, "river", WORSE)


@dataclass(frozen=True)
class Worked:
    body: WaterBody
    target: WaterClass | None
    values: dict[str, float]
    water_class: WaterClass | None
    primary: tuple[str, ...]
    compliant: bool | None
    parameters: dict[str, WaterClass] = field(default_factory=dict)
    exceedance: dict[str, float] = field(default_factory=dict)
    separately: dict[str, WaterClass] = field(default_factory=dict)


# fmt: off
# body, target, values -> class, primary pollutants, compliant; then every classified parameter,
# exceedance (over the target's limit, else class III's) and the separately assessed items.
WORKED = [
    pytest.param(Worked("river", V.III, {"do": 4.2, "nh3n": 1.8, "codmn": 5.0}, V.V, ("nh3n",), False,
                        {"do": V.IV, "codmn": V.III, "nh3n": V.V}, {"nh3n": 0.8}),
                 id="river-brief-example"),
    pytest.param(Worked("lake", V.III, {"tp": 0.06, "tn": 1.2, "codmn": 3.0}, V.IV, ("tp",), False,
                        {"codmn": V.II, "tp": V.IV, "tn": V.IV}, {"tp": 0.2, "tn": 0.2}, {"tn": V.IV}),
                 id="lake-tp-by-lake-limits-tn-separately"),
    pytest.param(Worked("reservoir", V.II, {"tp": 0.03, "tn": 5.0}, V.III, ("tp",), False,
                        {"tp": V.III, "tn": WORSE}, {"tp": 0.2, "tn": 9.0}, {"tn": WORSE}),
                 id="reservoir-as-lake"),
    pytest.param(Worked("river", V.II, {"tp": 0.03, "tn": 5.0, "fcoli": 90000.0}, V.II, (), True,
                        {"tp": V.II, "tn": WORSE, "fcoli": WORSE}),
                 id="river-tn-and-fcoli-not-assessed"),
    pytest.param(Worked("river", None, {"ph": 9.5, "do": 8.0}, WORSE, ("ph",), None,
                        {"ph": WORSE, "do": V.I}),
                 id="ph-out-of-range"),
    pytest.param(Worked("river", None, {"codmn": 8.0, "nh3n": 1.45, "do": 4.0, "tp": 0.1}, V.IV,
                        ("nh3n", "codmn", "do"), None,
                        {"do": V.IV, "codmn": V.IV, "nh3n": V.IV, "tp": V.II},
                        {"codmn": 8.0 / 6 - 1, "nh3n": 0.45}),
                 id="no-target-ranked-by-exceedance-over-iii"),
    pytest.param(Worked("river", None, {"codmn": 5.0, "nh3n": 0.9}, V.III, (), None,
                        {"codmn": V.III, "nh3n": V.III}),
                 id="class-iii-without-target-has-no-primary"),
    pytest.param(Worked("river", V.II, {"codmn": 5.0, "nh3n": 0.4}, V.III, ("codmn",), False,
                        {"codmn": V.III, "nh3n": V.II}, {"codmn": 0.25}),
                 id="target-ii-exceedance-over-ii"),
    pytest.param(Worked("river", V.V, {"nh3n": 2.0}, V.V, (), True, {"nh3n": V.V}),
                 id="target-v-met-on-the-limit"),
    pytest.param(Worked("river", V.III, {"hg": 0.0002, "cod": 15.0}, V.IV, ("hg",), False,
                        {"cod": V.I, "hg": V.IV}, {"hg": 1.0}),
                 id="mercury"),
    pytest.param(Worked("lake", V.III, {"tn": 3.0, "temp": 22.0}, None, (), None,
                        {"tn": WORSE}, {"tn": 2.0}, {"tn": WORSE}),
                 id="lake-tn-alone-sets-no-class"),
]
# fmt: on


@pytest.mark.parametrize("case", WORKED)
def test_worked_examples(case: Worked) -> None:
    """Hand-worked points give the expected class, primary pollutants, compliance and exceedance."""
    result = classify(STANDARD, case.values, case.body, case.target)
    assert result.water_class is case.water_class
    assert result.primary_pollutants == case.primary
    assert result.compliant is case.compliant
    assert result.parameters == case.parameters
    assert result.separately_assessed == case.separately
    assert result.exceedance == pytest.approx(case.exceedance)


def test_results_list_items_in_the_standards_order() -> None:
    """parameters and assessed follow the standard's table, whatever order the values came in."""
    result = classify(STANDARD, {"nh3n": 0.1, "ph": 7.0, "codmn": 1.0, "do": 8.0}, "river")
    order = [code for code in STANDARD.items if code in result.parameters]
    assert list(result.parameters) == order
    assert list(result.assessed) == order


def test_to_json_is_plain_json_with_class_names() -> None:
    """to_json gives class names as strings ("劣V" included) and survives json.dumps."""
    result = classify(STANDARD, {"ph": 9.5, "nh3n": 1.8, "temp": 20.0}, "river", V.III)
    data = json.loads(json.dumps(result.to_json(), ensure_ascii=False))
    assert data["class"] == "劣V"
    assert data["target"] == "III"
    assert data["compliant"] is False
    assert data["primary_pollutants"] == ["ph"]
    assert data["parameters"] == {"ph": "劣V", "nh3n": "V"}
    assert data["exceedance"] == {"nh3n": 0.8}
    assert data["values"] == {"temp": 20.0, "ph": 9.5, "nh3n": 1.8}
    assert data["standard"] == "GB 3838-2002"
    assert data["excluded"] == []


def _reading(
    parameter: str, value: float, t: int, flag: DataFlag = DataFlag.NORMAL, station: str = "s1"
) -> Reading:
    return Reading(station, "water_quality", parameter, value, "mg/L", t * 1_000_000_000, flag)


def test_readings_use_the_latest_normal_value_per_parameter() -> None:
    """classify_readings takes each parameter's latest value by time, not by position."""
    readings = [_reading("nh3n", 1.8, 200), _reading("nh3n", 0.4, 100), _reading("do", 8.0, 150)]
    result = classify_readings(STANDARD, readings, "river", V.III)
    assert result.values == {"do": 8.0, "nh3n": 1.8}
    assert result.water_class is V.V
    assert result.excluded == ()


def test_flagged_readings_are_excluded_and_reported() -> None:
    """Readings flagged maintenance or fault do not count; an older normal value stands in."""
    flagged = _reading("nh3n", 5.0, 300, DataFlag.MAINTENANCE)
    fault = _reading("codmn", 40.0, 300, DataFlag.FAULT)
    other = _reading("level", 180.0, 300, DataFlag.MAINTENANCE)
    readings = [_reading("nh3n", 0.4, 100), flagged, fault, other, _reading("do", 8.0, 100)]
    result = classify_readings(STANDARD, readings, "river", V.III)
    assert result.values == {"do": 8.0, "nh3n": 0.4}
    assert result.water_class is V.II
    assert result.compliant is True
    assert result.excluded == (flagged, fault)
    excluded = result.to_json()["excluded"]
    assert isinstance(excluded, list)
    assert [(e["parameter"], e["flag"]) for e in excluded] == [("nh3n", "M"), ("codmn", "D")]
    assert excluded[0]["time"] == "1970-01-01T00:05:00+00:00"


def test_readings_with_no_normal_value_give_no_class() -> None:
    """When every reading is flagged, there is no class and no compliance verdict."""
    result: Classification = classify_readings(
        STANDARD, [_reading("do", 1.0, 1, DataFlag.CALIBRATION)], "river", V.III
    )
    assert result.water_class is None
    assert result.compliant is None
    assert len(result.excluded) == 1


def test_readings_of_two_stations_are_refused() -> None:
    """One classification never mixes stations."""
    with pytest.raises(ValueError, match="s2"):
        classify_readings(STANDARD, [_reading("do", 8.0, 1), _reading("do", 8.0, 2, station="s2")], "river")
