"""The `dashboard` section of the daemon's configuration.

Example:
    dashboard:
      enabled: true
      sink: tsdb
      stream_interval: PT2S
      max_streams: 8
      max_points: 1000
    sinks:
      - {type: influxdb, name: tsdb, url: "http://127.0.0.1:8086", org: ecowatch, bucket: water,
         token: "${INFLUXDB_TOKEN}"}
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from config.types import StrictModel


class DashboardConfig(StrictModel):
    enabled: bool = Field(True, description="Serve the operator dashboard at / on the daemon's HTTP port.")
    sink: str | None = Field(
        None,
        description="Name of the sink the charts read; the first InfluxDB 2, else InfluxDB 1.x, "
        "else SQLite sink when unset. Its credentials need read access.",
    )
    stream_interval: timedelta = Field(
        timedelta(seconds=2),
        ge=timedelta(milliseconds=100),
        le=timedelta(minutes=1),
        description="How often the live stream looks for changes (and pings when there are none).",
    )
    max_streams: int = Field(
        8,
        ge=1,
        le=256,
        description="Open live streams at most; each holds one HTTP thread. More are answered 503.",
    )
    max_points: int = Field(
        1000, ge=10, le=10_000, description="Points of a trend chart at most; longer periods are averaged."
    )
