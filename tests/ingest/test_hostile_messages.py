"""One bad message is that message's dead letter: time bounds, contained exceptions, lost workers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from config.parameters import default_catalogue
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.decoders import DECODERS
from ingest.errors import RejectReason
from ingest.model import Decoded, RawReading
from ingest.processor import MessageProcessor, Processor, Route, process_batch
from ingest.records import decode_message, decode_readings, encode_message
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from ingest.wal import WriteAheadLog
from tests.helpers import registry, station, wait_for

TOPIC = "ecowatch/v1/Yuzhong/st-1/water"
TEMPLATE = "ecowatch/v1/{district}/{station_id}/{kind}"


def _now_ns() -> int:
    return time.time_ns()


def _json(ts: str, **readings: float) -> bytes:
    return orjson.dumps({"station_id": "st-1", "ts": ts, "readings": readings or {"ph": 7.5}})


def _recent(seconds_ago: int = 60) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def _core(decoder: object | None = None, **validation: object) -> MessageProcessor:
    route = Route(TopicTemplate.parse(TEMPLATE), "json", decoder or DECODERS["json"]())  # type: ignore[arg-type]
    validator = Validator(
        ValidationConfig.model_validate(validation), registry(station("st-1")), default_catalogue()
    )
    return MessageProcessor([route], validator, max_payload_bytes=65536)


def _reasons(core: MessageProcessor, payload: bytes, topic: str = TOPIC) -> list[str]:
    record = encode_message(topic.encode(), payload, _now_ns())
    [(encoded, accepted, letters, _)] = process_batch(core, [(0, record)], _now_ns())
    assert (encoded is None) == (accepted == 0)
    return [str(letter.reason) for letter in letters]


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("1500-01-01T00:00:00Z", "time_out_of_range"),
        ("1000-01-01T00:00:00+08:00", "time_out_of_range"),
        ("0001-01-01T00:00:00+01:00", "time_out_of_range"),  # before year 1 in UTC
        ("2262-04-11T00:00:00Z", "clock_skew"),  # fits int64 ns, far in the future
        ("2263-01-01T00:00:00Z", "time_out_of_range"),
        ("9999-12-31T23:59:59Z", "time_out_of_range"),
        ("1800-01-01T00:00:00Z", "too_old"),
    ],
)
def test_times_outside_the_window_or_int64_are_rejected_with_their_reason(ts: str, reason: str) -> None:
    """Each out-of-bounds time is that reading's dead letter, with its own reason; nothing raises."""
    assert _reasons(_core(), _json(ts)) == [reason]


def test_max_past_age_is_configurable_and_recent_backfill_passes() -> None:
    """A narrow window refuses a month-old reading; the default takes a decade-old backfill."""
    month_old = _recent(31 * 86400)
    assert _reasons(_core(max_past_age="P7D"), _json(month_old)) == ["too_old"]
    assert _reasons(_core(), _json((datetime.now(UTC) - timedelta(days=3650)).isoformat())) == []


def test_the_year_1500_message_between_good_ones_does_not_stop_the_processor(tmp_path: Path) -> None:
    """The issue's reproduction: good, hostile, good through the worker process; all accounted for."""
    raw = WriteAheadLog(tmp_path / "raw", fsync=False)
    readings = WriteAheadLog(tmp_path / "readings", fsync=False)
    deadletters = DeadLetterStore(tmp_path / "deadletter.db")
    payloads = [_json(_recent(10)), _json("1500-01-01T00:00:00Z"), _json(_recent(5), ph=7.0)]
    for payload in payloads:
        raw.append(encode_message(TOPIC.encode(), payload, _now_ns()))
    raw.sync()
    processor = Processor(_core(), raw.reader("processor"), readings, deadletters, workers=1)
    out = readings.reader("test")
    try:
        processor.start()
        wait_for(lambda: raw.reader("processor").committed == 3, "the processor to commit all three")
        values = [r.value for _, record in out.read(10, timeout=1.0) for r in decode_readings(record)]
        assert values == [7.5, 7.0]
        assert deadletters.counts_by_reason() == {"time_out_of_range": 1}
    finally:
        processor.stop(5.0)
        raw.close()
        readings.close()
        deadletters.close()


