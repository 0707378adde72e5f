"""The HJ 212 code table (config/hj212/codes.yaml) agrees with the reference and the parameter catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.hj212 import default_code_table, load_code_table
from config.parameters import default_catalogue

# The reference's "Water codes" table: 2017 code, 2005 code (None where it gives none), our code.
REFERENCE_TABLE = [
    ("w01001", "001", "ph"),
    ("w01010", None, "temp"),
    ("w01009", None, "do"),
    ("w01014", None, "cond"),
    ("w01003", None, "turb"),
    ("w01019", None, "codmn"),
    ("w01018", "011", "cod"),
    ("w01017", "010", "bod5"),
    ("w21003", "060", "nh3n"),
    ("w21011", "101", "tp"),
    ("w21001", "065", "tn"),
    ("w00000", "B01", "flow"),
]


@pytest.mark.parametrize(("code", "code_2005", "parameter"), REFERENCE_TABLE)
def test_reference_codes_map_to_our_parameters(code: str, code_2005: str | None, parameter: str) -> None:
    """Each code of the reference table, 2017 and 2005 alike, reads as our parameter and encodes back."""
    table = default_code_table()
    assert (entry := table.lookup(code)) is not None
    assert entry.parameter == parameter
    assert entry.hj212_2005 == code_2005
    if code_2005 is not None:
        assert table.lookup(code_2005) == entry
    assert table.by_parameter[parameter].code == code


def test_table_holds_the_reference_codes() -> None:
    """Every code of the reference is in the table; tests/config/test_catalogue.py pins the rest."""
    table = {entry.code for entry in default_code_table().by_code.values()}
    assert {c for c, _, _ in REFERENCE_TABLE} <= table


def test_parameters_and_units_are_in_the_catalogue() -> None:
    """Every mapped parameter exists in parameters.yaml and accepts the unit the table gives its values in."""
    catalogue = default_catalogue()
    for entry in default_code_table().by_code.values():
        parameter = catalogue[entry.parameter]
        assert parameter.to_canonical(1.0, entry.unit) is not None, (entry.code, entry.unit)


def test_data_commands_read_rtd_or_avg() -> None:
    """Real-time data reads Rtd; minute, hourly and daily data read Avg."""
    commands = default_code_table().data_commands
    assert {cn: c.value_field for cn, c in commands.items()} == {
        "2011": "Rtd",
        "2051": "Avg",
        "2061": "Avg",
        "2031": "Avg",
    }


@pytest.mark.parametrize(
    ("pollutants", "message"),
    [
        ("{w01001: {name: a, parameter: ph}, w01002: {name: b, parameter: ph}}", "mapped from two"),
        (
            '{w01001: {name: a, parameter: ph, hj212_2005: "001"}, "001": {name: b, parameter: do}}',
            "listed twice",
        ),
        ("{w01001: {name: a, parameter: ph, colour: red}}", "colour"),
    ],
)
def test_ambiguous_or_unknown_entries_fail_to_load(tmp_path: Path, pollutants: str, message: str) -> None:
    """A code listed twice, a parameter mapped twice or an unknown key fails at load, naming the culprit."""
    path = tmp_path / "codes.yaml"
    path.write_text(f"pollutants: {pollutants}\ndata_commands: {{}}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=message):
        load_code_table(path)
