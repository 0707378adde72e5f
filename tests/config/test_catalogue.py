"""The whole catalogue: every GB 3838 Table-1 item, the 9 + X set and the lake items, with their
canonical units, ranges, accepted units and HJ 212 codes (2017 and 2005)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.hj212 import default_code_table, load_code_table
from config.parameters import default_catalogue
from config.standards import Assessment, default_standard
from tests.config.catalogue_samples import NEW_ITEMS, Sample

# The 2011 assessment method's 21 class-setting items (assessment-2011.md, section 1).
CLASS_SETTING = {
    "ph", "do", "codmn", "cod", "bod5", "nh3n", "tp", "cu", "zn", "f", "se",
    "as", "hg", "cd", "cr6", "pb", "cn", "phenol", "oil", "las", "s2",
}  # fmt: skip
# Automatic stations' nine items, and the lake items the trophic state index needs.
NINE = {"temp", "ph", "do", "cond", "turb", "codmn", "nh3n", "tp", "tn"}
LAKE = {"chla", "sd"}

# parameter, canonical unit, range, 2017 code and unit, 2005 code and unit (None: none known).
CATALOGUE = [
    ("cu", "mg/L", (0, 100), "w20122", "mg/L", "029", "mg/L"),
    ("zn", "mg/L", (0, 100), "w20123", "mg/L", "030", "mg/L"),
    ("f", "mg/L", (0, 100), "w21017", "mg/L", "072", "mg/L"),
    ("se", "mg/L", (0, 10), "w20128", "µg/L", "035", "mg/L"),
    ("as", "mg/L", (0, 10), "w20119", "µg/L", "026", "mg/L"),
    ("hg", "mg/L", (0, 1), "w20111", "µg/L", "020", "mg/L"),
    ("cd", "mg/L", (0, 10), "w20115", "µg/L", "022", "mg/L"),
    ("cr6", "mg/L", (0, 10), "w20117", "µg/L", "024", "mg/L"),
    ("pb", "mg/L", (0, 10), "w20120", "µg/L", "027", "mg/L"),
    ("cn", "mg/L", (0, 100), "w21016", "mg/L", "070", "mg/L"),
    ("phenol", "mg/L", (0, 100), "w23002", "mg/L", "110", "mg/L"),
    ("oil", "mg/L", (0, 1000), "w22001", "mg/L", "080", "mg/L"),
    ("las", "mg/L", (0, 100), "w19002", "mg/L", "520", "mg/L"),
    ("s2", "mg/L", (0, 100), "w21019", "mg/L", "071", "mg/L"),
    ("fcoli", "count/L", (0, 1e9), "w02003", "count/L", "550", "count/L"),
    ("chla", "µg/L", (0, 5000), "w01016", "mg/L", None, None),
    ("sd", "m", (0, 60), "w01004", "cm", None, None),
]
# Table B.1's element codes (no 总), read as the Table-1 item, never written.
ALIASES = [
    ("w20138", "cu", "mg/L"),
    ("w20139", "zn", "mg/L"),
    ("w20140", "se", "mg/L"),
    ("w20141", "as", "mg/L"),
    ("w20142", "hg", "µg/L"),
    ("w20143", "cd", "µg/L"),
    ("w20144", "pb", "mg/L"),
]


def test_every_table1_item_is_in_the_catalogue_with_the_standards_unit() -> None:
    """All 24 items of GB 3838-2002 Table 1 can be ingested, in the unit the standard's limits use."""
    standard, catalogue = default_standard(), default_catalogue()
    assert len(standard.items) == 24
    for code in standard.items:
        assert code in catalogue, code
        assert catalogue[code].unit == standard.unit_of(code), code
        assert catalogue[code].measurement == "water_quality", code


def test_the_class_setting_items_are_the_assessed_ones() -> None:
    """The 21 items that set a section's class on a river are exactly the standard's assessed items."""
    items = default_standard().items
    assessed = {c for c, item in items.items() if item.assessment_for("river") is Assessment.ASSESSED}
    assert assessed == CLASS_SETTING


def test_nine_plus_x_and_lake_items_are_water_quality_parameters() -> None:
    """The automatic stations' nine items, chlorophyll a and transparency are in `water_quality`."""
    catalogue = default_catalogue()
    for code in NINE | LAKE:
        assert catalogue[code].measurement == "water_quality", code


@pytest.mark.parametrize(
    ("parameter", "unit", "bounds", "code", "code_unit", "code_2005", "unit_2005"), CATALOGUE
)
def test_new_items_have_their_unit_range_and_codes(
    parameter: str,
    unit: str,
    bounds: tuple[float, float],
    code: str,
    code_unit: str,
    code_2005: str | None,
    unit_2005: str | None,
) -> None:
    """Each new item has its canonical unit, range and HJ 212 codes, with the unit each code carries."""
    entry, table = default_catalogue()[parameter], default_code_table()
    assert (entry.unit, entry.min, entry.max) == (unit, *bounds)
    assert table.by_parameter[parameter].code == code
    pollutant = table.lookup(code)
    assert pollutant is not None
    assert (pollutant.parameter, pollutant.unit, pollutant.hj212_2005) == (parameter, code_unit, code_2005)
    if code_2005 is not None:
        old = table.lookup(code_2005)
        assert old is not None
        assert (old.parameter, old.code, old.unit) == (parameter, code, unit_2005)


