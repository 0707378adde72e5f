"""Sample readings of the catalogue's items beyond the original set, shared by the catalogue tests.

Each sample is a plausible surface-water value in the item's canonical unit, the same value in
another unit a logger or a laboratory sends, and the HJ 212-2017 code the item travels under.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from config.hj212 import default_code_table
from config.parameters import default_catalogue


@dataclass(frozen=True, slots=True)
class Sample:
    parameter: str
    canonical: float  # in the catalogue's unit
    foreign: float  # the same quantity in `foreign_unit`
    foreign_unit: str


# The Table-1 items that could not be ingested before, fecal coliform, and the lake items.
NEW_ITEMS: Final = (
    Sample("cu", 0.012, 12, "µg/L"),
    Sample("zn", 0.045, 45, "ug/L"),
    Sample("f", 0.62, 0.62, "mg/l"),
    Sample("se", 0.0012, 1.2, "μg/L"),
    Sample("as", 0.0034, 3.4, "µg/L"),
    Sample("hg", 0.00004, 40, "ng/L"),
    Sample("cd", 0.0005, 0.5, "µg/L"),
    Sample("cr6", 0.008, 8, "µg/L"),
    Sample("pb", 0.0025, 2.5, "µg/L"),
    Sample("cn", 0.004, 4, "µg/L"),
    Sample("phenol", 0.0011, 1.1, "µg/L"),
    Sample("oil", 0.03, 0.03, "g/m3"),
    Sample("las", 0.05, 50, "mg/m3"),
    Sample("s2", 0.01, 10, "µg/L"),
    Sample("fcoli", 350, 35, "MPN/100mL"),
    Sample("chla", 12.3, 0.0123, "mg/L"),
    Sample("sd", 0.85, 85, "cm"),
)


def in_code_unit(sample: Sample) -> str:
    """The sample as its HJ 212-2017 code carries it: the canonical value in the code's unit, as text."""
    pollutant = default_code_table().by_parameter[sample.parameter]
    parameter = default_catalogue()[sample.parameter]
    factor, offset = parameter.conversions[pollutant.unit] if pollutant.unit is not None else (1, 0)
    assert offset == 0, "the samples' units are all proportional"
    # Decimal arithmetic so that the text is the exact decimal a logger would write.
    return format(Decimal(repr(sample.canonical)) / Decimal(repr(factor)), "f")
