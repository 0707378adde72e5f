"""The processor loop over real logs: offsets, and progress while the readings log is at its quota."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from config.parameters import default_catalogue
from ingest.deadletter import DeadLetterStore
from ingest.decoders import DECODERS
from ingest.processor import MessageProcessor, Processor, Route
from ingest.records import decode_readings, encode_message
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from ingest.wal import WriteAheadLog
from tests.helpers import T0, T0_NS, registry, station

TOPIC = "ecowatch/v1/Yuzhong/st-1/water"
PARAMETERS = {
    "ph": 7.1,
    "temp": 18.0,
    "do": 8.0,
    "cond": 400.0,
    "turb": 5.0,
    "codmn": 2.0,
    "nh3n": 0.2,
    "tp": 0.05,
}
DEADLINE_SECONDS = 20.0


def core() -> MessageProcessor:
    route = Route(
        TopicTemplate.parse("ecowatch/v1/{district}/{station_id}/{kind}"), "json", DECODERS["json"]()
    )
    validator = Validator(ValidationConfig(), registry(station("st-1")), default_catalogue())
    return MessageProcessor([route], validator, max_payload_bytes=4096)


def message(i: int) -> bytes:
    ts = (T0 + timedelta(seconds=i)).isoformat()
    payload = orjson.dumps({"station_id": "st-1", "ts": ts, "readings": PARAMETERS})
    return encode_message(TOPIC.encode(), payload, T0_NS)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[WriteAheadLog, WriteAheadLog, DeadLetterStore]]:
    raw = WriteAheadLog(tmp_path / "raw", fsync=False)
    # The smallest segments, and a quota a few hundred readings records fill.
    readings = WriteAheadLog(tmp_path / "readings", segment_bytes=2**16, quota_bytes=2**17, fsync=False)
    deadletters = DeadLetterStore(tmp_path / "deadletter.db")
    yield raw, readings, deadletters
    raw.close()
    readings.close()
    deadletters.close()


def test_a_full_readings_log_in_mid_batch_lets_the_sinks_drain_it(
    logs: tuple[WriteAheadLog, WriteAheadLog, DeadLetterStore],
) -> None:
    """Reaching the quota mid-batch syncs and commits the part done, so a consumer frees room and all flows."""
    raw, readings, deadletters = logs
    count = 1000  # ~1 KB of readings each: about eight times the readings log's quota
    for i in range(count):
        raw.append(message(i))
    raw.sync()
    now = T0_NS + count * 1_000_000_000  # every message in the past
    processor = Processor(core(), raw.reader("processor"), readings, deadletters, clock=lambda: now)
    sink = readings.reader("sink")
    times: list[int] = []
    with capture_logs() as events:
        processor.start()
        deadline = time.monotonic() + DEADLINE_SECONDS
        while len(times) < count * len(PARAMETERS) and time.monotonic() < deadline:
            batch = sink.read(50, timeout=0.1)
            for _, record in batch:
                times.extend(r.time_ns for r in decode_readings(record))
            if batch:
                sink.commit(batch[-1][0] + 1)
        processor.stop(5.0)
    assert len(times) == count * len(PARAMETERS), f"the sink got {len(times)} readings"
    assert len(set(times)) == count
    assert raw.consumers()["processor"] == count
    assert "readings_log_full" in {e["event"] for e in events}
    assert not processor.blocked_on_full_log


@pytest.mark.parametrize(
    ("worker_process", "workers"),
    [(True, 1), (True, 3), (False, 1)],
    ids=["worker-process", "three-worker-processes", "in-process"],
)
def test_many_batches_flow_through_in_order_with_or_without_worker_processes(
    tmp_path: Path, worker_process: bool, workers: int
) -> None:
    """Batches big enough to fill the pipes both ways are processed once each, in log order, by any number of workers."""
    raw = WriteAheadLog(tmp_path / "raw", fsync=False)
    readings = WriteAheadLog(tmp_path / "readings", fsync=False)
    deadletters = DeadLetterStore(tmp_path / "deadletter.db")
    count = 3000
    for i in range(count):
        raw.append(message(i))
    raw.sync()
    now = T0_NS + count * 1_000_000_000
    processor = Processor(
        core(),
        raw.reader("processor"),
        readings,
        deadletters,
        batch_records=500,
        clock=lambda: now,
        worker_process=worker_process,
        workers=workers,
    )
    sink = readings.reader("sink")
    ph_times: list[int] = []
    total = 0
    processor.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while total < count * len(PARAMETERS) and time.monotonic() < deadline:
            for _, record in sink.read(1000, timeout=0.1):
                decoded = decode_readings(record)
                total += len(decoded)
                ph_times.extend(r.time_ns for r in decoded if r.parameter == "ph")
    finally:
        processor.stop(5.0)
        raw.close()
        readings.close()
        deadletters.close()
    assert total == count * len(PARAMETERS)
    assert ph_times == sorted(ph_times)
    assert len(ph_times) == len(set(ph_times)) == count
    assert raw.consumers()["processor"] == count
