"""What the delivery-loop tests share: readings numbered by value and a readings log of them."""

from __future__ import annotations

from pathlib import Path

from ingest.model import Reading
from ingest.records import encode_readings
from ingest.wal import WriteAheadLog

Tags = tuple[tuple[str, str], ...]


def reading(value: float, tags: Tags = ()) -> Reading:
    """A pH reading of station `st` whose time in seconds is its value."""
    return Reading("st", "water_quality", "ph", value, "1", int(value * 1e9), tags=tags)


def readings_log(directory: Path) -> WriteAheadLog:
    """A readings log holding readings 0..99, ten to a record."""
    log = WriteAheadLog(directory, segment_bytes=2**16, quota_bytes=2**20)
    for start in range(0, 100, 10):
        log.append(encode_readings([reading(float(v)) for v in range(start, start + 10)]))
    log.sync()
    return log
