"""Segment files of the write-ahead log: names, record framing, sequential reading.

A segment is named by the offset of its first record, zero-padded so names sort like offsets
(`00000000000000000000.seg`). A record is framed as

    [u32 length][u32 crc32(length bytes + payload)][payload]      little-endian

The checksum covers the length as well as the payload: with a payload-only crc32 a run of zero
bytes (what a file system may leave after a crash that extended the file before writing its data)
reads as valid empty records, since crc32(b"") == 0; covering the length makes that impossible
and catches a corrupt length without relying on the payload's checksum to fail by chance.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

HEADER: Final = struct.Struct("<II")
HEADER_BYTES: Final = HEADER.size
# u32 length field.
MAX_PAYLOAD_BYTES: Final = 2**32 - 1
SUFFIX: Final = ".seg"
_NAME: Final = re.compile(r"^(\d{20})\.seg$")
# Large sequential reads: a reader drains megabytes per call when it is behind.
_READ_BUFFER_BYTES: Final = 1 << 20

_pack_length = struct.Struct("<I").pack
_crc32 = zlib.crc32


def segment_name(first_offset: int) -> str:
    return f"{first_offset:020d}{SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first offset a segment file name encodes, or None for any other file."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def frame(records: Iterable[bytes], parts: list[bytes]) -> None:
    """Append the framed `records` to `parts` (header and payload as separate items, no copy)."""
    append = parts.append
    for record in records:
        length = _pack_length(len(record))
        append(length)
        append(_pack_length(_crc32(record, _crc32(length))))
        append(record)


class CorruptRecordError(Exception):
    """The bytes at a position are not a whole, intact record."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at byte {position}")
        self.reason = reason
        self.position = position


class SegmentCursor:
    """Reads one segment's records in order, keeping its file handle and byte position.

    `offset` is the log offset of the next record, `position` its byte position in the file.
    The file may grow while the cursor is open (the active segment); the caller only asks for
    records it knows are complete.
    """

    def __init__(self, path: Path, first_offset: int) -> None:
        self.path = path
        self.first_offset = first_offset
        self.offset = first_offset
        self.position = 0
        self._file: BinaryIO = open(path, "rb", buffering=_READ_BUFFER_BYTES)  # noqa: SIM115
        self._size = os.fstat(self._file.fileno()).st_size

    def next(self) -> bytes | None:
        """The next record, or None at a clean end of file; raises CorruptRecordError otherwise."""
        start = self.position
        header = self._file.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            if not header:
                return None
            raise CorruptRecordError("short_header", start)
        length, checksum = HEADER.unpack(header)
        end = start + HEADER_BYTES + length
        # Bound the read by the file size before reading: a corrupt length must not make us
        # allocate gigabytes. The size is refreshed only when a record seems to pass it.
        if end > self._size:
            self._size = os.fstat(self._file.fileno()).st_size
            if end > self._size:
                raise CorruptRecordError("length_past_eof", start)
        payload = self._file.read(length)
        if len(payload) < length:
            raise CorruptRecordError("length_past_eof", start)
        if _crc32(payload, _crc32(header[:4])) != checksum:
            raise CorruptRecordError("bad_checksum", start)
        self.position = end
        self.offset += 1
        return payload

    def skip_to(self, offset: int) -> None:
        """Advance (reading and checking each record) until the next record is `offset`."""
        while self.offset < offset:
            if self.next() is None:
                raise CorruptRecordError("missing_records", self.position)

    def rewind(self, offset: int, position: int) -> None:
        """Jump to a record whose byte position is already known."""
        self._file.seek(position)
        self.offset = offset
        self.position = position

    def close(self) -> None:
        self._file.close()


def scan(path: Path, first_offset: int) -> tuple[int, int, CorruptRecordError | None]:
    """Check every record of a segment: (intact records, bytes they span, first corruption)."""
    cursor = SegmentCursor(path, first_offset)
    error: CorruptRecordError | None = None
    try:
        while cursor.next() is not None:
            pass
    except CorruptRecordError as exc:
        error = exc
    finally:
        cursor.close()
    return cursor.offset - first_offset, cursor.position, error


class SegmentSpan(NamedTuple):
    """Where a reader finds an offset: a segment's first offset, its file, the next segment's first."""

    first: int
    path: Path
    # None while the segment is the last (active) one.
    next_first: int | None


@dataclass(slots=True)
class Segment:
    """An entry of the log's in-memory index: a segment file and its size on disk."""

    first: int
    path: Path
    size: int
