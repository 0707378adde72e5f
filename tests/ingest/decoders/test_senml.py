"""SenML: encoder round trips, base-field resolution properties and fuzzing (vectors: cases/senml/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decoders.senml import RELATIVE_TIME_LIMIT, SenMLDecoder, encode_senml
from ingest.errors import RejectedPayload
from ingest.model import RawReading

DECODER = SenMLDecoder()
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_encoder_round_trip() -> None:
    """encode_senml's pack decodes to the same station, parameters, values, units and time."""
    readings = {"ph": (7.62, None), "temp": (18.5, "Cel"), "cond": (0.0356, "S/m")}
    decoded = DECODER.decode("t", encode_senml("cq-cj-cuntan", T0, readings))
    assert decoded.rejections == []
    assert decoded.readings == [
        RawReading(parameter=code, value=value, ts=T0, station_id="cq-cj-cuntan", unit=unit)
        for code, (value, unit) in readings.items()
    ]


def test_encoder_round_trip_of_a_kind_and_a_below_detection_value() -> None:
    """With a kind and a `"0.01L"` value, the pack names the kind in bn and decodes back to both."""
    readings: dict[str, tuple[float | str, str | None]] = {"tp": ("0.01L", "mg/L"), "nh3n": (0.31, None)}
    payload = encode_senml("cq-cj-cuntan", T0, readings, kind="daily")
    pack = orjson.loads(payload)
    assert pack[0]["bn"] == "cq-cj-cuntan/daily/"
    assert pack[0]["vs"] == "0.01L"
    decoded = DECODER.decode("t", payload)
    assert decoded.rejections == []
    assert decoded.readings == [
        RawReading("tp", 0.01, T0, "cq-cj-cuntan", unit="mg/L", below_dl=True, kind="daily"),
        RawReading("nh3n", 0.31, T0, "cq-cj-cuntan", kind="daily"),
    ]


def test_encoder_puts_base_fields_on_the_first_record_only() -> None:
    """The pack carries bn '<station_id>/' and an integral bt once, then one n/v(/u) record per reading."""
    pack = orjson.loads(encode_senml("st-1", T0, {"ph": (7.0, None), "do": (8.0, "mg/L")}))
    assert pack == [
        {"bn": "st-1/", "bt": int(T0.timestamp()), "n": "ph", "v": 7.0},
        {"n": "do", "v": 8.0, "u": "mg/L"},
    ]


def test_encoder_keeps_sub_second_times_and_other_zones() -> None:
    """A local, sub-second time survives the trip as the same instant."""
    local = datetime(2026, 11, 25, 16, 0, 0, 250000, tzinfo=timezone(timedelta(hours=8)))
    [reading] = DECODER.decode("t", encode_senml("st-1", local, {"ph": (7.0, None)})).readings
    assert reading.ts == local


@pytest.mark.parametrize(
    ("ts", "readings"),
    [
        (datetime(2026, 11, 25), {"ph": (7.0, None)}),
        (T0, {}),
        (T0, {"ph": (float("inf"), None)}),
    ],
)
def test_encoder_refuses_what_senml_cannot_carry(
    ts: datetime, readings: dict[str, tuple[float, str | None]]
) -> None:
    """A naive time, no readings or a non-finite value is a ValueError."""
    with pytest.raises(ValueError, match=r"aware|at least one|cannot be sent"):
        encode_senml("st-1", ts, readings)


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=5),
    st.integers(RELATIVE_TIME_LIMIT, 4_000_000_000),
)
@FUZZ
def test_base_value_and_time_add_up(values: list[float], base_time: int) -> None:
    """Each reading's value is bv + v and its time bt + t, as RFC 8428 resolves them."""
    pack: list[dict[str, Any]] = [{"bn": "st-1/", "bt": base_time, "bv": 0.5}]
    pack += [{"n": "ph", "v": value, "t": index} for index, value in enumerate(values)]
    decoded = DECODER.decode("t", orjson.dumps(pack))
    assert [r.value for r in decoded.readings] == [0.5 + value for value in values]
    assert [r.ts.timestamp() for r in decoded.readings] == [base_time + i for i in range(len(values))]


# --- fuzzing: nothing but RejectedPayload escapes ------------------------------------------

VALID = encode_senml("cq-cj-cuntan", T0, {"ph": (7.6, None), "temp": (18.2, "Cel"), "do": (8.1, "mg/L")})

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
_LABELS = st.sampled_from(
    ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut", "x_"]
)
_FIELD_VALUES = (
    st.sampled_from(["st-1/", "urn:dev:ecowatch:st-1:", "ph", "st-1/ph", "", "Cel", "a/b/c", "-x"])
    | st.integers(-(2**40), 2**40)
    | st.floats()
    | st.booleans()
    | st.none()
    | _JSON
)
# Records that mostly resolve, so the fuzz also walks the paths that yield readings.
_PLAUSIBLE = st.fixed_dictionaries(
    {
        "n": st.sampled_from(["st-1/ph", "urn:dev:ecowatch:st-1:do", "ph", "x/"]),
        "v": st.floats(),
        "t": st.floats(),
    },
    optional={
        "bv": st.floats(),
        "bt": st.integers(-(2**40), 2**40),
        "bn": st.sampled_from(["", "st-1/", "urn:"]),
    },
)
_RECORDS = st.lists(_PLAUSIBLE | st.dictionaries(_LABELS, _FIELD_VALUES, max_size=6) | _JSON, max_size=8)


def decode_or_reject(payload: bytes) -> None:
    try:
        decoded = DECODER.decode("t", payload)
    except RejectedPayload:
        return
    for reading in decoded.readings:
        assert reading.station_id
        assert reading.ts.tzinfo is UTC
        assert reading.ts.timestamp() >= RELATIVE_TIME_LIMIT


@given(st.binary(max_size=500))
@FUZZ
def test_random_bytes_only_reject(data: bytes) -> None:
    """Random bytes decode or raise RejectedPayload, nothing else."""
    decode_or_reject(data)


@given(_JSON)
@FUZZ
def test_random_json_only_rejects(document: object) -> None:
    """Any JSON document (big integers included: orjson cannot write them, json can) decodes or rejects."""
    decode_or_reject(json.dumps(document).encode())


@given(_RECORDS)
@FUZZ
def test_random_packs_only_reject(pack: list[object]) -> None:
    """Packs of records with SenML labels and values of any type decode or raise RejectedPayload."""
    decode_or_reject(json.dumps(pack).encode())


@st.composite
def mutated(draw: st.DrawFn, source: bytes) -> bytes:
    data = bytearray(source)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(
                st.sampled_from([b"-", b"e9", b"_", b'"', b",{}", b"0" * 30, b"[", b"]"])
            )
    return bytes(data)


@given(mutated(VALID))
@FUZZ
def test_mutated_packs_only_reject(data: bytes) -> None:
    """Byte-level mutations of a valid pack decode or raise RejectedPayload."""
    decode_or_reject(data)
