"""One query interface for chart data: a station's series of one parameter, from the active sink.

`ReadingsQuery.series(station_id, parameter, since, until, max_points, kind=REALTIME)` answers
the points of [since, until) of one kind of value (`DataKind`: real-time by default, or the
minute, hourly, daily or lab series) oldest first as `Point(time_ns, value, flag, below_dl)`:
`below_dl` says the value is a detection limit, the result being below it (show it as `<0.01`,
never as a measurement). When the period holds more than `max_points` readings it answers time
buckets instead: buckets of one width, aligned to the epoch as InfluxDB aligns `GROUP BY time()`
and `aggregateWindow`, each the mean of its values at the bucket's start, flagged `N` when every
value in it was normal and with one of its other flags otherwise (which one, when several, is up
to the store), and `below_dl` when every value in it was below the detection limit (a mean of
limits); in a bucket of both, the limits count at their value. The width is chosen so that at
most `max_points` buckets cover the period.

Where each store keeps the mark and the kind: SQLite the columns `below_dl` and `data_kind`;
InfluxDB the integer field `<parameter>_dl` (1, absent when measured) and the tag `data_kind`
(absent for real-time values), see `ingest.sinks.line_protocol`. The time-corrected mark
(`time_corrected`, `<parameter>_tc`) is not part of a chart's points: their times are right
either way; `SQLiteSink.query` gives it on each reading.

Three stores, chosen by `make_query` from the configured sinks (InfluxDB 2 first, then InfluxDB
1.x, then SQLite, unless one is named):
- SQLite: a read-only connection of its own per query (`config.sqlite.open_database` with the
  sink's schema, `read_only=True`), so the dashboard never contends with the sink's writer lock;
  WAL lets it read the last committed batch. A file of a newer schema is an error, not misread.
- InfluxDB 2: Flux through influxdb-client's QueryApi with every value bound through `params=`
  (the client sends them as `option` statements of the query's AST, never as query text).
- InfluxDB 1.x: InfluxQL over `POST /query` with the values bound through the `params` form field
  (`$station_id`, `$since`, `$until`); identifiers (measurement and field names) cannot be bound,
  so they come only from the parameter catalogue and are quoted.
The credentials of the sink are used: on InfluxDB they need read access too (a v2 token with
read on the bucket, a 1.x user with READ on the database).

Usage:
    query = make_query(settings.effective_sinks())
    points = query.series("cq-jl-jinzi", "nh3n", since, until, max_points=1000)
    hourly = query.series("cq-jl-jinzi", "nh3n", since, until, 1000, kind=DataKind.HOURLY)
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol
from urllib.parse import urlencode

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient

from config.http import make_pool
from config.parameters import Parameter, default_catalogue
from config.sqlite import open_database
from config.times import to_ns
from config.types import TLSConfig
from ingest.model import DataKind
from ingest.sinks import SinkConfig
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig
from ingest.sinks.sqlite import SCHEMA as SQLITE_SCHEMA
from ingest.sinks.sqlite import SQLiteSinkConfig


class Point(NamedTuple):
    """One reading (or bucket) of a series: `value` is the detection limit when `below_dl`."""

    time_ns: int
    value: float
    flag: str
    below_dl: bool = False


NORMAL_FLAG: Final = "N"
_REALTIME: Final = DataKind.REALTIME.value
_NS: Final = 1_000_000_000
# Bucket widths are whole seconds: InfluxQL and Flux durations read cleanly, and no chart needs finer.
_MIN_BUCKET_NS: Final = _NS


class QueryError(RuntimeError):
    """The store could not answer (down, refused our credentials, answered nonsense)."""


class ReadingsQuery(Protocol):
    def series(
        self,
        station_id: str,
        parameter: str,
        since: datetime,
        until: datetime,
        max_points: int,
        *,
        kind: DataKind = DataKind.REALTIME,
    ) -> list[Point]:
        """Points of [since, until) of one kind, oldest first; buckets past `max_points` (module doc)."""
        ...

    def close(self) -> None:
        """Release connections (at shutdown)."""
        ...


def bucket_ns(since: datetime, until: datetime, max_points: int) -> int:
    """The bucket width that covers [since, until) with at most `max_points` epoch-aligned buckets."""
    span = _ns(until) - _ns(since)
    # Aligned buckets straddle both ends, so n buckets of width span/(n-1) are always enough.
    width = math.ceil(span / max(1, max_points - 1))
    return max(_MIN_BUCKET_NS, math.ceil(width / _NS) * _NS)


# --- SQLite -------------------------------------------------------------------------------------
_SQLITE_RAW: Final = """
SELECT time_ns, value, flag, below_dl FROM readings
WHERE station_id = ? AND parameter = ? AND data_kind = ? AND time_ns >= ? AND time_ns < ?
ORDER BY time_ns LIMIT ?
"""
_SQLITE_BUCKETS: Final = """
SELECT (time_ns / :width) * :width AS bucket, AVG(value),
       COALESCE(MAX(CASE WHEN flag <> 'N' THEN flag END), 'N'), MIN(below_dl)
