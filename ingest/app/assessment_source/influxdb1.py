"""Results from InfluxDB 1.x: InfluxQL over `POST /query`, one statement per chunk, measurement and kind.

    SELECT "ph", "ph_flag", "ph_dl", "do", ... FROM "water_quality"
    WHERE time >= $since AND time < $until AND ("data_kind" = '' OR "data_kind" = $kind)
    GROUP BY "station_id"

All the request's items of a measurement come in one statement, one row per station and time with
a value, flag and below-detection column per item, grouped by station. Only the fields the
measurement has are selected (`SHOW FIELD KEYS`, once per read: a database without
below-detection marks sends no column of nulls). Values are bound through the `params` form
field; identifiers (measurement, field names) come only from the parameter catalogue and are
quoted, as in `ingest.app.query`. Answers are asked `chunked` and read line by line, so a month of
the national network never sits in memory. Real-time values are the series without a `data_kind`
tag (or tagged `realtime`); each other kind is its own statement, read after the kinds preferred
to it, and a (station, item) already served in the chunk by a preferred kind is skipped. Without
a `data_kind` tag key (`SHOW TAG KEYS`) only the real-time statement runs, with no kind condition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from alerts.assessment_method.source import REALTIME, ResultRow, ResultsRequest, SourceError
from config.http import make_pool
from config.parameters import default_catalogue
from ingest.app.assessment_source.common import (
    items_by_measurement,
    open_stream,
    progress_bar,
    short,
    stream_lines,
)
from ingest.sinks.influxdb1 import InfluxDB1SinkConfig

# Rows per chunk of a chunked answer: a few MB of JSON per line.
CHUNK_ROWS: Final = 10_000
NORMAL: Final = "N"


class InfluxQLResults:
    def __init__(self, config: InfluxDB1SinkConfig, *, kinds: Sequence[str], timeout: timedelta) -> None:
        self._config = config
        self.kinds = tuple(kinds)
        self._timeout = timeout.total_seconds()
        self._catalogue = default_catalogue()
        self._pool = make_pool(config.tls)
        self._url = f"{str(config.url).rstrip('/')}/query"
        self._headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if config.username is not None and config.password is not None:
            credentials = f"{config.username}:{config.password.get_secret_value()}"
            self._headers.update(urllib3.make_headers(basic_auth=credentials))

    @property
    def description(self) -> str:
        return f"influxdb1 {self._config.name} ({self._config.database})"

    @property
    def notes(self) -> Sequence[str]:
        return ()

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        groups = items_by_measurement(request.items, self._catalogue)
        layouts = {m: self._layout(m, codes) for m, codes in groups.items()}
        chunks = request.chunks()
        with progress_bar(request, f"influxdb1 {self._config.database}", len(chunks) * len(groups)) as bar:
            for chunk in chunks:
                bar.set_postfix_str(chunk.label)
                for measurement, (fields, kinds) in layouts.items():
                    bound = {"since": chunk.start_ns, "until": chunk.end_ns}
                    served: set[tuple[str, str]] = set()  # (station, item) with a preferred kind
                    for kind in kinds if fields else []:
                        yield from self._kind_rows(measurement, fields, kind, bound, served)
                    bar.update(1)

    def close(self) -> None:
        self._pool.clear()

    def statement(self, measurement: str, fields: Sequence[str], kind: str | None) -> str:
        """The InfluxQL of one measurement and kind; None: no kinds stored (public for the tests)."""
        selected = ", ".join(_ident(field) for field in fields)
        where = "time >= $since AND time < $until"
        if kind == REALTIME:
            where += """ AND ("data_kind" = '' OR "data_kind" = $kind)"""
        elif kind is not None:
            where += ' AND "data_kind" = $kind'
        return f'SELECT {selected} FROM {self._source(measurement)} WHERE {where} GROUP BY "station_id"'  # noqa: S608 - quoted catalogue names; values bound

    def _layout(self, measurement: str, codes: Sequence[str]) -> tuple[list[str], list[str | None]]:
        """The fields of `codes` the measurement has, and the kinds to read (None: untagged only)."""
        source = self._source(measurement)
        have = {
            row[0]
            for series in self._series(f"SHOW FIELD KEYS FROM {source}", {})
            for row in series["values"]
        }
        fields = [
            f"{c}{end}" for c in codes if c in have for end in ("", "_flag", "_dl") if f"{c}{end}" in have
        ]
        tags = {
            row[0] for series in self._series(f"SHOW TAG KEYS FROM {source}", {}) for row in series["values"]
        }
        if "data_kind" in tags:
            return fields, list(self.kinds)
        return fields, [None] if REALTIME in self.kinds else []

    def _source(self, measurement: str) -> str:
        policy = self._config.retention_policy
        return f"{_ident(policy)}.{_ident(measurement)}" if policy else _ident(measurement)

    def _kind_rows(
        self,
        measurement: str,
        fields: Sequence[str],
        kind: str | None,
        bound: dict[str, int],
        served: set[tuple[str, str]],
    ) -> Iterator[ResultRow]:
        """The rows of one kind but those of (station, item) pairs in `served`; adds the pairs it yields.

        A station's series may come in several parts (chunked answers): `served` grows only once
        the whole kind is read.
        """
        statement = self.statement(measurement, fields, kind)
        codes = [field for field in fields if not field.endswith(("_flag", "_dl"))]
        seen: set[tuple[str, str]] = set()
        for series in self._series(statement, bound if kind is None else {**bound, "kind": kind}):
            station_id = (series.get("tags") or {}).get("station_id", "")
            if not station_id:
                continue
            index = {name: i for i, name in enumerate(series["columns"])}
            layout = [
                (c, index[c], index.get(f"{c}_flag"), index.get(f"{c}_dl"))
                for c in codes
                if c in index and (station_id, c) not in served
            ]
            values = series["values"]
            seen.update(
                (station_id, c) for c, at, _, _ in layout if any(row[at] is not None for row in values)
            )
            for row in values:
                t = row[0]
                for code, at, flag_at, dl_at in layout:
                    value = row[at]
                    if value is None:
                        continue
                    flag = (row[flag_at] if flag_at is not None else None) or NORMAL
                    below = bool(row[dl_at]) if dl_at is not None else False
                    yield (station_id, t, code, float(value), str(flag), below)
        served |= seen

    def _series(self, statement: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        form = {
            "db": self._config.database,
            "q": statement,
            "params": json.dumps(params),
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": str(CHUNK_ROWS),
        }
        response = open_stream(
            self._pool,
            "POST",
            self._url,
            description=self.description,
            timeout=self._timeout,
            headers=self._headers,
            body=urlencode(form).encode(),
            error_text=_error,
        )
        try:
            for line in stream_lines(response):
                answer = json.loads(line)
                if "error" in answer:
                    raise SourceError(f"{self.description}: {short(answer['error'])}")
                for result in answer.get("results", []):
                    if "error" in result:
                        raise SourceError(f"{self.description}: {short(result['error'])}")
                    yield from result.get("series", [])
        except (ValueError, KeyError, TypeError, urllib3.exceptions.HTTPError) as exc:
            raise SourceError(f"{self.description}: unreadable answer: {short(exc)}") from None
        finally:
            response.release_conn()


def _error(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200]))
    except ValueError:
        return body[:200].decode(errors="replace")


def _ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
