"""Payloads the fuzzer (or issue 13) found breaking the ingest path, kept as explicit examples.

Each goes through the fuzz harness on its own and must pass every invariant (no exception, no
`internal_error`, at most `LETTERS_PER_MESSAGE_BOUND` dead-letter rows stored, readings that
round-trip and store) and be rejected with one of the reasons named. Two more pin memory: what the processor and the readings records keep
from message to message must be bounded in bytes, not only in entries.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Final

import orjson
import pytest

from ingest.processor import process_batch
from ingest.records import decode_readings, encode_message, encode_readings
from tests.fuzz.generators import hj212_frame, universe_now
from tests.fuzz.harness import FuzzHarness, rss_bytes

NOW: Final = universe_now()
RECENT: Final = (NOW - timedelta(days=1)).isoformat()
RECENT_EPOCH: Final = int((NOW - timedelta(days=1)).timestamp())
JSON_TOPIC: Final = "ecowatch/v1/江北区/cq-cj-cuntan/water"
SENML_TOPIC: Final = "ecowatch/senml/cq-cj-cuntan"
HJ212_TOPIC: Final = "hj212/50000000000003"
# Past `repr`'s recursion limit, within orjson's parsing depth (1024).
DEEP: Final = "[" * 1020 + "]" * 1020
TIME_REASONS: Final = frozenset({"too_old", "time_out_of_range"})
VALUE_REASONS: Final = frozenset({"malformed", "not_a_number", "bad_timestamp"})


def _json(ts: str = RECENT, readings: str = '{"ph":7.5}') -> bytes:
    return f'{{"station_id":"cq-cj-cuntan","ts":"{ts}","readings":{readings}}}'.encode()


def _senml(record: str) -> bytes:
    return f'[{{"bn":"cq-cj-cuntan/","bt":{RECENT_EPOCH},{record}}}]'.encode()


def _hj212(data_time: str) -> bytes:
    segment = (
        f"QN={data_time}000;ST=21;CN=2011;PW=123456;MN=50000000000003;Flag=4;"
        f"CP=&&DataTime={data_time};w01001-Rtd=7.50,w01001-Flag=N&&"
    )
    return hj212_frame(segment.encode())


def _unknown_stations_batch() -> bytes:
    """The issue's 60 KB array of readings of unknown stations (8 960 dead-letter rows before)."""
    docs: list[dict[str, object]] = []
    while sum(len(orjson.dumps(d)) for d in docs) < 60_000:
        docs.append(
            {"station_id": f"nowhere-{len(docs)}", "ts": RECENT, "readings": {"ph": 7, "do": 8, "tp": 0.1}}
        )
    return orjson.dumps(docs)


CASES: Final = [
    pytest.param("json", JSON_TOPIC, _json("1500-01-01T00:00:00Z"), TIME_REASONS, id="json-year-1500"),
    pytest.param("json", JSON_TOPIC, _json("0001-01-01T00:00:00+01:00"), TIME_REASONS, id="json-year-1-offset"),
    pytest.param("json", JSON_TOPIC, _json("9999-12-31T23:59:59.999999-23:59"), {"clock_skew", "time_out_of_range"}, id="json-year-9999"),
    pytest.param("json", JSON_TOPIC, _json("1677-09-21T00:12:43.145224Z"), TIME_REASONS, id="json-int64-min-edge"),
    pytest.param("hj212", HJ212_TOPIC, _hj212("10000101000000"), TIME_REASONS, id="hj212-year-1000"),
    pytest.param("hj212", HJ212_TOPIC, _hj212("15000101000000"), TIME_REASONS, id="hj212-year-1500"),
    pytest.param("json", JSON_TOPIC, _json(readings=f'{{"ph":{DEEP}}}'), VALUE_REASONS, id="json-deep-value"),
    pytest.param("json", JSON_TOPIC, _json(readings=f'{{"ph":{{"value":{DEEP}}}}}'), VALUE_REASONS, id="json-deep-object-value"),
    pytest.param("senml", SENML_TOPIC, _senml(f'"bs":{DEEP},"n":"ph","v":7'), VALUE_REASONS, id="senml-deep-base-field"),
    pytest.param("senml", SENML_TOPIC, _senml(f'"n":"ph","v":{DEEP}'), VALUE_REASONS, id="senml-deep-value"),
    pytest.param("senml", SENML_TOPIC, _senml(f'"n":{DEEP},"v":7'), VALUE_REASONS, id="senml-deep-name"),
    pytest.param("senml", SENML_TOPIC, _senml(f'"n":"ph","u":{DEEP},"v":7'), VALUE_REASONS, id="senml-deep-unit"),
    pytest.param("senml", SENML_TOPIC, _senml(f'"n":"ph","v":7,"t":{DEEP}'), VALUE_REASONS, id="senml-deep-time"),
    pytest.param(
        "json",
        JSON_TOPIC,
        _json(readings=orjson.dumps({f"p{i}": i for i in range(256)}).decode()),
        {"unknown_parameter"},
        id="json-256-unknown-parameters",
    ),
    pytest.param("json", JSON_TOPIC, _unknown_stations_batch(), {"unknown_station", "topic_mismatch"}, id="json-60kb-unknown-stations"),
]  # fmt: skip


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHarness]:
    """A harness shared by the cases (each is checked on its own)."""
    shared = FuzzHarness(tmp_path_factory.mktemp("fuzz-regressions"), NOW)
    yield shared
    shared.close()


