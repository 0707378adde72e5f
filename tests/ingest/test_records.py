"""The byte layouts of the two logs round-trip exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.model import DataFlag, Reading
from ingest.records import decode_message, decode_readings, encode_message, encode_readings


@given(
    topic=st.text(min_size=1, max_size=200),
    payload=st.binary(max_size=2000),
    received=st.integers(0, 2**63 - 1),
)
def test_raw_records_round_trip(topic: str, payload: bytes, received: int) -> None:
    """Topic, payload and receive time come back unchanged, whatever the bytes."""
    message = decode_message(encode_message(topic.encode("utf-8", "surrogatepass"), payload, received))
    assert message.payload == payload
    assert message.received_ns == received
    if topic.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == topic:
        assert message.topic == topic


def test_readings_records_round_trip() -> None:
    """Every field of a reading survives the readings log, flags and tags included."""
    readings = [
        Reading(
            "st-1",
            "water_quality",
            "do",
            8.25,
            "mg/L",
            1_764_057_600_123_456_789,
            DataFlag.MAINTENANCE,
            (("basin", "长江"), ("station_id", "st-1")),
        ),
        Reading("st-1", "hydrology", "level", 175.1, "m", 1, DataFlag.NORMAL, ()),
    ]
    assert decode_readings(encode_readings(readings)) == readings


@given(
    marks=st.lists(st.booleans(), min_size=1, max_size=20),
    kinds=st.lists(st.sampled_from([None, "minute", "hourly", "daily", "lab"]), min_size=1, max_size=20),
)
def test_below_detection_marks_and_kinds_round_trip(marks: list[bool], kinds: list[str | None]) -> None:
    """Each reading's below-DL mark and `data_kind` tag come back on that reading, whatever the mix."""
    readings = []
    for index, below_dl in enumerate(marks):
        kind = kinds[index % len(kinds)]
        tags = (("data_kind", kind), ("station_id", "st-1")) if kind else (("station_id", "st-1"),)
        readings.append(
            Reading("st-1", "water_quality", "nh3n", 0.025, "mg/L", index, DataFlag.NORMAL, tags, below_dl)
        )
    decoded = decode_readings(encode_readings(readings))
    assert decoded == readings
    assert [r.below_dl for r in decoded] == marks


@given(marks=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=20))
def test_time_corrected_marks_round_trip_beside_the_below_detection_marks(
    marks: list[tuple[bool, bool]],
) -> None:
    """Each reading's time-corrected mark comes back on that reading, independent of its below-DL mark."""
    readings = [
        Reading(
            "st-1", "water_quality", "nh3n", 0.025, "mg/L", index, DataFlag.NORMAL, (), below_dl, corrected
        )
        for index, (below_dl, corrected) in enumerate(marks)
    ]
    decoded = decode_readings(encode_readings(readings))
    assert decoded == readings
    assert [(r.below_dl, r.time_corrected) for r in decoded] == marks
