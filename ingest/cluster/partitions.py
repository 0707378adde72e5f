"""Which partition a station belongs to: a stable hash of its id, the same on every worker and run.

A station's readings, alert state and incidents must live in one place, so the unit of ownership
is a partition of stations, never a single message. The mapping is the NATS server's own, so that
the stream that partitions the stations' subjects (`ingest.cluster.stations`: the subject
transform `{{partition(N, 2)}}`) and the leases agree on every station:

    partition = FNV-1a-32(station_id as UTF-8) % partitions

It is the same in every process, Python version and machine (Python's `hash` of a str is salted per
process, PYTHONHASHSEED) and spreads a real id scheme within a few per cent (tested). Only the
station id counts, not its district: a station that moves district keeps its partition.

Changing `partitions` moves most stations to another partition: it is fixed for a deployment (the
ownership bucket records it and a worker started with another value refuses to run).

What is hashed is a station's *partition key* (`PartitionKeys`): its id by default
(`cluster.partition_by: station`), or with `river_system` the river system it is on (the outlet
river its river flows to through the registry's network), so that every station of connected
rivers is in one partition and one alert engine follows a pollution incident along all of them.
Stations off the network keep their id. A key is one NATS subject token (`key_token`).

Subjects: `ecowatch.v1.<district>.<station>.water` (and the other kinds); `station_of_subject`
reads the station token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Literal

PartitionBy = Literal["station", "river_system"]

# FNV-1a, 32 bits: what nats-server's partition() mapping hashes the station token with.
_FNV_OFFSET: Final = 0x811C9DC5
_FNV_PRIME: Final = 0x01000193
# The subject scheme's tokens: ecowatch . v1 . <district> . <station> . <kind>
_SUBJECT_TOKENS: Final = 5
_STATION_TOKEN: Final = 3
# What may not stand in one NATS subject token.
_NOT_IN_TOKEN: Final = re.compile(r"[.*>\s]")


def partition_of(station_id: str, partitions: int) -> int:
    """The partition (0 .. partitions-1) of `station_id`; the same everywhere, every time."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    h = _FNV_OFFSET
    for byte in station_id.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h % partitions


def station_of_subject(subject: str) -> str:
    """The station id in `ecowatch.v1.<district>.<station>.<kind>`; ValueError for other subjects."""
    tokens = subject.split(".")
    if len(tokens) != _SUBJECT_TOKENS or tokens[:2] != ["ecowatch", "v1"] or not all(tokens):
        raise ValueError(f"not an ecowatch.v1.<district>.<station>.<kind> subject: {subject!r}")
    return tokens[_STATION_TOKEN]


def partition_of_subject(subject: str, partitions: int) -> int:
    """The partition of the station a subject names."""
    return partition_of(station_of_subject(subject), partitions)


def key_token(value: str) -> str:
    """`value` as one NATS subject token (`.`, `*`, `>` and whitespace become `_`; "" becomes `_`)."""
    return _NOT_IN_TOKEN.sub("_", value) or "_"


class PartitionKeys:
    """Each station's partition key: its id, or with `basin_of` its river system's (see the module)."""

    def __init__(self, basin_of: Callable[[str], str | None] | None = None) -> None:
        self._basin_of = basin_of

    def key(self, station_id: str) -> str:
        """The token the stations stream partitions `station_id`'s messages by."""
        basin = self._basin_of(station_id) if self._basin_of is not None else None
        return key_token(f"~{basin}" if basin is not None else station_id)

    def partition(self, station_id: str, partitions: int) -> int:
        return partition_of(self.key(station_id), partitions)