class _RaisingDecoder:
    """Decodes like the JSON decoder, but raises an unexpected error for payloads containing `boom`."""

    name: ClassVar[str] = "json"

    def __init__(self) -> None:
        self._json = DECODERS["json"]()

    def decode(self, topic: str, payload: bytes) -> Decoded:
        if b"boom" in payload:
            raise KeyError("boom")
        if b"die" in payload:
            os._exit(3)  # what a crash in C code does to the worker
        return self._json.decode(topic, payload)


def test_an_unexpected_decoder_exception_is_an_internal_error_dead_letter() -> None:
    """A KeyError inside a decoder becomes `internal_error` naming the exception type."""
    record = encode_message(TOPIC.encode(), b'{"boom": 1}', _now_ns())
    [(encoded, _, letters, outcome)] = process_batch(_core(_RaisingDecoder()), [(7, record)], _now_ns())
    assert encoded is None
    assert outcome == "rejected"
    assert [(str(d.reason), d.source_offset) for d in letters] == [("internal_error", 7)]
    assert letters[0].detail.startswith("KeyError")


def test_a_validator_exception_costs_only_the_reading_that_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """When validating a message raises, its readings are validated one by one; the rest go on."""
    core = _core()
    real = Validator.validate_many

    def validate_many(self: Validator, raws: Iterable[RawReading], tags: Any, now_ns: int) -> Any:
        raws = list(raws)
        if any(raw.parameter == "do" for raw in raws):
            raise ZeroDivisionError("unexpected")
        return real(self, raws, tags, now_ns)

    monkeypatch.setattr(Validator, "validate_many", validate_many)
    record = encode_message(TOPIC.encode(), _json(_recent(), ph=7.1, do=8.0), _now_ns())
    [(encoded, accepted, letters, outcome)] = process_batch(core, [(0, record)], _now_ns())
    assert (accepted, outcome) == (1, "partial")
    assert [(str(d.reason), d.parameter) for d in letters] == [("internal_error", "do")]
    assert encoded is not None


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[WriteAheadLog, WriteAheadLog, DeadLetterStore]]:
    raw = WriteAheadLog(tmp_path / "raw", fsync=False)
    readings = WriteAheadLog(tmp_path / "readings", fsync=False)
    deadletters = DeadLetterStore(tmp_path / "deadletter.db")
    yield raw, readings, deadletters
    raw.close()
    readings.close()
    deadletters.close()


def test_a_message_that_kills_the_worker_is_isolated_and_dead_lettered(
    logs: tuple[WriteAheadLog, WriteAheadLog, DeadLetterStore],
) -> None:
    """A worker that dies on one message twice: that message is found and dead-lettered, the rest flow."""
    raw, readings, deadletters = logs
    payloads = [_json(_recent(30 - i), ph=7.0 + i / 10) for i in range(5)]
    payloads.insert(2, b'{"die": true}')
    for payload in payloads:
        raw.append(encode_message(TOPIC.encode(), payload, _now_ns()))
    raw.sync()
    processor = Processor(_core(_RaisingDecoder()), raw.reader("processor"), readings, deadletters)
    out = readings.reader("test")
    try:
        processor.start()
        wait_for(lambda: raw.reader("processor").committed == 6, "all six messages processed", timeout=60)
        values = [r.value for _, record in out.read(10, timeout=1.0) for r in decode_readings(record)]
        assert values == [7.0, 7.1, 7.2, 7.3, 7.4]
        [letter] = deadletters.list()
        assert str(letter.reason) == "internal_error"
        assert letter.payload == b'{"die": true}'
        assert "worker died" in letter.detail
    finally:
        processor.stop(5.0)


