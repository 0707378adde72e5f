"""The HJ 212 encoder takes canonical values and writes each in the unit of its code; decoding and
validation bring them back to the canonical value."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from config.hj212 import default_code_table
from config.parameters import default_catalogue
from ingest.decoders.hj212 import HJ212Decoder, encode_data_packet, parse_packet
from ingest.model import Reading
from ingest.validate import ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station

MN = "50010300000001"
VALIDATOR = Validator(
    ValidationConfig(), registry(station("st-1", mn=MN, timezone="Asia/Shanghai")), default_catalogue()
)


def _round_trip(values: dict[str, tuple[float, str]]) -> tuple[dict[str, str], dict[str, Reading]]:
    """The packet's Rtd texts by code, and the readings decoding and validating it gives, by parameter."""
    packet = encode_data_packet(MN, "123456", "2011", T0, values)
    # The whole table in one packet is longer than the standard's 1024 characters.
    cp = parse_packet(packet, max_segment_length=4096).cp
    texts = {key.removesuffix("-Rtd"): value for group in cp for key, value in group if key.endswith("-Rtd")}
    decoded = HJ212Decoder(max_segment_length=4096).decode(f"hj212/{MN}", packet)
    assert decoded.rejections == []
    readings, rejections = VALIDATOR.validate_many(decoded.readings, {}, T0_NS + 60 * 10**9)
    assert rejections == []
    return texts, {r.parameter: r for r in readings}


def test_lead_in_milligrams_is_sent_in_micrograms_and_reads_back_in_milligrams() -> None:
    """Canonical Pb 0.01 mg/L goes out under w20120 (µg/L) as 10 and comes back as 0.01 mg/L."""
    texts, readings = _round_trip({"pb": (0.01, "N")})
    assert texts == {"w20120": "10.0"}
    assert (readings["pb"].value, readings["pb"].unit) == (0.01, "mg/L")


@pytest.mark.parametrize(
    ("parameter", "canonical", "code", "sent"),
    [
        ("hg", 0.00004, "w20111", "0.04"),  # mg/L -> µg/L
        ("cr6", 0.008, "w20117", "8.0"),
        ("chla", 12.3, "w01016", "0.0123"),  # µg/L -> mg/L
        ("sd", 0.85, "w01004", "85.0"),  # m -> cm
        ("flow", 0.25, "w00000", "250.0"),  # m³/s -> L/s
        ("cu", 0.012, "w20122", "0.012"),  # mg/L under a mg/L code: as given
        ("ph", 7.25, "w01001", "7.25"),  # dimensionless
    ],
)
def test_each_code_carries_its_own_unit(parameter: str, canonical: float, code: str, sent: str) -> None:
    """The value under each code is in that code's unit, and validation gives back the canonical value."""
    texts, readings = _round_trip({parameter: (canonical, "N")})
    assert texts == {code: sent}
    assert readings[parameter].value == pytest.approx(canonical, rel=1e-12)


def test_every_code_of_the_table_round_trips_to_its_canonical_value() -> None:
    """A value inside each encodable parameter's range, sent at once, validates back to itself."""
    catalogue = default_catalogue()
    values = {
        p: (round(catalogue[p].min + (catalogue[p].max - catalogue[p].min) / 7, 4), "N")
        for p in default_code_table().by_parameter
    }
    _texts, readings = _round_trip(values)
    assert {p: r.value for p, r in readings.items()} == pytest.approx(
        {p: v for p, (v, _) in values.items()}, rel=1e-12
    )


def test_a_code_outside_the_table_is_sent_as_given() -> None:
    """A foreign code (not ours) travels with its value unchanged; validation then refuses it as unknown."""
    packet = encode_data_packet(MN, "123456", "2011", T0, {"w99999": (0.01, "N")})
    assert re.search(rb"w99999-Rtd=0\.01,", packet)


def test_a_parameter_the_catalogue_lacks_cannot_be_converted() -> None:
    """Encoding against a catalogue without the parameter fails loudly rather than send a wrong unit."""
    catalogue = {code: p for code, p in default_catalogue().items() if code != "pb"}
    with pytest.raises(ValueError, match="pb"):
        encode_data_packet(
            MN, "123456", "2011", datetime(2026, 11, 25, 8), {"pb": (0.01, "N")}, catalogue=catalogue
        )
