"""Our JSON schema v1: envelope checks, per-reading errors, batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ingest.decoders.ecowatch_json import EcowatchJsonDecoder, encode
from ingest.errors import RejectedPayload, RejectReason

DECODER = EcowatchJsonDecoder()


def test_numbers_and_objects_become_raw_readings() -> None:
    """A bare number has no unit and flag N; an object carries its unit and flag."""
    payload = encode(
        "cq-1",
        datetime(2026, 1, 1, tzinfo=UTC),
        {"ph": 7.5, "do": {"value": 8100, "unit": "ug/L", "flag": "C"}},
    )
    decoded = DECODER.decode("t", payload)
    assert decoded.rejections == []
    by_code = {r.parameter: r for r in decoded.readings}
    assert by_code["ph"].value == 7.5
    assert by_code["ph"].unit is None
    assert by_code["ph"].flag == "N"
    assert (by_code["do"].value, by_code["do"].unit, by_code["do"].flag) == (8100.0, "ug/L", "C")
    assert by_code["do"].station_id == "cq-1"
    assert by_code["do"].ts == datetime(2026, 1, 1, tzinfo=UTC)


def test_one_bad_value_rejects_only_that_reading() -> None:
    """A string, a boolean or a malformed object is an item rejection; the rest go on."""
    payload = orjson.dumps(
        {
            "station_id": "cq-1",
            "ts": "2026-01-01T00:00:00Z",
            "readings": {"ph": 7.1, "do": "high", "temp": True, "tp": {"val": 1}},
        }
    )
    decoded = DECODER.decode("t", payload)
    assert [r.parameter for r in decoded.readings] == ["ph"]
    assert sorted(r.parameter or "" for r in decoded.rejections) == ["do", "temp", "tp"]
    assert {r.reason for r in decoded.rejections} == {RejectReason.NOT_A_NUMBER}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b'{"ts": "2026-01-01T00:00:00Z", "readings": {"ph": 7}}', "station_id"),
        (b'{"station_id": "a", "ts": "yesterday", "readings": {"ph": 7}}', "ts"),
        (b'{"station_id": "a", "ts": "2026-01-01T00:00:00Z", "readings": {}}', "readings"),
        (b'{"station_id": "a", "ts": "2026-01-01T00:00:00Z", "readings": {"ph": 7}, "x": 1}', "x"),
        (b"[]", "batch"),
        (b'"text"', "document"),
    ],
)
def test_unusable_messages_are_rejected_whole_with_the_reason(payload: bytes, fragment: str) -> None:
    """A message with no usable envelope raises RejectedPayload naming the problem."""
    with pytest.raises(RejectedPayload) as caught:
        DECODER.decode("t", payload)
    assert caught.value.reason == RejectReason.MALFORMED
    assert fragment in caught.value.detail


def test_a_batch_rejects_bad_documents_individually() -> None:
    """In an array, a bad document is an item rejection; good documents are decoded."""
    good = {"station_id": "a", "ts": "2026-01-01T00:00:00Z", "readings": {"ph": 7}}
    decoded = DECODER.decode("t", orjson.dumps([good, {"station_id": "b"}]))
    assert [r.station_id for r in decoded.readings] == ["a"]
    assert len(decoded.rejections) == 1
    assert "document 1" in decoded.rejections[0].detail


def test_naive_timestamps_are_passed_on_for_validation_to_judge() -> None:
    """The decoder keeps a naive time naive: validation decides with the station's zone."""
    decoded = DECODER.decode("t", b'{"station_id": "a", "ts": "2026-01-01T08:00:00", "readings": {"ph": 7}}')
    assert decoded.readings[0].ts.tzinfo is None


def test_each_message_gets_its_own_time_when_times_repeat() -> None:
    """Times parsed once and reused still decode per message: two times alternate, a bad one stays bad."""
    times = [
        "2026-01-01T00:00:00Z",
        "2026-01-01T08:00:00+08:00",
        "2026-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
    ]
    decoded: list[object] = []
    for ts in times * 2:
        try:
            result = DECODER.decode("t", orjson.dumps({"station_id": "a", "ts": ts, "readings": {"ph": 7.0}}))
        except RejectedPayload as exc:
            decoded.append(exc.reason)
        else:
            decoded.append(result.readings[0].ts.isoformat())
    assert decoded[:4] == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T08:00:00+08:00",
        "2026-01-01T00:00:00+00:00",
        RejectReason.MALFORMED,
    ]
    assert decoded[4:] == decoded[:4]


def test_results_below_the_detection_limit_in_each_form() -> None:
    """`"0.01L"`, an object's `"10L"` with its unit, and `below_dl: true` all give the limit, marked."""
    payload = encode(
        "cq-1",
        datetime(2026, 1, 1, tzinfo=UTC),
        {
            "nh3n": "0.01L",
            "cd": {"value": "0.5L", "unit": "ug/L", "flag": "N"},
            "tp": {"value": 0.01, "below_dl": True},
            "codmn": {"value": 2.5, "below_dl": False},
        },
    )
    decoded = DECODER.decode("t", payload)
    assert decoded.rejections == []
    assert [(r.parameter, r.value, r.unit, r.below_dl) for r in decoded.readings] == [
        ("nh3n", 0.01, None, True),
        ("cd", 0.5, "ug/L", True),
        ("tp", 0.01, None, True),
        ("codmn", 2.5, None, False),
    ]


def test_other_strings_and_contradictions_are_not_numbers() -> None:
    """`"0.01"`, `"<0.01"`, `"ND"` and `"0.01L"` with `below_dl: false` are item rejections."""
    readings: dict[str, float | str | dict[str, Any]] = {
        "a": "0.01",
        "b": "<0.01",
        "c": "ND",
        "d": {"value": "0.01L", "below_dl": False},
        "e": "0.01l",
        "f": {"value": 0.01, "below_dl": "yes"},
    }
    decoded = DECODER.decode("t", encode("cq-1", datetime(2026, 1, 1, tzinfo=UTC), readings))
    assert decoded.readings == []
    assert [r.parameter for r in decoded.rejections] == list(readings)
    assert {r.reason for r in decoded.rejections} == {RejectReason.NOT_A_NUMBER}
    assert "detection limit like '0.01L'" in decoded.rejections[0].detail
    assert "yet below_dl is false" in decoded.rejections[3].detail


def test_a_top_level_kind_applies_to_every_value_and_defaults_to_realtime() -> None:
    """`"kind": "hourly"` marks each reading hourly; without it they are real-time."""
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    hourly = DECODER.decode("t", encode("cq-1", ts, {"ph": 7.5, "nh3n": "0.02L"}, kind="hourly"))
    assert [(r.parameter, r.kind, r.below_dl) for r in hourly.readings] == [
        ("ph", "hourly", False),
        ("nh3n", "hourly", True),
    ]
    realtime = DECODER.decode("t", encode("cq-1", ts, {"ph": 7.5}))
    assert realtime.readings[0].kind == "realtime"


def test_an_unknown_kind_rejects_the_document() -> None:
    """A kind outside realtime, minute, hourly, daily, lab makes the document malformed."""
    with pytest.raises(RejectedPayload) as caught:
        DECODER.decode("t", encode("cq-1", datetime(2026, 1, 1, tzinfo=UTC), {"ph": 7.5}, kind="weekly"))
    assert caught.value.reason is RejectReason.MALFORMED
    assert "kind" in caught.value.detail