def test_an_unreadable_raw_record_is_dead_lettered_whole() -> None:
    """A raw-log record too short for its header still yields a dead letter holding its bytes."""
    [(encoded, _, letters, _)] = process_batch(_core(), [(3, b"\x01\x02")], _now_ns())
    assert encoded is None
    assert [str(d.reason) for d in letters] == ["internal_error"]
    assert letters[0].payload == b"\x01\x02"
    with pytest.raises(Exception):  # noqa: B017, PT011 - any error: this is what the guard is for
        decode_message(b"\x01\x02")


def test_topic_placeholders_take_only_their_allowed_values() -> None:
    """A `kind` outside its list is a bad topic, so a publisher cannot mint new series."""
    route = Route(
        TopicTemplate.parse(TEMPLATE, {"kind": frozenset({"water", "hydro"})}), "json", DECODERS["json"]()
    )
    validator = Validator(ValidationConfig(), registry(station("st-1")), default_catalogue())
    core = MessageProcessor([route], validator, max_payload_bytes=4096)
    assert _reasons(core, _json(_recent()), "ecowatch/v1/Yuzhong/st-1/water") == []
    assert _reasons(core, _json(_recent()), "ecowatch/v1/Yuzhong/st-1/x9f3") == [str(RejectReason.BAD_TOPIC)]


class _StuckStore(DeadLetterStore):
    """A dead-letter store whose writes wait until `release` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        self.release.wait(30)
        super().add_many(letters)


def test_good_readings_flow_while_the_dead_letter_store_is_stuck(tmp_path: Path) -> None:
    """Good readings reach the sinks with the store hanging; the raw log is committed only after it."""
    raw = WriteAheadLog(tmp_path / "raw", fsync=False)
    readings = WriteAheadLog(tmp_path / "readings", fsync=False)
    store = _StuckStore(tmp_path / "deadletter.db")
    for payload in (_json(_recent(9)), b"not json", _json(_recent(8), ph=7.2)):
        raw.append(encode_message(TOPIC.encode(), payload, _now_ns()))
    raw.sync()
    processor = Processor(_core(), raw.reader("processor"), readings, store, worker_process=False)
    out = readings.reader("sink")
    try:
        processor.start()
        got = [r.value for _, record in out.read(10, timeout=10.0) for r in decode_readings(record)]
        assert got == [7.5, 7.2]
        assert raw.reader("processor").committed == 0  # its dead letter is not stored yet
        store.release.set()
        wait_for(lambda: raw.reader("processor").committed == 3, "the commit after the dead letter")
        assert store.counts_by_reason() == {"malformed": 1}
    finally:
        store.release.set()
        processor.stop(5.0)
        raw.close()
        readings.close()
        store.close()


DEEP = "[" * 1020 + "]" * 1020  # within orjson's depth limit, beyond repr's recursion limit


@pytest.mark.parametrize(
    ("fmt", "topic", "payload", "reason"),
    [
        ("json", TOPIC, '{"station_id":"st-1","ts":"%s","readings":{"ph":%s}}', "not_a_number"),
        ("senml", "ecowatch/senml/st-1", '[{"bn":"st-1/","bt":1795000000,"n":"ph","v":%s}]', "not_a_number"),
        ("senml", "ecowatch/senml/st-1", '[{"bn":"st-1/","bt":1795000000,"n":%s,"v":7}]', "malformed"),
        (
            "senml",
            "ecowatch/senml/st-1",
            '[{"bn":"st-1/","bt":1795000000,"bs":%s,"n":"ph","v":7}]',
            "malformed",
        ),
    ],
)
def test_deeply_nested_values_are_rejected_for_what_they_are(
    fmt: str, topic: str, payload: str, reason: str
) -> None:
    """A value nested 1 020 deep is refused with its own reason, not lost to a RecursionError."""
    template = TEMPLATE if fmt == "json" else "ecowatch/senml/{station_id}"
    route = Route(TopicTemplate.parse(template), fmt, DECODERS[fmt]())
    validator = Validator(ValidationConfig(), registry(station("st-1")), default_catalogue())
    core = MessageProcessor([route], validator, max_payload_bytes=65536)
    text = payload % ((_recent(), DEEP) if fmt == "json" else (DEEP,))
    assert _reasons(core, text.encode(), topic) == [reason]
