"""Water-quality standards as data: the validated model of a file in `config/standards/`.

A standard file lists the classes (I..V) and, per parameter code, how the item classifies:
`max` (class k holds when value <= limits[k]), `min` (value >= limits[k]), `range` (every class
holds inside [low, high], none outside) or `none` (reported, never classified). `limits_lake`
replaces `limits` for lakes and reservoirs (GB 3838-2002 Table 1 gives TP separately for 湖、库).
`assessed` / `assessed_lake` say whether the item enters the single-factor class of a section on
rivers / on lakes and reservoirs: true, false, or `separately` (classified, reported on its own,
never setting the section's class: TN of lakes and reservoirs under the 2011 assessment method).

The loader refuses, naming the item, a file whose limits do not fit its classes: a limit missing,
a limit that is not a positive finite number, limits out of order (non-decreasing for `max`,
non-increasing for `min`, so a better class is never laxer than a worse one), `low >= high`, or
limits on an item whose kind takes none. The shipped GB 3838-2002 file is `default_standard()`;
another standard is another file, loaded with `load_standard(path)`.

Example:
    standard: GB 3838-2002
    classes: [I, II, III, IV, V]
    default_unit: mg/L
    items:
      ph: {name_zh: pH值, name_en: pH, unit: "1", kind: range, low: 6, high: 9, assessed: true}
      tp: {name_zh: 总磷, name_en: total phosphorus, kind: max, limits: [0.02, 0.1, 0.2, 0.3, 0.4],
           limits_lake: [0.01, 0.025, 0.05, 0.1, 0.2], assessed: true}
      tn: {name_zh: 总氮, name_en: total nitrogen, kind: max, limits: [0.2, 0.5, 1.0, 1.5, 2.0],
           assessed: false, assessed_lake: separately}
"""

from __future__ import annotations

import itertools
import math
import re
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from config import DATA_DIR
from config.registry import WaterClass
from config.types import StrictModel

STANDARDS_DIR: Final = DATA_DIR / "standards"
DEFAULT_STANDARD_FILE: Final = STANDARDS_DIR / "gb3838-2002.yaml"

WaterBody = Literal["river", "lake", "reservoir"]
# GB 3838-2002 Table 1 and the 2011 assessment method treat reservoirs as lakes (湖、库).
LAKE_LIKE: Final[frozenset[str]] = frozenset({"lake", "reservoir"})
# Parameter codes travel as keys of readings and JSON: the same snake case as the catalogue.
CODE_PATTERN: Final = r"^[a-z][a-z0-9_]*$"
_CODE: Final = re.compile(CODE_PATTERN)


class StandardError(ValueError):
    """A standard file that cannot be used; the message names the file and the item."""


class Assessment(StrEnum):
    """How an item takes part in the class assessment of a section."""

    ASSESSED = "assessed"
    SEPARATELY = "separately"
    NOT_ASSESSED = "not_assessed"


class Item(StrictModel):
    """One row of the standard's table."""

    name_zh: str = Field(min_length=1, description="Name in the standard's own language.")
    name_en: str = Field(min_length=1, description="English name.")
    unit: str | None = Field(None, description="Unit of the limits; the file's default_unit when absent.")
    kind: Literal["max", "min", "range", "none"] = Field(description="How a value meets a class.")
    limits: tuple[float, ...] | None = Field(None, description="One limit per class, best class first.")
    limits_lake: tuple[float, ...] | None = Field(None, description="Limits for lakes and reservoirs.")
    low: float | None = Field(None, description="Lower bound of a range item (inclusive).")
    high: float | None = Field(None, description="Upper bound of a range item (inclusive).")
    assessed: bool | Literal["separately"] = Field(description="Assessment on rivers.")
    assessed_lake: bool | Literal["separately"] | None = Field(
        None, description="Assessment on lakes and reservoirs; `assessed` when absent."
    )
    note: str | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Item:
        bounded = self.kind in ("max", "min")
        if bounded and self.limits is None:
            raise ValueError(f"kind {self.kind} needs limits")
        if not bounded and (self.limits is not None or self.limits_lake is not None):
            raise ValueError(f"kind {self.kind} takes no limits")
        if self.kind == "range":
            if self.low is None or self.high is None:
                raise ValueError("kind range needs low and high")
            if not self.low < self.high:
                raise ValueError(f"low {self.low} must be below high {self.high}")
        elif self.low is not None or self.high is not None:
            raise ValueError(f"kind {self.kind} takes no low or high")
        for name, limits in (("limits", self.limits), ("limits_lake", self.limits_lake)):
            if limits is not None:
                _check_order(name, self.kind, limits)
        return self

    def limits_for(self, water_body: WaterBody) -> tuple[float, ...] | None:
        """The limits that apply on this water body, or None for range and none items."""
        if water_body in LAKE_LIKE and self.limits_lake is not None:
            return self.limits_lake
        return self.limits

    def assessment_for(self, water_body: WaterBody) -> Assessment:
        value = (
            self.assessed_lake
            if water_body in LAKE_LIKE and self.assessed_lake is not None
            else self.assessed
        )
        if value == "separately":
            return Assessment.SEPARATELY
        return Assessment.ASSESSED if value else Assessment.NOT_ASSESSED


