"""The new catalogue items get in through every decoder and come out of validation in canonical units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest

from config.hj212 import default_code_table
from config.parameters import default_catalogue
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder, encode
from ingest.decoders.hj212 import HJ212Decoder, encode_data_packet, frame, parse_packet
from ingest.decoders.senml import SenMLDecoder, encode_senml
from ingest.model import Decoded, Reading
from ingest.validate import ValidationConfig, Validator
from tests.config.catalogue_samples import NEW_ITEMS, in_code_unit
from tests.helpers import T0, T0_NS, registry, station

MN = "50010300000001"
VALIDATOR = Validator(
    ValidationConfig(),
    registry(station("st-1", mn=MN, timezone="Asia/Shanghai")),
    default_catalogue(),
)
EXPECTED = {s.parameter: s.canonical for s in NEW_ITEMS}


def _validated(decoded: Decoded) -> dict[str, Reading]:
    assert decoded.rejections == []
    readings, rejections = VALIDATOR.validate_many(decoded.readings, {}, T0_NS + 60 * 10**9)
    assert rejections == []
    assert len({r.parameter for r in readings}) == len(readings)
    return {r.parameter: r for r in readings}


def _assert_canonical(readings: Mapping[str, Reading], expected: Mapping[str, float]) -> None:
    assert set(readings) == set(expected)
    catalogue = default_catalogue()
    for code, value in expected.items():
        reading = readings[code]
        assert reading.value == pytest.approx(value, rel=1e-12), code
        assert (reading.unit, reading.measurement) == (catalogue[code].unit, "water_quality"), code
        assert reading.station_id == "st-1"


def _hj212_2005(groups: Sequence[tuple[str, str]]) -> bytes:
    """An HJ/T 212-2005 real-time upload (no QN, no Flag) of (code, Rtd) pairs at T0 (16:00 in Beijing)."""
    cp = ";".join(f"{code}-Rtd={value},{code}-Flag=N" for code, value in groups)
    return frame(f"ST=21;CN=2011;PW=123456;MN={MN};CP=&&DataTime=20261125160000;{cp}&&")


def test_ecowatch_json_takes_the_new_items_by_canonical_name() -> None:
    """A JSON document names the items by code, in the canonical or another accepted unit."""
    readings: dict[str, float | dict[str, object]] = {
        s.parameter: {"value": s.foreign, "unit": s.foreign_unit, "flag": "N"} for s in NEW_ITEMS
    }
    readings["hg"] = EXPECTED["hg"]  # a bare number is in the canonical unit
    payload = encode("st-1", T0, readings)
    _assert_canonical(_validated(EcowatchJsonDecoder().decode("ecowatch/v1/d/st-1/water", payload)), EXPECTED)


def test_senml_takes_the_new_items_by_canonical_name() -> None:
    """A SenML pack names the items `<station>/<code>`, with its `u` unit converted."""
    payload = encode_senml("st-1", T0, {s.parameter: (s.foreign, s.foreign_unit) for s in NEW_ITEMS})
    _assert_canonical(_validated(SenMLDecoder().decode("ecowatch/senml/st-1", payload)), EXPECTED)


def test_hj212_2017_codes_arrive_in_their_table_units() -> None:
    """Each item under its 2017 code, in the unit table B.1 gives it (µg/L for the metals), validates."""
    packet = encode_data_packet(
        MN, "123456", "2011", T0, {s.parameter: (s.canonical, "N") for s in NEW_ITEMS}
    )
    sent = {
        k.removesuffix("-Rtd"): v for group in parse_packet(packet).cp for k, v in group if k.endswith("-Rtd")
    }
    table = default_code_table()
    assert {s.parameter: Decimal(sent[table.by_parameter[s.parameter].code]) for s in NEW_ITEMS} == {
        s.parameter: Decimal(in_code_unit(s)) for s in NEW_ITEMS
    }
    _assert_canonical(_validated(HJ212Decoder().decode(f"hj212/{MN}", packet)), EXPECTED)


def test_hj212_2005_codes_arrive_in_milligrams_per_litre() -> None:
    """The 2005 codes of the Table-1 items carry mg/L (count/L for fecal coliform), metals too."""
    table = default_code_table()
    groups = []
    for sample in NEW_ITEMS:
        code_2005 = table.by_parameter[sample.parameter].hj212_2005
        if code_2005 is not None:
            groups.append((code_2005, format(Decimal(repr(sample.canonical)), "f")))
    assert len(groups) == 15
    readings = _validated(HJ212Decoder().decode(f"hj212/{MN}", _hj212_2005(groups)))
    _assert_canonical(readings, {p: v for p, v in EXPECTED.items() if p not in {"chla", "sd"}})


def test_hj212_element_codes_arrive_as_the_table1_items() -> None:
    """w20138-w20144 validate as cu, zn, se, as, hg, cd, pb, each converted from its own unit."""
    values = "w20138-Rtd=0.012;w20139-Rtd=0.045;w20140-Rtd=0.0012;w20141-Rtd=0.0034;"
    values += "w20142-Rtd=0.04;w20143-Rtd=0.5;w20144-Rtd=0.0025"
    segment = f"QN=20261125160000000;ST=21;CN=2011;PW=123456;MN={MN};Flag=4;"
    segment += f"CP=&&DataTime=20261125160000;{values}&&"
    readings = _validated(HJ212Decoder().decode(f"hj212/{MN}", frame(segment)))
    _assert_canonical(readings, {p: EXPECTED[p] for p in ("cu", "zn", "se", "as", "hg", "cd", "pb")})