@pytest.mark.parametrize(("fmt", "topic", "payload", "reasons"), CASES)
def test_found_payloads_are_rejected_with_their_reason(
    harness: FuzzHarness, fmt: str, topic: str, payload: bytes, reasons: frozenset[str]
) -> None:
    """A payload that once crashed or flooded the path is now rejected, whole or in part, with a reason."""
    checked = harness.check(fmt, "regression", topic, payload)
    assert not checked.problems, "\n".join(checked.problems)
    assert checked.readings == 0
    assert checked.reasons, "no dead letter"
    assert set(checked.reasons) <= reasons, checked.reasons


def test_the_time_window_edges_are_stored_or_rejected_by_time(tmp_path: Path) -> None:
    """Readings right inside the window are stored; right outside, rejected for their time, not lost."""
    harness = FuzzHarness(tmp_path, NOW)
    window = harness.settings.validation
    inside = [
        NOW - window.max_past_age + timedelta(minutes=1),
        NOW + window.max_future_skew - timedelta(seconds=1),
    ]
    outside = [
        NOW - window.max_past_age - timedelta(days=1),
        NOW + window.max_future_skew + timedelta(minutes=1),
    ]
    for moment in inside:
        checked = harness.check("json", "regression", JSON_TOPIC, _json(moment.astimezone(UTC).isoformat()))
        assert (checked.problems, checked.readings) == ([], 1), moment
    for moment in outside:
        checked = harness.check("json", "regression", JSON_TOPIC, _json(moment.astimezone(UTC).isoformat()))
        assert not checked.problems, "\n".join(checked.problems)
        assert set(checked.reasons) <= {"too_old", "clock_skew"}, (moment, checked.reasons)
    harness.close()


def _retained(run: Callable[[], object]) -> int:
    """Bytes of Python memory still allocated after `run` returns (its result dropped)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_distinct_huge_topics_do_not_pile_up_in_memory(tmp_path: Path) -> None:
    """F5: 2 000 distinct 60 KB topics (each a bad topic) leave a few MiB behind, not one copy each."""
    harness = FuzzHarness(tmp_path, NOW)

    def publish() -> None:
        for index in range(2000):
            topic = f"ecowatch/v1/d/{index:06d}{'x' * 60_000}/water".encode()
            process_batch(
                harness.core, [(index, encode_message(topic, b"{}", harness.now_ns))], harness.now_ns
            )

    grown = _retained(publish)
    harness.close()
    assert grown < 16 * 2**20, (
        f"{grown / 2**20:.0f} MiB retained (the topics are {2000 * 60_000 / 2**20:.0f} MiB)"
    )


def test_decoded_readings_of_large_messages_do_not_pile_up_in_memory(tmp_path: Path) -> None:
    """F6: the consumers' shared decoded records; 150 valid 64 KB messages leave at most 128 MiB."""
    harness = FuzzHarness(tmp_path, NOW)
    values = {"ph": 7, "temp": 18, "do": 8, "cond": 400, "turb": 10, "codmn": 3, "cod": 10, "bod5": 2, "nh3n": 1, "tp": 1, "tn": 1, "chla": 5}  # fmt: skip
    documents: list[dict[str, object]] = []
    while len(orjson.dumps(documents)) < 63_000:
        moment = (NOW - timedelta(minutes=len(documents))).astimezone(UTC)
        documents.append({"station_id": "cq-cj-cuntan", "ts": moment.isoformat(), "readings": values})
    record = encode_message(JSON_TOPIC.encode(), orjson.dumps(documents), harness.now_ns)
    ((encoded, _, letters, _),) = process_batch(harness.core, [(0, record)], harness.now_ns)
    harness.close()
    assert encoded is not None
    assert not letters
    readings = decode_readings(encoded)
    assert len(readings) > 4000  # as many as a 64 KB message can carry
    # What the readings log would hold for 150 such messages (each differs in one value).
    records = [encode_readings([replace(readings[0], value=float(n)), *readings[1:]]) for n in range(150)]
    gc.collect()
    before = rss_bytes()
    for each in records:
        decode_readings(each)  # as each sink and the alert engine do, sharing what they decode
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 128 * 2**20, f"{grown / 2**20:.0f} MiB retained by decoded readings records"