FROM readings
WHERE station_id = :station AND parameter = :parameter AND data_kind = :kind
  AND time_ns >= :since AND time_ns < :until
GROUP BY bucket ORDER BY bucket
"""


class SQLiteQuery:
    def __init__(self, path: Path) -> None:
        self._path = path

    def series(
        self,
        station_id: str,
        parameter: str,
        since: datetime,
        until: datetime,
        max_points: int,
        *,
        kind: DataKind = DataKind.REALTIME,
    ) -> list[Point]:
        if not self._path.exists():
            return []  # nothing stored yet: the sink creates the file with its first batch
        try:
            connection = open_database(self._path, SQLITE_SCHEMA, busy_timeout=5.0, read_only=True)
        except sqlite3.Error as exc:
            raise QueryError(f"sqlite: {exc}") from None
        kind_value = DataKind(kind).value
        try:
            raw = connection.execute(
                _SQLITE_RAW, (station_id, parameter, kind_value, _ns(since), _ns(until), max_points + 1)
            ).fetchall()
            if len(raw) <= max_points:
                return [Point(int(t), float(v), str(f), bool(d)) for t, v, f, d in raw]
            rows = connection.execute(
                _SQLITE_BUCKETS,
                {
                    "width": bucket_ns(since, until, max_points),
                    "station": station_id,
                    "parameter": parameter,
                    "kind": kind_value,
                    "since": _ns(since),
                    "until": _ns(until),
                },
            ).fetchall()
            return [Point(int(t), float(v), str(f), bool(d)) for t, v, f, d in rows]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise QueryError(f"sqlite: {exc}") from None
        except sqlite3.Error as exc:
            raise QueryError(f"sqlite: {exc}") from None
        finally:
            connection.close()

    def close(self) -> None:
        pass  # a connection per query: nothing held


# --- InfluxDB 2 (Flux) --------------------------------------------------------------------------
# Every value arrives as an `option` of the query's AST (influxdb-client's `params=`).
# Real-time values carry no data_kind tag (so their series are what they were before kinds).
FLUX_RAW: Final = """
from(bucket: bucketName)
  |> range(start: rangeStart, stop: rangeStop)
  |> filter(fn: (r) => r._measurement == measurementName and r.station_id == stationId)
  |> filter(fn: (r) => if dataKind == "realtime" then not exists r.data_kind else r.data_kind == dataKind)
  |> filter(fn: (r) => r._field == fieldName or r._field == flagFieldName or r._field == dlFieldName)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["_time"])
  |> limit(n: rowLimit)
"""
FLUX_BUCKETS: Final = """
data = from(bucket: bucketName)
  |> range(start: rangeStart, stop: rangeStop)
  |> filter(fn: (r) => r._measurement == measurementName and r.station_id == stationId)
  |> filter(fn: (r) => if dataKind == "realtime" then not exists r.data_kind else r.data_kind == dataKind)
values = data
  |> filter(fn: (r) => r._field == fieldName)
  |> group()
values
  |> aggregateWindow(every: windowEvery, fn: mean, createEmpty: false, timeSrc: "_start")
  |> yield(name: "values")
values
  |> aggregateWindow(every: windowEvery, fn: count, createEmpty: false, timeSrc: "_start")
  |> yield(name: "counts")
data
  |> filter(fn: (r) => r._field == dlFieldName)
  |> group()
  |> aggregateWindow(every: windowEvery, fn: sum, createEmpty: false, timeSrc: "_start")
  |> yield(name: "dls")
data
  |> filter(fn: (r) => r._field == flagFieldName and r._value != "N")
  |> group()
  |> aggregateWindow(every: windowEvery, fn: first, createEmpty: false, timeSrc: "_start")
  |> yield(name: "flags")
