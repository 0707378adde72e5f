"""The parameter catalogue: canonical codes, canonical units, conversions and physical ranges.

Loaded from `config/data/parameters.yaml` (see the comments there). Validation converts every
value to its parameter's canonical unit and checks it against the physical range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
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

    def to_canonical(self, value: float, unit: str | None) -> float | None:
        """The value in the canonical unit, or None when the unit is not known for this parameter."""
        if unit is None or unit == self.unit:
            return value
        conversion = self.conversions.get(unit)
        if conversion is None:
            return None
        factor, offset = conversion
        return value * factor + offset

    def in_range(self, value: float) -> bool:
        return math.isfinite(value) and self.min <= value <= self.max


def load_catalogue(path: Path = CATALOGUE_FILE) -> dict[str, Parameter]:
    with path.open(encoding="utf-8") as fh:
        parsed = _CatalogueFile.model_validate(yaml.safe_load(fh))
    return {
        code: Parameter(code, e.name, e.unit, e.measurement, e.min, e.max, dict(e.units))
        for code, e in parsed.parameters.items()
    }


@cache
def default_catalogue() -> Mapping[str, Parameter]:
    """The shipped catalogue, loaded once."""
    return load_catalogue()
