"""HJ 212 reference data: pollutant codes mapped to our parameter codes, and the data commands.

Loaded from `config/hj212/codes.yaml` (see the comments there). The HJ 212 decoder reads a
pollutant's code through `CodeTable.lookup` (2017 codes and the older HJ/T 212-2005 codes alike)
and the reading's field through `CodeTable.data_commands`; the encoder maps our parameter codes
back to 2017 codes through `CodeTable.by_parameter`.

A code's unit is the unit of the values sent under that very code: HJ 212-2017 gives mercury
(w20111) in µg/L where HJ/T 212-2005 gave it (020) in mg/L, so `lookup("020").unit` is the 2005
unit. Several 2017 codes may name one parameter (w20111 总汞 and w20142 汞 are both our `hg`):
all but one are marked `alias`, and the encoder writes the one that is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Literal

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
    hj212_2005_unit: str | None = Field(
        None, min_length=1, description="Unit of the values sent under the 2005 code; `unit` when absent."
    )
    alias: bool = Field(
        False, description="Read as the parameter, never written: another code of it is the one encoded."
    )

    @model_validator(mode="after")
    def _unit_2005_needs_code(self) -> _PollutantEntry:
        if self.hj212_2005_unit is not None and self.hj212_2005 is None:
            raise ValueError("hj212_2005_unit is given without an hj212_2005 code")
        return self


class _CommandEntry(StrictModel):
    name: str = Field(min_length=1)
    value_field: str = Field(pattern=r"^[A-Za-z]+$", description="Field of a pollutant holding the reading.")
    kind: Literal["realtime", "minute", "hourly", "daily"] = Field(
        description="The kind of value the command carries (ingest.model.DataKind)."
    )


class _CodesFile(StrictModel):
    pollutants: dict[str, _PollutantEntry]
    data_commands: dict[str, _CommandEntry]

    @model_validator(mode="after")
    def _unambiguous(self) -> _CodesFile:
        # Each code reads as one parameter, and each parameter encodes as one code.
        codes: set[str] = set()
        encoded: set[str] = set()
        aliased: set[str] = set()
        for code, entry in self.pollutants.items():
            for name in (code, entry.hj212_2005):
                if name in codes:
                    raise ValueError(f"pollutant code {name!r} is listed twice")
                if name is not None:
                    codes.add(name)
            if entry.alias:
                aliased.add(entry.parameter)
            elif entry.parameter in encoded:
                raise ValueError(
                    f"parameter {entry.parameter!r} is mapped from two 2017 codes; "
                    "mark all but the one to encode `alias: true`"
                )
            else:
                encoded.add(entry.parameter)
        if orphans := sorted(aliased - encoded):
            raise ValueError(f"parameters with alias codes only, none to encode: {', '.join(orphans)}")
        for cn in self.data_commands:
            if not (len(cn) == 4 and cn.isdigit()):
                raise ValueError(f"command code {cn!r} is not 4 digits")
        return self


@dataclass(frozen=True, slots=True)
class PollutantCode:
    """One pollutant of the code table, as read under one of its codes.

    `code` is always the 2017 code; `unit` is the unit of the values sent under the code it was
    looked up by (the 2005 unit for a 2005 code).
    """

    code: str
    name: str
    parameter: str
    unit: str | None
    hj212_2005: str | None
    alias: bool = False


@dataclass(frozen=True, slots=True)
class DataCommand:
    """A command whose CP carries readings, the pollutant field holding each, and their kind."""

    cn: str
    name: str
    value_field: str
    kind: str = "realtime"


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
        pollutant = PollutantCode(
            code, entry.name, entry.parameter, entry.unit, entry.hj212_2005, entry.alias
        )
        by_code[code] = pollutant
        if entry.hj212_2005 is not None:
            unit_2005 = entry.hj212_2005_unit if entry.hj212_2005_unit is not None else entry.unit
            by_code[entry.hj212_2005] = replace(pollutant, unit=unit_2005)
        if not entry.alias:
            by_parameter[entry.parameter] = pollutant
    commands = {cn: DataCommand(cn, e.name, e.value_field, e.kind) for cn, e in parsed.data_commands.items()}
    return CodeTable(by_code, by_parameter, commands)


@cache
def default_code_table() -> CodeTable:
    """The shipped code table, loaded once."""
    return load_code_table()
