"""Byte layouts of the two write-ahead logs' records.

Raw log: one received message, `[u64 received_ns][u16 topic length][topic utf-8][payload]`, built
on the paho thread before the ack, so it is a single struct pack and two concatenations.
Readings log: the validated readings of one message, as a compact JSON array of arrays.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import orjson

from ingest.model import DataFlag, Message, Reading

_RAW_HEADER = struct.Struct("<QH")
_FLAGS = {flag.value: flag for flag in DataFlag}


def encode_message(topic: bytes, payload: bytes | bytearray, received_ns: int) -> bytes:
    return _RAW_HEADER.pack(received_ns, len(topic)) + topic + payload


def decode_message(record: bytes) -> Message:
    received_ns, topic_len = _RAW_HEADER.unpack_from(record)
    start = _RAW_HEADER.size
    topic = record[start : start + topic_len].decode("utf-8", errors="replace")
    return Message(topic=topic, payload=record[start + topic_len :], received_ns=received_ns)


def encode_readings(readings: Sequence[Reading]) -> bytes:
    return orjson.dumps(
        [
            [r.station_id, r.measurement, r.parameter, r.value, r.unit, r.time_ns, r.flag.value, r.tags]
            for r in readings
        ]
    )


def decode_readings(record: bytes) -> list[Reading]:
    return [
        Reading(
            station_id=s,
            measurement=m,
            parameter=p,
            value=v,
            unit=u,
            time_ns=t,
            flag=_FLAGS[f],
            tags=tuple((k, tv) for k, tv in tags),
        )
        for s, m, p, v, u, t, f, tags in orjson.loads(record)
    ]
