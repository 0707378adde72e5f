"""The standard-file loader: the shipped GB 3838-2002 file, and the malformed files it refuses."""

from __future__ import annotations

import copy
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import config.standards
from config.parameters import default_catalogue
from config.registry import WaterClass
from config.standards import (
    DEFAULT_STANDARD_FILE,
    Assessment,
    Standard,
    StandardError,
    default_standard,
    load_standard,
)

Mutation = Callable[[dict[str, Any]], None]


def _shipped_raw() -> dict[str, Any]:
    with DEFAULT_STANDARD_FILE.open(encoding="utf-8") as fh:
        raw: dict[str, Any] = yaml.safe_load(fh)
    return raw


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "standard.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_standard_loads_with_classes_i_to_v() -> None:
    """The shipped file loads, lists classes I..V and gives every max and min item five limits."""
    standard = load_standard(DEFAULT_STANDARD_FILE)
    assert standard.name == "GB 3838-2002"
    assert standard.classes == (WaterClass.I, WaterClass.II, WaterClass.III, WaterClass.IV, WaterClass.V)
    bounded = [item for item in standard.items.values() if item.kind in ("max", "min")]
    assert len(bounded) >= 20
    assert all(item.limits is not None and len(item.limits) == 5 for item in bounded)


def test_default_standard_is_loaded_once() -> None:
    """default_standard() returns the same object on every call."""
    assert default_standard() is default_standard()


def test_units_agree_with_the_parameter_catalogue() -> None:
    """Every code both files know has the same unit in both, so limits compare to stored values."""
    standard = default_standard()
    shared = standard.items.keys() & default_catalogue().keys()
    assert {"ph", "temp", "do", "nh3n", "tp", "tn"} <= shared
    for code in shared:
        assert standard.unit_of(code) == default_catalogue()[code].unit, code


def test_lake_limits_apply_to_lakes_and_reservoirs_only() -> None:
    """limits_lake is used for lakes and reservoirs, limits for rivers and for items without lake limits."""
    items = default_standard().items
    tp, nh3n = items["tp"], items["nh3n"]
    assert tp.limits_lake is not None
    assert tp.limits_for("lake") == tp.limits_lake
    assert tp.limits_for("reservoir") == tp.limits_lake
    assert tp.limits_for("river") == tp.limits
    assert nh3n.limits_for("lake") == nh3n.limits


@pytest.mark.parametrize(
    ("code", "river", "lake"),
    [
        ("tn", Assessment.NOT_ASSESSED, Assessment.SEPARATELY),
        ("tp", Assessment.ASSESSED, Assessment.ASSESSED),
        ("temp", Assessment.NOT_ASSESSED, Assessment.NOT_ASSESSED),
        ("fcoli", Assessment.NOT_ASSESSED, Assessment.NOT_ASSESSED),
    ],
)
def test_assessment_per_water_body(code: str, river: Assessment, lake: Assessment) -> None:
    """TN is assessed separately on lakes and reservoirs only; temperature and fecal coliform never."""
    item = default_standard().items[code]
    assert item.assessment_for("river") is river
    assert item.assessment_for("lake") is lake
    assert item.assessment_for("reservoir") is lake


def _set(path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _rename_item(old: str, new: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        raw["items"][new] = raw["items"].pop(old)

    return mutate


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        pytest.param(
            _set("items.codmn.limits", [2, 4, 3, 10, 15]), r"items\.codmn\b.*non-decreasing", id="max-order"
        ),
        pytest.param(
            _set("items.do.limits", [7.5, 6, 6.5, 3, 2]), r"items\.do\b.*non-increasing", id="min-order"
        ),
        pytest.param(
            _set("items.tp.limits_lake", [0.01, 0.05, 0.025, 0.1, 0.2]),
            r"items\.tp\b.*limits_lake must be non-decreasing",
            id="lake-order",
        ),
        pytest.param(
            _set("items.nh3n.limits", [0.15, 0.5, 1.0, 1.5]), r"items\.nh3n\.limits: 4 limits", id="four"
        ),
        pytest.param(
            _set("items.tp.limits_lake", [0.01, 0.025, 0.05, 0.1]), r"items\.tp\.limits_lake", id="lake-4"
        ),
        pytest.param(_set("items.cod.limits", [15, 15, 20, 30, 40, 50]), r"items\.cod\.limits: 6", id="six"),
        pytest.param(_set("items.cod.kind", "maximum"), r"items\.cod\.kind", id="unknown-kind"),
        pytest.param(
            _set("items.cu.limits", [0, 1.0, 1.0, 1.0, 1.0]), r"items\.cu\b.*positive", id="zero-limit"
        ),
        pytest.param(_delete("items.zn.limits"), r"items\.zn\b.*needs limits", id="max-no-limits"),
        pytest.param(
            _set("items.temp.limits", [1, 2, 3, 4, 5]), r"items\.temp\b.*takes no limits", id="none-limits"
        ),
        pytest.param(_set("items.ph.low", 9), r"items\.ph\b.*below high", id="range-low-high"),
        pytest.param(_delete("items.ph.high"), r"items\.ph\b.*needs low and high", id="range-no-high"),
        pytest.param(_set("items.do.low", 1), r"items\.do\b.*no low or high", id="min-with-low"),
        pytest.param(_set("items.cu.limit", [1, 2, 3, 4, 5]), r"items\.cu\.limit\b", id="unknown-key"),
        pytest.param(_set("items.tn.assessed_lake", "sometimes"), r"items\.tn\.assessed_lake", id="assessed"),
        pytest.param(_rename_item("nh3n", "NH3-N"), r"snake case.*NH3-N", id="code"),
        pytest.param(_set("classes", ["I", "II", "III", "IV"]), r"classes", id="classes"),
        pytest.param(_delete("default_unit"), r"default_unit", id="no-default-unit"),
    ],
)
def test_malformed_standard_is_refused_naming_the_fault(
    tmp_path: Path, mutation: Mutation, message: str
) -> None:
    """A malformed standard file raises StandardError naming the file, the item and the fault."""
    raw = copy.deepcopy(_shipped_raw())
    mutation(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(StandardError, match=message) as caught:
        load_standard(path)
    assert str(path) in str(caught.value)


def test_unmodified_copy_loads(tmp_path: Path) -> None:
    """The round-tripped shipped file loads, so the refusals above come from the mutations alone."""
    assert load_standard(_write(tmp_path, _shipped_raw())) == default_standard()


def test_shared_limits_between_classes_are_accepted(tmp_path: Path) -> None:
    """Equal limits for neighbouring classes (COD 15/15) satisfy the order check."""
    raw = _shipped_raw()
    raw["items"]["cod"]["limits"] = [15, 15, 15, 15, 15]
    assert load_standard(_write(tmp_path, raw)).items["cod"].limits == (15, 15, 15, 15, 15)


def test_not_yaml_is_refused(tmp_path: Path) -> None:
    """A file that is not YAML raises StandardError, not a parser exception."""
    path = tmp_path / "broken.yaml"
    path.write_text("items: {do: [1, 2\n", encoding="utf-8")
    with pytest.raises(StandardError, match="not YAML"):
        load_standard(path)


def test_module_docstring_example_is_a_valid_standard() -> None:
    """The Example: block of config/standards.py validates as a Standard."""
    doc = config.standards.__doc__
    assert doc is not None
    block = re.split(r"^Example:\n", doc, flags=re.MULTILINE)[1]
    example = Standard.model_validate(yaml.safe_load(textwrap.dedent(block)))
    assert set(example.items) == {"ph", "tp", "tn"}
