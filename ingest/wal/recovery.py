"""Opening a log directory: lock it, index its segments, cut a torn tail; and the damage reports.

Only the last segment is checked at open: it is the only one a crash can have left half
written (a segment is fsynced before the next is created). Rescanning every segment would read
the whole quota at each start; readers verify every record's checksum instead and report a
damaged record in an older segment as a `Corruption`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Final

import structlog

from config.files import open_private
from ingest.wal.offsets import fsync_directory
from ingest.wal.segment import Segment, parse_segment_name, scan, segment_name

log = structlog.get_logger(__name__)

_LOCK_FILE: Final = "lock"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening the log cut off the end of its last segment (never-acknowledged records)."""

    segment: str
    truncated_bytes: int
    # Bytes cut divided by the segment's mean record size: the torn records' own lengths are
    # not trustworthy.
    truncated_records_estimate: int
    reason: str


@dataclass(frozen=True, slots=True)
class Corruption:
    """A damaged record a reader found; the rest of its segment was skipped."""

    segment: str
    offset: int
    byte_position: int
    reason: str
    # Records lost up to the next segment; None when the damage is in the active segment
    # (it is sealed at the next sync and readers resume in the new segment).
    skipped_records: int | None


def lock_directory(directory: Path) -> int:
    """Take an exclusive lock on the directory (two writers would interleave records); its fd."""
    fd = open_private(directory / _LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"write-ahead log {directory} is open elsewhere") from None
    return fd


def load_segments(directory: Path, *, fsync: bool) -> list[Segment]:
    """The segments in offset order; an empty log gets its first, empty segment."""
    segments = []
    for entry in os.scandir(directory):
        first = parse_segment_name(entry.name)
        if first is not None:
            segments.append(Segment(first, Path(entry.path), entry.stat().st_size))
    if not segments:
        path = directory / segment_name(0)
        os.close(open_private(path, os.O_WRONLY))
        if fsync:
            fsync_directory(directory)
        segments.append(Segment(0, path, 0))
    segments.sort(key=attrgetter("first"))
    return segments


def recover_tail(tail: Segment, *, fsync: bool) -> tuple[Recovery | None, int]:
    """Check the last segment and cut a torn or corrupt tail: (what was cut, intact records)."""
    records, valid_bytes, error = scan(tail.path, tail.first)
    if error is None:
        return None, records
    truncated = tail.size - valid_bytes
    mean_record = valid_bytes / records if records else truncated
    recovery = Recovery(
        segment=tail.path.name,
        truncated_bytes=truncated,
        truncated_records_estimate=max(1, round(truncated / mean_record)),
        reason=error.reason,
    )
    with open(tail.path, "r+b") as file:
        file.truncate(valid_bytes)
        if fsync:
            os.fsync(file.fileno())
    tail.size = valid_bytes
    log.warning(
        "wal_tail_truncated",
        directory=str(tail.path.parent),
        segment=recovery.segment,
        truncated_bytes=recovery.truncated_bytes,
        truncated_records_estimate=recovery.truncated_records_estimate,
        reason=recovery.reason,
        end_offset=tail.first + records,
    )
    return recovery, records