class Standard(StrictModel):
    """A water-quality standard: its classes and its items by parameter code."""

    standard: str = Field(min_length=1, description="The standard's designation, e.g. GB 3838-2002.")
    classes: tuple[WaterClass, ...] = Field(description="Classes best first; limits follow this order.")
    default_unit: str = Field(min_length=1, description="Unit of items that state none.")
    items: dict[str, Item] = Field(description="Items by canonical parameter code.")

    @field_validator("classes")
    @classmethod
    def _classes_are_i_to_v(cls, value: tuple[WaterClass, ...]) -> tuple[WaterClass, ...]:
        expected = tuple(c for c in WaterClass if c is not WaterClass.WORSE_THAN_V)
        if value != expected:
            raise ValueError(f"classes must be {', '.join(expected)} in that order")
        return value

    @field_validator("items")
    @classmethod
    def _codes_are_snake_case(cls, value: dict[str, Item]) -> dict[str, Item]:
        bad = [code for code in value if not _is_code(code)]
        if bad:
            raise ValueError(f"item codes must be snake case: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _one_limit_per_class(self) -> Standard:
        for code, item in self.items.items():
            for name, limits in (("limits", item.limits), ("limits_lake", item.limits_lake)):
                if limits is not None and len(limits) != len(self.classes):
                    raise ValueError(
                        f"items.{code}.{name}: {len(limits)} limits for {len(self.classes)} classes"
                    )
        return self

    @property
    def name(self) -> str:
        return self.standard

    def unit_of(self, code: str) -> str:
        item = self.items[code]
        return item.unit if item.unit is not None else self.default_unit


def load_standard(path: Path) -> Standard:
    """Load and validate a standard file; `StandardError` names the file, the item and the fault."""
    with path.open(encoding="utf-8") as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise StandardError(f"{path}: not YAML: {exc}") from exc
    try:
        return Standard.model_validate(raw)
    except ValidationError as exc:
        faults = "; ".join(_describe(error["loc"], error["msg"]) for error in exc.errors())
        raise StandardError(f"{path}: {faults}") from exc


@cache
def default_standard() -> Standard:
    """The shipped GB 3838-2002 standard, loaded once."""
    return load_standard(DEFAULT_STANDARD_FILE)


def _check_order(name: str, kind: str, limits: tuple[float, ...]) -> None:
    for limit in limits:
        if not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"{name}: {limit} is not a positive finite limit")
    for worse_index, (better, worse) in enumerate(itertools.pairwise(limits), start=1):
        # A worse class may share a better class's limit (COD 15/15) but never be stricter.
        if (kind == "max" and worse < better) or (kind == "min" and worse > better):
            order = "non-decreasing" if kind == "max" else "non-increasing"
            raise ValueError(
                f"{name} must be {order} for kind {kind}: {better} then {worse} "
                f"(positions {worse_index} and {worse_index + 1})"
            )


def _is_code(code: str) -> bool:
    return _CODE.fullmatch(code) is not None


def _describe(loc: tuple[int | str, ...], msg: str) -> str:
    where = ".".join(str(part) for part in loc)
    msg = msg.removeprefix("Value error, ")  # pydantic's wrapper around our own ValueError texts
    return f"{where}: {msg}" if where else msg