"""


class InfluxDBQuery:
    def __init__(self, config: InfluxDBSinkConfig, catalogue: Mapping[str, Parameter] | None = None) -> None:
        self._config = config
        self._catalogue = catalogue or default_catalogue()
        tls = config.tls or TLSConfig()
        self._client: Any = InfluxDBClient(
            url=str(config.url).rstrip("/"),
            token=config.token.get_secret_value() if config.token is not None else "",
            org=config.org,
            timeout=max(1, round(config.timeout.total_seconds() * 1000)),
            verify_ssl=not tls.insecure_skip_verify,
            ssl_ca_cert=str(tls.ca_file) if tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls.cert_file else None,
            cert_key_file=str(tls.key_file) if tls.key_file else None,
            retries=False,
        )
        self._query_api: Any = self._client.query_api()

    def series(
        self,
        station_id: str,
        parameter: str,
        since: datetime,
        until: datetime,
        max_points: int,
        *,
        kind: DataKind = DataKind.REALTIME,
    ) -> list[Point]:
        params = self.params(station_id, parameter, since, until, kind)
        rows = self._run(FLUX_RAW, {**params, "rowLimit": max_points + 1})
        points: list[Point] = []
        for table in rows:
            for record in table.records:
                value = record.values.get(parameter)
                if value is not None:
                    flag = record.values.get(f"{parameter}_flag") or NORMAL_FLAG
                    below_dl = bool(record.values.get(f"{parameter}_dl"))
                    points.append(Point(_ns(record.get_time()), float(value), str(flag), below_dl))
        if len(points) <= max_points:
            return points
        every = timedelta(microseconds=bucket_ns(since, until, max_points) // 1000)
        results: dict[str, dict[int, Any]] = {"values": {}, "counts": {}, "dls": {}, "flags": {}}
        for table in self._run(FLUX_BUCKETS, {**params, "windowEvery": every}):
            for record in table.records:
                result = results.get(str(record.values.get("result")))
                if result is not None and record.get_value() is not None:
                    result[_ns(record.get_time())] = record.get_value()
        counts, dls, flags = results["counts"], results["dls"], results["flags"]
        return [
            Point(at, float(value), str(flags.get(at, NORMAL_FLAG)), _all_below(dls.get(at), counts.get(at)))
            for at, value in sorted(results["values"].items())
        ]

    def params(
        self,
        station_id: str,
        parameter: str,
        since: datetime,
        until: datetime,
        kind: DataKind = DataKind.REALTIME,
    ) -> dict[str, Any]:
        """The bound values of both queries (public for the tests of the binding)."""
        return {
            "bucketName": self._config.bucket,
            "measurementName": _parameter(self._catalogue, parameter).measurement,
            "stationId": station_id,
            "dataKind": DataKind(kind).value,
            "fieldName": parameter,
            "flagFieldName": f"{parameter}_flag",
            "dlFieldName": f"{parameter}_dl",
            "rangeStart": since.astimezone(UTC),
            "rangeStop": until.astimezone(UTC),
        }

    def close(self) -> None:
        self._client.close()

    def _run(self, flux: str, params: dict[str, Any]) -> Any:
        try:
            return self._query_api.query(flux, org=self._config.org, params=params)
        except Exception as exc:  # ApiException, urllib3 and socket errors alike
            raise QueryError(f"influxdb: {type(exc).__name__}: {_short(exc)}") from None


# --- InfluxDB 1.x (InfluxQL) --------------------------------------------------------------------
class InfluxDB1Query:
    def __init__(self, config: InfluxDB1SinkConfig, catalogue: Mapping[str, Parameter] | None = None) -> None:
        self._config = config
        self._catalogue = catalogue or default_catalogue()
        self._pool = make_pool(config.tls)
        self._url = f"{str(config.url).rstrip('/')}/query"
        self._headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if config.username is not None and config.password is not None:
            credentials = f"{config.username}:{config.password.get_secret_value()}"
            self._headers.update(urllib3.make_headers(basic_auth=credentials))

    def series(
        self,
        station_id: str,
        parameter: str,
        since: datetime,
        until: datetime,
        max_points: int,
        *,
        kind: DataKind = DataKind.REALTIME,
    ) -> list[Point]:
        source = self._source(parameter)
        field, flag = _quote_ident(parameter), _quote_ident(f"{parameter}_flag")
        dl = _quote_ident(f"{parameter}_dl")
        # A missing tag compares equal to '' in InfluxQL: real-time values have no data_kind tag.
        where = "station_id = $station_id AND data_kind = $data_kind AND time >= $since AND time < $until"
        kind_value = DataKind(kind).value
        bound: dict[str, str | int] = {
            "station_id": station_id,
            "data_kind": "" if kind_value == _REALTIME else kind_value,
            "since": _ns(since),
            "until": _ns(until),
        }
        raw = self._query(
            f"SELECT {field}, {flag}, {dl} FROM {source} WHERE {where}"  # noqa: S608 - quoted catalogue names; values bound
            f" ORDER BY time ASC LIMIT {max_points + 1}",
            bound,
        )
        points = [
            Point(int(t), float(v), str(f or NORMAL_FLAG), bool(d)) for t, v, f, d in raw if v is not None
        ]
        if len(points) <= max_points:
            return points
        # A whole number of seconds computed here, never input: safe to write into the statement.
        every = f"{bucket_ns(since, until, max_points) // _NS}s"
        means = self._query(
            f"SELECT mean({field}), count({field}), sum({dl}) FROM {source} WHERE {where}"  # noqa: S608 - as above
            f" GROUP BY time({every}) fill(none)",
            bound,
        )
        flagged = self._query(
            f"SELECT first({flag}) FROM {source} WHERE {where} AND {flag} <> $normal"  # noqa: S608 - as above
            f" GROUP BY time({every}) fill(none)",
            {**bound, "normal": NORMAL_FLAG},
        )
        flags = {int(t): str(f) for t, f in flagged if f is not None}
        return [
            Point(int(t), float(v), flags.get(int(t), NORMAL_FLAG), _all_below(d, n))
            for t, v, n, d in means
            if v is not None
        ]

    def close(self) -> None:
        self._pool.clear()

    def _source(self, parameter: str) -> str:
        measurement = _quote_ident(_parameter(self._catalogue, parameter).measurement)
        policy = self._config.retention_policy
        return f"{_quote_ident(policy)}.{measurement}" if policy else measurement

    def _query(self, statement: str, params: Mapping[str, str | int]) -> list[list[Any]]:
        form = {
            "db": self._config.database,
            "q": statement,
            "params": json.dumps(params),
            "epoch": "ns",
        }
        try:
            response = self._pool.request(
                "POST",
                self._url,
                body=urlencode(form).encode(),
                headers=self._headers,
                timeout=urllib3.Timeout(total=self._config.timeout.total_seconds()),
            )
        except Exception as exc:  # urllib3 and socket errors alike
            raise QueryError(f"influxdb1: {type(exc).__name__}: {_short(exc)}") from None
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = {}
        if response.status != 200:
            raise QueryError(f"influxdb1: HTTP {response.status}: {_short(answer.get('error', ''))}")
        try:
            result = answer["results"][0]
            if "error" in result:
                raise QueryError(f"influxdb1: {_short(result['error'])}")
            return [row for series in result.get("series", []) for row in series["values"]]
        except (KeyError, IndexError, TypeError):
            raise QueryError("influxdb1: the answer holds no results") from None


# --- choosing -----------------------------------------------------------------------------------
def make_query(sinks: Sequence[SinkConfig], name: str | None = None) -> ReadingsQuery:
    """The query of the sink called `name`, else of the first InfluxDB 2, InfluxDB 1.x, SQLite sink."""
    if name is not None:
        chosen = [c for c in sinks if c.name == name]
        if not chosen:
            raise ValueError(f"no sink named {name!r} to read chart data from")
    else:
        order = (InfluxDBSinkConfig, InfluxDB1SinkConfig, SQLiteSinkConfig)
        chosen = sorted(sinks, key=lambda c: next(i for i, kind in enumerate(order) if isinstance(c, kind)))
    if not chosen:
        raise ValueError("no sink configured to read chart data from")
    config = chosen[0]
    if isinstance(config, InfluxDBSinkConfig):
        return InfluxDBQuery(config)
    if isinstance(config, InfluxDB1SinkConfig):
        return InfluxDB1Query(config)
    return SQLiteQuery(config.path)


def _all_below(below_dl: object, count: object) -> bool:
    """Every value of a bucket was below the detection limit: as many `_dl` marks as values."""
    return isinstance(below_dl, int | float) and isinstance(count, int | float) and 0 < count <= below_dl


def _parameter(catalogue: Mapping[str, Parameter], code: str) -> Parameter:
    try:
        return catalogue[code]
    except KeyError:
        raise ValueError(f"unknown parameter {code!r}") from None


def _quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return to_ns(moment)


def _short(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
