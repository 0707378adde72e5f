"""Results for the assessment from the daemon's store: the readers behind `ecowatch report --config`,
the assessment API's on-demand periods and the daily assessment.

It lives in the composition root because it joins the pipeline's stores (the sinks' schemas) and
the alert side's method (`alerts.assessment_method.source`: the request, its chunks, the result
tuples). One reader per store, each streaming a request chunk by chunk (a month at a time) with
bulk queries, never one query per station:

    sqlite.py            the SQLite sink's readings.db (read-only), stations x items joined on
                         the primary key, the data kinds chosen in SQL
    influxdb1.py         InfluxDB 1.x: InfluxQL over /query, chunked answers, bound values
    flux.py              InfluxDB 2: Flux through influxdb-client, the annotated CSV streamed
    victoriametrics.py   VictoriaMetrics (written through the `influxdb` sink's /api/v2/write):
                         /api/v1/export, one JSON line per series

`make_source(config, sinks)` picks the sink `assessment.sink` names, else the first InfluxDB 2,
InfluxDB 1.x, SQLite sink (as the dashboard does). An `influxdb` sink is read with Flux, or with
VictoriaMetrics' export API when that is what answers (`influxdb_api: auto` asks the server's
/health once). What each store keeps: values and HJ 212 flags (`<code>_flag`), the below-detection
mark where the sinks write one (field `<code>_dl`, column `below_dl`; absent: every value is a
measurement) and the `data_kind` tag of values that are not real-time (absent: real-time). The
time-corrected mark (field `<code>_tc`, column `time_corrected`) is not read: a corrected time is
the right time, and the assessment takes the value at it like any other.
VictoriaMetrics stores string fields as 0, so it keeps no flags: its reader reads every value as
valid (N) and says so in its `notes`, which `ecowatch report` prints.

Example:
    assessment:
      rules: /etc/ecowatch/assessment.yaml
      sink: tsdb
      data_kinds: [realtime, hourly, lab]
      keep_days: 800
    sinks:
      - {type: influxdb, name: tsdb, url: "http://127.0.0.1:8086", org: ecowatch, bucket: water,
         token: "${INFLUXDB_TOKEN}"}
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from alerts.assessment_method.report_cli import StoreConfigError
from alerts.assessment_method.source import (
    DEFAULT_KINDS,
    ResultRow,
    ResultsRequest,
    ResultsSource,
)
from config.types import StrictModel
from ingest.app.assessment_source.flux import FluxResults
from ingest.app.assessment_source.influxdb1 import InfluxQLResults
from ingest.app.assessment_source.sqlite import SQLiteResults
from ingest.app.assessment_source.victoriametrics import VictoriaMetricsResults, answers_as_victoriametrics
from ingest.sinks import SinkConfig
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSinkConfig

__all__ = ["AssessmentConfig", "ProbedResults", "assessment_config", "make_source"]


class AssessmentConfig(StrictModel):
    """The `assessment` section: the method's rules, and where periods are read from."""

    rules: Path | None = Field(
        None,
        description="Assessment rules file (as config/standards/assessment.yaml); the shipped ones if unset.",
    )
    sink: str | None = Field(
        None,
        description="Sink whose store reports and the assessment API read; the first InfluxDB 2, else "
        "InfluxDB 1.x, else SQLite sink when unset. Its credentials need read access.",
    )
    data_kinds: tuple[str, ...] = Field(
        DEFAULT_KINDS,
        min_length=1,
        description="Kinds of values read (the `data_kind` tag; untagged values are realtime), in order of "
        "preference: per station, item and month only the first kind present is used.",
    )
    influxdb_api: Literal["auto", "flux", "victoriametrics"] = Field(
        "auto",
        description="How an `influxdb` sink's store is read: Flux (InfluxDB 2) or VictoriaMetrics' export "
        "API; auto asks the server's /health once.",
    )
    query_timeout: timedelta = Field(
        timedelta(minutes=5), gt=timedelta(0), description="Limit on one bulk query of a month's results."
    )
    keep_days: int = Field(
        800,
        ge=31,
        description="Days of daily values the alert database keeps for periods (two years and more: an "
        "annual report compares with the year before).",
    )

    @field_validator("data_kinds")
    @classmethod
    def _plain_names(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        for kind in kinds:
            if not kind.isascii() or not kind.replace("_", "").isalnum():
                raise ValueError(f"{kind!r}: a kind is letters, digits and _")
        if len(set(kinds)) != len(kinds):
            raise ValueError("a kind is listed twice")
        return kinds


def assessment_config(settings: Any) -> AssessmentConfig:
    """The settings' `assessment` section, or the defaults while the root settings lack one."""
    section = getattr(settings, "assessment", None)
    return section if isinstance(section, AssessmentConfig) else AssessmentConfig()


def make_source(config: AssessmentConfig, sinks: Sequence[SinkConfig]) -> ResultsSource:
    """The reader of the sink `config.sink` names, else of the first InfluxDB 2, InfluxDB 1.x, SQLite sink."""
    if config.sink is not None:
        chosen = [c for c in sinks if c.name == config.sink]
        if not chosen:
            raise StoreConfigError(f"assessment.sink {config.sink!r} names no configured sink")
    else:
        order = (InfluxDBSinkConfig, InfluxDB1SinkConfig, SQLiteSinkConfig)
        chosen = sorted(sinks, key=lambda c: next(i for i, kind in enumerate(order) if isinstance(c, kind)))
    if not chosen:
        raise StoreConfigError("no sink configured to read results from")
    sink = chosen[0]
    kinds, timeout = config.data_kinds, config.query_timeout
    if isinstance(sink, InfluxDBSinkConfig):
        if config.influxdb_api == "victoriametrics":
            return VictoriaMetricsResults(sink, kinds=kinds, timeout=timeout)
        if config.influxdb_api == "flux":
            return FluxResults(sink, kinds=kinds, timeout=timeout)
        return ProbedResults(sink, kinds=kinds, timeout=timeout)
    if isinstance(sink, InfluxDB1SinkConfig):
        return InfluxQLResults(sink, kinds=kinds, timeout=timeout)
    return SQLiteResults(sink.path, kinds=kinds)


class ProbedResults:
    """An `influxdb` sink's store, read with VictoriaMetrics' API if that answers, else Flux.

    The server is asked once, at the first read (so a daemon starts while its database is down).
    """

    def __init__(self, sink: InfluxDBSinkConfig, *, kinds: Sequence[str], timeout: timedelta) -> None:
        self._sink, self._kinds, self._timeout = sink, tuple(kinds), timeout
        self._reader: ResultsSource | None = None
        self._lock = threading.Lock()  # the daily job and the API may read at once

    @property
    def description(self) -> str:
        return f"influxdb {self._sink.name}" if self._reader is None else self._reader.description

    @property
    def notes(self) -> Sequence[str]:
        return () if self._reader is None else self._reader.notes

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        with self._lock:
            if self._reader is None:
                if answers_as_victoriametrics(self._sink):
                    self._reader = VictoriaMetricsResults(
                        self._sink, kinds=self._kinds, timeout=self._timeout
                    )
                else:
                    self._reader = FluxResults(self._sink, kinds=self._kinds, timeout=self._timeout)
            reader = self._reader
        return reader.results(request)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