def test_metals_in_ug_per_litre_under_2017_codes_and_mg_per_litre_under_2005_codes() -> None:
    """The same number means 1000 times more mercury under the 2005 code 020 than under w20111."""
    table, hg = default_code_table(), default_catalogue()["hg"]
    new, old = table.lookup("w20111"), table.lookup("020")
    assert new is not None
    assert old is not None
    assert hg.to_canonical(0.05, new.unit) == 0.00005
    assert hg.to_canonical(0.05, old.unit) == 0.05


@pytest.mark.parametrize(("code", "parameter", "unit"), ALIASES)
def test_element_codes_read_as_the_item_but_are_never_encoded(code: str, parameter: str, unit: str) -> None:
    """w20138-w20144 decode as the Table-1 item in their own unit; the encoder keeps the 总 code."""
    table = default_code_table()
    pollutant = table.lookup(code)
    assert pollutant is not None
    assert (pollutant.parameter, pollutant.unit, pollutant.alias) == (parameter, unit, True)
    assert table.by_parameter[parameter].code != code


def test_every_water_quality_parameter_has_an_hj212_code() -> None:
    """A logger can send every water-quality item of the catalogue over HJ 212."""
    catalogue, table = default_catalogue(), default_code_table()
    water = {code for code, p in catalogue.items() if p.measurement == "water_quality"}
    assert water <= set(table.by_parameter)


def test_every_code_converts_to_the_canonical_unit() -> None:
    """Each 2017, 2005 and alias code's unit is accepted by its parameter, so no code is dead-lettered."""
    catalogue = default_catalogue()
    for name, pollutant in default_code_table().by_code.items():
        assert catalogue[pollutant.parameter].to_canonical(1.0, pollutant.unit) is not None, name


def test_every_class_limit_lies_well_inside_the_physical_range() -> None:
    """A value ten times the class V limit is still in range: a pollution incident is stored, not refused."""
    catalogue = default_catalogue()
    for code, item in default_standard().items.items():
        entry = catalogue[code]
        for limits in (item.limits, item.limits_lake):
            for limit in limits or ():
                assert entry.min <= limit <= entry.max, (code, limit)
            if limits is not None and item.kind == "max":
                assert entry.in_range(10 * limits[-1]), (code, limits[-1])


@pytest.mark.parametrize(("unit", "scale"), [("µg/L", 1_000), ("ng/L", 1_000_000)])
def test_a_value_on_a_class_limit_in_another_unit_lands_on_the_limit(unit: str, scale: int) -> None:
    """Every mg/L class limit written in µg/L or ng/L converts back to exactly the limit, never beside it."""
    catalogue = default_catalogue()
    checked = set()
    for code, item in default_standard().items.items():
        if catalogue[code].unit != "mg/L" or unit not in catalogue[code].conversions:
            continue
        checked.add(code)
        for limit in (*(item.limits or ()), *(item.limits_lake or ())):
            written = float(Decimal(repr(limit)) * scale)
            assert catalogue[code].to_canonical(written, unit) == limit, (code, limit, unit)
    assert CLASS_SETTING - {"ph", "do", "codmn", "cod", "bod5", "nh3n", "tp"} <= checked


@pytest.mark.parametrize("sample", NEW_ITEMS, ids=[s.parameter for s in NEW_ITEMS])
def test_accepted_units_convert_to_the_canonical_value(sample: Sample) -> None:
    """A value in each sample's unit (µg/L, ng/L, mg/m3, MPN/100mL, cm...) converts to the canonical value."""
    parameter = default_catalogue()[sample.parameter]
    assert parameter.to_canonical(sample.foreign, sample.foreign_unit) == pytest.approx(sample.canonical)
    assert parameter.in_range(sample.canonical)


@pytest.mark.parametrize("sample", NEW_ITEMS, ids=[s.parameter for s in NEW_ITEMS])
def test_an_encoder_writes_the_canonical_value_as_the_decimal_a_logger_sends(sample: Sample) -> None:
    """from_canonical gives the sample's own decimal in its unit (7.1 µg/L, never 7.1000000000000005)."""
    parameter = default_catalogue()[sample.parameter]
    assert parameter.from_canonical(sample.canonical, sample.foreign_unit) == sample.foreign
    assert parameter.from_canonical(sample.canonical, parameter.unit) == sample.canonical
    assert parameter.from_canonical(sample.canonical, "furlong") is None


def test_an_alias_needs_a_code_to_encode(tmp_path: Path) -> None:
    """A parameter named only by alias codes has no code to write, and the table refuses to load."""
    path = tmp_path / "codes.yaml"
    path.write_text(
        "pollutants: {w20142: {name: a, parameter: hg, unit: µg/L, alias: true}}\ndata_commands: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match=r"alias codes only.*hg"):
        load_code_table(path)


def test_a_2005_unit_needs_a_2005_code(tmp_path: Path) -> None:
    """hj212_2005_unit without hj212_2005 is a mistake in the file, refused at load."""
    path = tmp_path / "codes.yaml"
    path.write_text(
        "pollutants: {w20111: {name: a, parameter: hg, unit: µg/L, hj212_2005_unit: mg/L}}\n"
        "data_commands: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="without an hj212_2005 code"):
        load_code_table(path)
