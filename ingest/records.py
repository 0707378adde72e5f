"""Byte layouts of the two write-ahead logs' records.

Raw log: one received message, `[u64 received_ns][u16 topic length][topic utf-8][payload]`, built
on the paho thread before the ack, so it is a single struct pack and two concatenations.

Readings log: the validated readings of one message,
`[u8 layout=4][u32 reading count][u32 JSON length][JSON][line protocol]`. The JSON holds the
readings, the distinct tag sets once (`t`, usually one per message), then one row per reading
naming its tag set by index (`r`), then, only when there are any, the indexes of the rows below
the detection limit (`d`: their value is the limit, see `Reading.below_dl`) and of the rows whose
time was corrected by the logger's clock error (`c`, see `Reading.time_corrected`):

    {"t": [[["basin", "长江"], ["station_id", "st-1"]]],
     "r": [[0, "st-1", "water_quality", "ph", 7.6, "", 1795600000000000000, "N"],
           [0, "st-1", "water_quality", "nh3n", 0.025, "mg/L", 1795600000000000000, "N"]],
     "d": [1], "c": [0, 1]}

The kind of value (`DataKind`) travels as the readings' `data_kind` tag. Layout 4 added `d`; a
layout 3 record is the same without it (nothing was below the detection limit then), and an
ecowatch that knows only layout 3 refuses a layout 4 record rather than read a limit as a value.
`c` came later within layout 4, as optional as `d`: a record without it holds no corrected
times, and an ecowatch from before `c` still reads a record with it right (the times in `r` are
the corrected ones; only the mark is lost), so the layout stayed 4.

The line protocol part is the same readings rendered for the InfluxDB-style sinks
(`ingest.sinks.line_protocol`), empty when they cannot be rendered. It is written by the
processor, which runs in a worker process of its own, so that the sinks in the daemon's main
process (where the MQTT receive path needs the GIL) only slice and join bytes per message; the
JSON is still the record's meaning, and a sink that is refused a batch narrows it down from the
decoded readings. Records of the earlier layouts (layout 3, a JSON object as above without a
header, or a bare array of per-reading arrays with tags included) still decode; the two without
a header carry no line protocol.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from ingest.model import DataFlag, Message, Reading
from ingest.sinks.line_protocol import LineEncoder

_RAW_HEADER = struct.Struct("<QH")
_READINGS_HEADER = struct.Struct("<BII")
_READINGS_LAYOUT = 4
# Layouts with the header: 3 is 4 without `d` (decoded alike).
_HEADED_LAYOUTS = frozenset({3, _READINGS_LAYOUT})
_FLAGS = {flag.value: flag for flag in DataFlag}
Tags = tuple[tuple[str, str], ...]
# Consumers moving together read within a few hundred records of each other; ~5 KB each. The
# cache is bounded by records and by the readings they hold (a 64 KB message can hold 4 500
# readings, ~2 MiB decoded: 2 048 of those would be 4 GiB).
_SHARED_RECORDS = 2048
_SHARED_READINGS = 100_000
_shared: dict[bytes, list[Reading]] = {}
_shared_readings = [0]
_shared_lock = threading.Lock()


def encode_message(topic: bytes, payload: bytes | bytearray, received_ns: int) -> bytes:
    return _RAW_HEADER.pack(received_ns, len(topic)) + topic + payload


def decode_message(record: bytes) -> Message:
    received_ns, topic_len = _RAW_HEADER.unpack_from(record)
    start = _RAW_HEADER.size
    topic = record[start : start + topic_len].decode("utf-8", errors="replace")
    return Message(topic=topic, payload=record[start + topic_len :], received_ns=received_ns)


_line_encoder = LineEncoder()


def encode_readings(readings: Sequence[Reading]) -> bytes:
    tag_sets: dict[Tags, int] = {}
    rows: list[tuple[int, str, str, str, float, str, int, str]] = []
    below_dl: list[int] = []
    corrected: list[int] = []
    # A message's readings share one tags object (validation hands it out per sender): look a
    # tag set up only when it changes, as hashing the nested tuple costs more than the rest.
    last_tags: Tags | None = None
    index = 0
    for r in readings:
        if r.tags is not last_tags:
            last_tags = r.tags
            found = tag_sets.get(last_tags)
            index = tag_sets[last_tags] = len(tag_sets) if found is None else found
        if r.below_dl:
            below_dl.append(len(rows))
        if r.time_corrected:
            corrected.append(len(rows))
        rows.append((index, r.station_id, r.measurement, r.parameter, r.value, r.unit, r.time_ns, r.flag))
    content: dict[str, object] = {"t": list(tag_sets), "r": rows}
    if below_dl:
        content["d"] = below_dl
    if corrected:
        content["c"] = corrected
    document = orjson.dumps(content)
    try:
        lines = _line_encoder.encode(readings).encode()
    except ValueError:
        lines = b""  # the sinks encode the readings themselves and dead-letter what fails
    return _READINGS_HEADER.pack(_READINGS_LAYOUT, len(readings), len(document)) + document + lines


def readings_count(record: bytes) -> int:
    """How many readings a readings record holds (from its header; older layouts are decoded)."""
    header = _header(record)
    return header[0] if header is not None else len(decode_readings(record))


def line_protocol(record: bytes) -> bytes | None:
    """The record's readings as line protocol, one line per point; None when it has none."""
    header = _header(record)
    if header is None:
        return None
    return record[_READINGS_HEADER.size + header[1] :] or None


