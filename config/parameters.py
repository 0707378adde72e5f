"""The parameter catalogue: canonical codes, canonical units, conversions and physical ranges.

Loaded from `config/data/parameters.yaml` (see the comments there). Validation converts every
value to its parameter's canonical unit and checks it against the physical range.

A unit whose factor is 1/n for a whole n (µg/L to mg/L: 1/1000, cm to m: 1/100) converts by
dividing by n: 50 / 1e6 is exactly the double nearest 5e-05, while 50 * 1e-06 is one step below
it, and a value given on a class limit in another unit must land on the limit, not beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from config import DATA_DIR

CATALOGUE_FILE = DATA_DIR / "data" / "parameters.yaml"


class _ParameterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    unit: str
    measurement: str
    min: float
    max: float
    units: dict[str, tuple[float, float]]

    @model_validator(mode="after")
    def _consistent(self) -> _ParameterEntry:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        if self.units.get(self.unit) != (1, 0):
            raise ValueError(f"the canonical unit {self.unit!r} must convert with factor 1, offset 0")
        return self


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: dict[str, _ParameterEntry]


@dataclass(frozen=True, slots=True)
class Parameter:
    code: str
    name: str
    unit: str
    measurement: str
    min: float
    max: float
    conversions: Mapping[str, tuple[float, float]]
    # Units converted by division: unit -> n where the factor is 1/n (see the module docstring).
    divisors: Mapping[str, float] = field(default_factory=dict)

    def to_canonical(self, value: float, unit: str | None) -> float | None:
        """The value in the canonical unit, or None when the unit is not known for this parameter."""
        if unit is None or unit == self.unit:
            return value
        conversion = self.conversions.get(unit)
        if conversion is None:
            return None
        factor, offset = conversion
        divisor = self.divisors.get(unit)
        if divisor is not None:
            return value / divisor + offset
        return value * factor + offset

    def from_canonical(self, value: float, unit: str | None) -> float | None:
        """A canonical value written in `unit` (what an encoder sends), or None for an unknown unit."""
        if unit is None or unit == self.unit:
            return value
        conversion = self.conversions.get(unit)
        if conversion is None:
            return None
        factor, offset = conversion
        # In decimal, so the encoder writes what a logger would: 0.0071 mg/L is 7.1 µg/L, not
        # 7.1000000000000005 (0.0071 * 1000 in binary floating point).
        return float(Decimal(repr(value - offset)) / Decimal(repr(factor)))

    def in_range(self, value: float) -> bool:
        return math.isfinite(value) and self.min <= value <= self.max


def load_catalogue(path: Path = CATALOGUE_FILE) -> dict[str, Parameter]:
    with path.open(encoding="utf-8") as fh:
        parsed = _CatalogueFile.model_validate(yaml.safe_load(fh))
    return {
        code: Parameter(code, e.name, e.unit, e.measurement, e.min, e.max, dict(e.units), _divisors(e.units))
        for code, e in parsed.parameters.items()
    }


def _divisors(units: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """The units whose factor is 1/n for a whole n >= 2, with n."""
    divisors: dict[str, float] = {}
    for unit, (factor, _offset) in units.items():
        if 0 < factor < 1 and (n := round(1 / factor)) * factor == 1:
            divisors[unit] = float(n)
    return divisors


@cache
def default_catalogue() -> Mapping[str, Parameter]:
    """The shipped catalogue, loaded once."""
    return load_catalogue()
