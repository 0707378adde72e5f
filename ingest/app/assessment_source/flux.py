"""Results from InfluxDB 2: one Flux query per chunk, measurement and kind, the annotated CSV streamed.

    from(bucket: bucketName)
      |> range(start: rangeStart, stop: rangeStop)
      |> filter(fn: (r) => r._measurement == measurementName)
      |> filter(fn: (r) => contains(value: r._field, set: fieldNames))
      |> filter(fn: (r) => <r.data_kind is kindName; no data_kind for realtime>)
      |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")

Every value is bound through influxdb-client's `params=` (sent as `option` statements of the
query's AST, never as query text). The pivot keeps each series apart (a table per station and
tags), with a column per field: `<code>`, `<code>_flag`, `<code>_dl` where stored. The answer is
read as CSV rows as it arrives (`query_csv`), not as the client's record objects, which cost
more than the assessment itself at this size. Kinds are read in order of preference; a (station,
item) served by a preferred kind in the chunk is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from influxdb_client.client.influxdb_client import InfluxDBClient

from alerts.assessment_method.source import ResultRow, ResultsRequest, SourceError
from config.parameters import default_catalogue
from config.times import NS_PER_SECOND, to_ns
from config.types import TLSConfig
from ingest.app.assessment_source.common import items_by_measurement, progress_bar, short
from ingest.sinks.influxdb import InfluxDBSinkConfig

FLUX: Final = """
from(bucket: bucketName)
  |> range(start: rangeStart, stop: rangeStop)
  |> filter(fn: (r) => r._measurement == measurementName)
  |> filter(fn: (r) => contains(value: r._field, set: fieldNames))
  |> filter(fn: (r) => if kindName == "realtime"
      then not exists r.data_kind or r.data_kind == "" or r.data_kind == "realtime"
      else exists r.data_kind and r.data_kind == kindName)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
"""
NORMAL: Final = "N"
# Distinct time stamps remembered while parsing: a year of 4-hourly results has 2 190.
_TIME_CACHE: Final = 100_000


class FluxResults:
    def __init__(self, config: InfluxDBSinkConfig, *, kinds: Sequence[str], timeout: timedelta) -> None:
        self._config = config
        self.kinds = tuple(kinds)
        self._catalogue = default_catalogue()
        tls = config.tls or TLSConfig()
        self._client: Any = InfluxDBClient(
            url=str(config.url).rstrip("/"),
            token=config.token.get_secret_value() if config.token is not None else "",
            org=config.org,
            timeout=max(1, round(timeout.total_seconds() * 1000)),
            verify_ssl=not tls.insecure_skip_verify,
            ssl_ca_cert=str(tls.ca_file) if tls.ca_file else None,
            cert_file=str(tls.cert_file) if tls.cert_file else None,
            cert_key_file=str(tls.key_file) if tls.key_file else None,
            retries=False,
        )
        self._query_api: Any = self._client.query_api()
        self._times: dict[str, int] = {}

    @property
    def description(self) -> str:
        return f"influxdb {self._config.name} ({self._config.bucket})"

    @property
    def notes(self) -> Sequence[str]:
        return ()

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        groups = items_by_measurement(request.items, self._catalogue)
        chunks = request.chunks()
        with progress_bar(request, f"influxdb {self._config.bucket}", len(chunks) * len(groups)) as bar:
            for chunk in chunks:
                bar.set_postfix_str(chunk.label)
                for measurement, codes in groups.items():
                    served: set[tuple[str, str]] = set()
                    for kind in self.kinds:
                        params = self.params(measurement, codes, kind, chunk.start_ns, chunk.end_ns)
                        yield from self._kind_rows(params, codes, served)
                    bar.update(1)

    def close(self) -> None:
        self._client.close()

    def params(
        self, measurement: str, codes: Sequence[str], kind: str, since_ns: int, until_ns: int
    ) -> dict[str, Any]:
        """The bound values of one query (public for the tests of the binding)."""
        return {
            "bucketName": self._config.bucket,
            "measurementName": measurement,
            "fieldNames": [f"{code}{suffix}" for code in codes for suffix in ("", "_flag", "_dl")],
            "kindName": kind,
            "rangeStart": _datetime(since_ns),
            "rangeStop": _datetime(until_ns),
        }

    def _kind_rows(
        self, params: dict[str, Any], codes: Sequence[str], served: set[tuple[str, str]]
    ) -> Iterator[ResultRow]:
        seen: set[tuple[str, str]] = set()
        layout: list[tuple[str, int, int | None, int | None]] = []
        header: dict[str, int] = {}
        table: str | None = None
        station_id = ""
        time_at = station_at = table_at = -1
        for row in self._rows(params):
            if row[0].startswith("#"):
                continue
            if len(row) > 2 and row[1] == "result" and row[2] == "table":
                header = {name: i for i, name in enumerate(row)}
                time_at, station_at = header.get("_time", -1), header.get("station_id", -1)
                table_at, table = header["table"], None
                continue
            if time_at < 0 or station_at < 0:
                continue
            if row[table_at] != table:
                table, station_id = row[table_at], row[station_at]
                layout = [
                    (c, header[c], header.get(f"{c}_flag"), header.get(f"{c}_dl"))
                    for c in codes
                    if c in header and (station_id, c) not in served
                ]
            if not station_id:
                continue
            t = self._time_ns(row[time_at])
            for code, at, flag_at, dl_at in layout:
                text = row[at]
                if not text:
                    continue
                flag = (row[flag_at] if flag_at is not None else "") or NORMAL
                below = dl_at is not None and row[dl_at] in ("true", "1")
                seen.add((station_id, code))
                yield (station_id, t, code, float(text), flag, below)
        served |= seen

    def _rows(self, params: dict[str, Any]) -> Iterator[list[str]]:
        try:
            yield from self._query_api.query_csv(FLUX, org=self._config.org, params=params)
        except Exception as exc:  # ApiException, urllib3 and socket errors alike
            raise SourceError(f"{self.description}: {type(exc).__name__}: {short(exc)}") from None

    def _time_ns(self, text: str) -> int:
        value = self._times.get(text)
        if value is None:
            if len(self._times) >= _TIME_CACHE:
                self._times.clear()
            value = self._times[text] = rfc3339_ns(text)
        return value


def rfc3339_ns(text: str) -> int:
    """`2026-11-01T00:00:00.123456789Z` as ns since the epoch (nine fraction digits kept)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = to_ns(datetime.fromisoformat(whole).replace(tzinfo=UTC))
    return seconds + (int(fraction.ljust(9, "0")[:9]) if fraction else 0)


def _datetime(value_ns: int) -> datetime:
    return datetime.fromtimestamp(value_ns // NS_PER_SECOND, UTC) + timedelta(
        microseconds=value_ns % NS_PER_SECOND // 1000
    )