def _header(record: bytes) -> tuple[int, int] | None:
    """(reading count, JSON length) of a record with the header; None for older layouts."""
    if not record or record[0] not in _HEADED_LAYOUTS:
        return None
    _, count, length = _READINGS_HEADER.unpack_from(record)
    return count, length


def decode_readings(record: bytes) -> list[Reading]:
    """The readings of a record; a record decoded lately (by another consumer) is not decoded again.

    Every consumer of the readings log (each sink, the alert engine) decodes every record, most
    of them within moments of each other; readings are frozen values, so consumers can share
    them. The cache holds the last `_SHARED_RECORDS` records decoded, oldest out first, and at most
    `_SHARED_READINGS` readings in all; a record holding more than an eighth of that is not kept.
    """
    shared = _shared.get(record)
    if shared is not None:
        return shared.copy()
    readings = _decode(record)
    if len(readings) > _SHARED_READINGS // 8:
        return readings  # too big to keep: whoever needs it again decodes it again
    with _shared_lock:
        if record not in _shared:
            _shared[record] = readings
            _shared_readings[0] += len(readings)
        while len(_shared) > _SHARED_RECORDS or _shared_readings[0] > _SHARED_READINGS:
            _shared_readings[0] -= len(_shared.pop(next(iter(_shared))))
    return readings.copy()


def _decode(record: bytes) -> list[Reading]:
    header = _header(record)
    if header is None:
        document = orjson.loads(record)
    else:
        start = _READINGS_HEADER.size
        document = orjson.loads(record[start : start + header[1]])
    if isinstance(document, list):
        return _decode_v1(document)
    tag_sets: list[Tags] = [tuple((k, v) for k, v in tags) for tags in document["t"]]
    flags = _FLAGS
    readings = [Reading(s, m, p, v, u, t, flags[f], tag_sets[i]) for i, s, m, p, v, u, t, f in document["r"]]
    for index in document.get("d", ()):
        readings[index] = replace(readings[index], below_dl=True)
    for index in document.get("c", ()):
        readings[index] = replace(readings[index], time_corrected=True)
    return readings


def _decode_v1(rows: list[list[Any]]) -> list[Reading]:
    return [
        Reading(s, m, p, v, u, t, _FLAGS[f], tuple((k, tv) for k, tv in tags))
        for s, m, p, v, u, t, f, tags in rows
    ]
