"""A rejected message is stored once, with a bounded number of rows, and every rejection is counted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from config.parameters import default_catalogue
from ingest.deadletter import DeadLetter, DeadLetterConfig, DeadLetterStore
from ingest.decoders import DECODERS
from ingest.errors import RejectReason
from ingest.processor import MessageProcessor, Route, process_batch
from ingest.records import encode_message
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from tests.helpers import registry, station

T_NS = 1_800_000_000 * 10**9


def flood_message(offset: int, stations: int = 8960) -> list[DeadLetter]:
    """One ~64 KB JSON message of unknown stations, dead-lettered reading by reading, as the processor does."""
    doc = [{"s": f"x{i}", "v": 1} for i in range(stations)]
    payload = orjson.dumps(doc)[: 64 * 1024]
    return [
        DeadLetter(
            received_ns=T_NS,
            topic="ecowatch/v1/d/x/water",
            payload=payload,
            reason=RejectReason.UNKNOWN_STATION,
            detail=f"station x{i} is not in the registry",
            format="ecowatch_json",
            station_id=f"x{i}",
            parameter="ph",
            source_offset=offset,
        )
        for i in range(stations)
    ]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_message_of_8960_rejections_is_one_payload_and_a_hundred_rows(tmp_path: Path) -> None:
    """The 64 KB message that once made 8 960 rows (~554 MiB) keeps one payload and max_rows_per_message rows."""
    store = DeadLetterStore(tmp_path / "dl.db", DeadLetterConfig(max_rows_per_message=100))
    letters = flood_message(offset=3)
    capped = sample("ecowatch_deadletters_unstored_total", reason="unknown_station", cause="row_cap")
    store.add_many(letters)
    assert store.count() == 100
    assert store.counts_by_reason() == {"unknown_station": 8960}
    status = store.status()
    assert status["messages"] == 1
    assert status["unstored"] == {"unknown_station": 8860}
    assert status["bytes"] < 200 * 1024
    rows = store.list(limit=1000)
    assert {r.message_id for r in rows} == {rows[0].message_id}
    assert all(r.payload == letters[0].payload and r.omitted == 8860 for r in rows)
    assert [r.station_id for r in rows] == [f"x{i}" for i in range(100)]
    shown = rows[0].to_json()
    assert shown["omitted"] == 8860
    assert shown["source_offset"] == 3
    assert "payload" in shown
    assert sample("ecowatch_deadletters_unstored_total", reason="unknown_station", cause="row_cap") == (
        capped + 8860
    )
    store.close()


def test_the_cap_keeps_one_row_of_every_reason(tmp_path: Path) -> None:
    """A rare reason among many rejections of another still gets a row."""
    store = DeadLetterStore(tmp_path / "dl.db", DeadLetterConfig(max_rows_per_message=3))
    letters = flood_message(offset=1, stations=10)
    odd = DeadLetter(
        received_ns=T_NS,
        topic=letters[0].topic,
        payload=letters[0].payload,
        reason=RejectReason.OUT_OF_RANGE,
        detail="ph 99 out of range",
        station_id="x9",
        parameter="ph",
        source_offset=1,
    )
    store.add_many([*letters, odd])
    assert [(r.reason, r.station_id) for r in store.list()] == [
        ("unknown_station", "x0"),
        ("unknown_station", "x1"),
        ("out_of_range", "x9"),
    ]
    assert store.counts_by_reason() == {"unknown_station": 10, "out_of_range": 1}
    assert store.list()[0].omitted == 8


def test_reprocessing_a_batch_after_a_crash_counts_nothing_twice(tmp_path: Path) -> None:
    """The same raw-log offsets added again, even after a reopen, change neither rows nor counts."""
    batch = flood_message(offset=10, stations=300) + flood_message(offset=11, stations=5)
    store = DeadLetterStore(tmp_path / "dl.db")
    store.add_many(batch)
    store.add_many(batch)
    store.close()
    reopened = DeadLetterStore(tmp_path / "dl.db")
    reopened.add_many(batch)
    assert reopened.counts_by_reason() == {"unknown_station": 305}
    assert reopened.count() == 105
    assert reopened.status()["messages"] == 2
    # The next batch of the raw log counts again.
    reopened.add_many(flood_message(offset=12, stations=2))
    assert reopened.counts_by_reason() == {"unknown_station": 307}


def test_reprocessing_is_not_counted_twice_when_the_store_was_full(tmp_path: Path) -> None:
    """A message counted but kept out by the quota is not counted again when its batch is re-processed."""
    store = DeadLetterStore(tmp_path / "dl.db", DeadLetterConfig(max_bytes=2**17))
    batch = [letter for offset in range(5) for letter in flood_message(offset, stations=2000)]
    store.add_many(batch)
    assert 0 < store.status()["messages"] < 5  # the quota kept some out
    store.add_many(batch)
    assert store.counts_by_reason() == {"unknown_station": 10_000}


def test_a_raw_log_started_afresh_is_counted(tmp_path: Path) -> None:
    """Offsets far below the highest counted (a new raw log) are new messages, not repeats."""
    store = DeadLetterStore(tmp_path / "dl.db")
    store.add_many(flood_message(offset=5_000_000, stations=1))
    store.add_many(flood_message(offset=0, stations=1))
    store.add_many(flood_message(offset=1, stations=1))
    assert store.counts_by_reason() == {"unknown_station": 3}


def test_letters_without_offset_are_grouped_by_payload_within_a_call(tmp_path: Path) -> None:
    """Sink refusals carry no raw-log offset: the same payload in one call is one message, never merged across calls."""
    store = DeadLetterStore(tmp_path / "dl.db")

    def refusal(payload: bytes) -> DeadLetter:
        return DeadLetter(
            T_NS, "sink/influx", payload, RejectReason.SINK_REJECTED, "400: bad field", "reading"
        )

    store.add_many([refusal(b"a"), refusal(b"a"), refusal(b"b")])
    store.add_many([refusal(b"a")])
    rows = store.list()
    assert [r.payload for r in rows] == [b"a", b"a", b"b", b"a"]
    assert len({r.message_id for r in rows}) == 3
    assert store.counts_by_reason() == {"sink_rejected": 4}


def test_hostile_text_is_cut_and_stored(tmp_path: Path) -> None:
    """A station id as long as the message, or with a lone surrogate, is stored cut and readable."""
    store = DeadLetterStore(tmp_path / "dl.db")
    letter = DeadLetter(
        received_ns=T_NS,
        topic="t/\ud800",
        payload=b"{}",
        reason=RejectReason.UNKNOWN_STATION,
        detail="d" * 10_000,
        station_id="\udcff" + "s" * 60_000,
        parameter="p\ud800",
        source_offset=1,
    )
    store.add_many([letter])
    (row,) = store.list()
    assert row.station_id is not None
    assert len(row.station_id) == 200
    assert len(row.detail) == 2000
    assert row.topic == "t/?"
    assert store.counts_by_reason() == {"unknown_station": 1}


@pytest.mark.parametrize("limit", [1, 96, 100])
def test_an_hj212_packet_of_96_rejections_is_bounded_by_the_cap(tmp_path: Path, limit: int) -> None:
    """A 1 KB HJ 212 packet that once made 96 rows keeps min(96, cap) rows and one payload."""
    store = DeadLetterStore(tmp_path / "dl.db", DeadLetterConfig(max_rows_per_message=limit))
    payload = (
        b"##0999QN=20261125080000000;ST=21;CN=2011;PW=123456;MN=X;Flag=5;CP=&&" + b"w01001-Rtd=7.5;" * 64
    )
    letters = [
        DeadLetter(T_NS, "hj212/X", payload, RejectReason.UNKNOWN_STATION, "MN X", "hj212", "X", f"p{i}", 4)
        for i in range(96)
    ]
    store.add_many(letters)
    assert store.count() == min(96, limit)
    assert store.counts_by_reason() == {"unknown_station": 96}
    assert store.status()["messages"] == 1


def test_a_64_kb_json_message_through_the_processor_is_one_payload(tmp_path: Path) -> None:
    """A real 64 KB ecowatch JSON message of 6 400 unknown parameters, decoded and validated, stores one payload."""
    now_ns = time.time_ns()
    ts = datetime.fromtimestamp(now_ns / 1e9 - 60, UTC).isoformat()
    doc = {"station_id": "st-1", "ts": ts, "readings": {f"zz{i}": 1 for i in range(256)}}
    payload = orjson.dumps([doc] * 25)
    assert 60_000 < len(payload) <= 65_536
    route = Route(
        TopicTemplate.parse("ecowatch/v1/{district}/{station_id}/{kind}"), "json", DECODERS["json"]()
    )
    validator = Validator(ValidationConfig(), registry(station("st-1")), default_catalogue())
    core = MessageProcessor([route], validator, max_payload_bytes=65_536)
    record = encode_message(b"ecowatch/v1/Yuzhong/st-1/water", payload, now_ns)
    [(_encoded, _accepted, letters, _outcome)] = process_batch(core, [(41, record)], now_ns)
    store = DeadLetterStore(tmp_path / "dl.db")
    store.add_many(letters)
    store.add_many(letters)  # the batch again, as after a crash
    assert store.counts_by_reason() == {"unknown_parameter": 6400}
    assert store.count() == 100
    status = store.status()
    assert status["messages"] == 1
    assert status["bytes"] < 128 * 1024
    assert store.list(limit=1)[0].payload == payload
