"""Sinks: where validated readings are stored. One module per sink, one protocol, one registry.

A sink does one write per call and states the retry verdict of a failure in `SinkError`; the
delivery loop (`ingest.delivery`) owns batching, backoff, splitting on 413 and dead-lettering of
points the server refuses, so every sink behaves the same under failure.

Point layout (all sinks): measurement `water_quality` or `hydrology` (from the parameter
catalogue); tags `station_id`, `district`, `basin`, `river` (from the registry) plus topic
placeholders, and `data_kind` (`minute`, `hourly`, `daily` or `lab`) on values that are not
real-time (real-time values have none); one float field per parameter code and one string field
`<code>_flag` with its HJ 212 data flag; `<code>_dl=1i` when the value is a detection limit, the
result being below it, and `<code>_tc=1i` when the time was corrected by the logger's measured
clock error (both absent otherwise: integers, so VictoriaMetrics keeps them); the reading's own
time, in ns. (measurement, tags, time) identify a point, so a replayed write overwrites instead
of duplicating. SQLite keeps the same as columns (`data_kind`, `below_dl`, `time_corrected`; see
`ingest.sinks.sqlite`), the line protocol is `ingest.sinks.line_protocol`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, ClassVar, Final, Protocol, runtime_checkable

from pydantic import Field

from ingest.model import Reading
from ingest.sinks.influxdb import InfluxDBSink, InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1Sink, InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig


class Sink(Protocol):
    name: ClassVar[str]

    def write(self, readings: Sequence[Reading]) -> None:
        """Store the readings in one request; raises `SinkError` with the retry verdict."""
        ...

    def check(self) -> None:
        """Raise `SinkError` unless the server is reachable and accepts our credentials (for /readyz)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LineProtocolSink(Sink, Protocol):
    """A sink that stores line protocol as it is: the delivery loop hands it pre-rendered lines."""

    def write_lines(self, body: bytes) -> None:
        """Store readings given as line protocol (`ingest.sinks.line_protocol`) in one request."""
        ...


SinkConfig = Annotated[
    SQLiteSinkConfig | InfluxDBSinkConfig | InfluxDB1SinkConfig, Field(discriminator="type")
]

SINKS: Final[Mapping[str, type[Sink]]] = {c.name: c for c in (SQLiteSink, InfluxDBSink, InfluxDB1Sink)}


def make_sink(config: SinkConfig) -> Sink:
    """The sink a config section describes (its `type` picks the class)."""
    if isinstance(config, SQLiteSinkConfig):
        return SQLiteSink(config)
    if isinstance(config, InfluxDBSinkConfig):
        return InfluxDBSink(config)
    return InfluxDB1Sink(config)
