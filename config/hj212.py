"""HJ 212 reference data: pollutant codes mapped to our parameter codes, and the data commands.

Loaded from `config/hj212/codes.yaml` (see the comments there). The HJ 212 decoder reads a
pollutant's code through `CodeTable.lookup` (2017 codes and the older HJ/T 212-2005 codes alike)
and the reading's field through `CodeTable.data_commands`; the encoder maps our parameter codes
back to 2017 codes through `CodeTable.by_parameter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from config import DATA_DIR
from config.types import StrictModel

CODES_FILE = DATA_DIR / "hj212" / "codes.yaml"


class _PollutantEntry(StrictModel):
    name: str = Field(min_length=1)
    parameter: str = Field(min_length=1, description="Our parameter code (parameters.yaml).")
    unit: str | None = Field(None, min_length=1, description="Unit of the values; None: dimensionless.")
    hj212_2005: str | None = Field(None, pattern=r"^[A-Za-z0-9]{3}$", description="HJ/T 212-2005 code.")


class _CommandEntry(StrictModel):
    name: str = Field(min_length=1)
    value_field: str = Field(pattern=r"^[A-Za-z]+$", description="Field of a pollutant holding the reading.")


class _CodesFile(StrictModel):
    pollutants: dict[str, _PollutantEntry]
    data_commands: dict[str, _CommandEntry]

    @model_validator(mode="after")
    def _unambiguous(self) -> _CodesFile:
        # Each code reads as one parameter, and each parameter encodes as one code.
        codes: set[str] = set()
        parameters: set[str] = set()
        for code, entry in self.pollutants.items():
            for alias in (code, entry.hj212_2005):
                if alias in codes:
                    raise ValueError(f"pollutant code {alias!r} is listed twice")
                if alias is not None:
                    codes.add(alias)
            if entry.parameter in parameters:
                raise ValueError(f"parameter {entry.parameter!r} is mapped from two 2017 codes")
            parameters.add(entry.parameter)
        for cn in self.data_commands:
            if not (len(cn) == 4 and cn.isdigit()):
                raise ValueError(f"command code {cn!r} is not 4 digits")
        return self


@dataclass(frozen=True, slots=True)
class PollutantCode:
    """One pollutant of the code table."""

    code: str
    name: str
    parameter: str
    unit: str | None
    hj212_2005: str | None


@dataclass(frozen=True, slots=True)
class DataCommand:
    """A command whose CP carries readings, and the pollutant field holding each reading."""

    cn: str
    name: str
    value_field: str


@dataclass(frozen=True, slots=True)
class CodeTable:
    """The HJ 212 code table, indexed for decoding and encoding."""

    by_code: Mapping[str, PollutantCode]
    by_parameter: Mapping[str, PollutantCode]
    data_commands: Mapping[str, DataCommand]

    def lookup(self, code: str) -> PollutantCode | None:
        """The pollutant with this 2017 or 2005 code, or None when the table lacks it."""
        return self.by_code.get(code)


def load_code_table(path: Path = CODES_FILE) -> CodeTable:
    with path.open(encoding="utf-8") as fh:
        parsed = _CodesFile.model_validate(yaml.safe_load(fh))
    by_code: dict[str, PollutantCode] = {}
    by_parameter: dict[str, PollutantCode] = {}
    for code, entry in parsed.pollutants.items():
        pollutant = PollutantCode(code, entry.name, entry.parameter, entry.unit, entry.hj212_2005)
        by_code[code] = pollutant
        if entry.hj212_2005 is not None:
            by_code[entry.hj212_2005] = pollutant
        by_parameter[entry.parameter] = pollutant
    commands = {cn: DataCommand(cn, e.name, e.value_field) for cn, e in parsed.data_commands.items()}
    return CodeTable(by_code, by_parameter, commands)


@cache
def default_code_table() -> CodeTable:
    """The shipped code table, loaded once."""
    return load_code_table()
