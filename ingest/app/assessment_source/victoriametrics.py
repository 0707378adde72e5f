"""Results from VictoriaMetrics, which takes the `influxdb` sink's writes: `/api/v1/export` per chunk.

Through `/api/v2/write` the field `ph` of measurement `water_quality` becomes the metric
`water_quality_ph`, tags become labels, times keep milliseconds, and string fields are stored as
0: the flags do not survive, so every value reads as valid (N) and `notes` says so. A below-
detection mark written as a field `<code>_dl` (true/false) is the metric `water_quality_ph_dl`
(1/0) and is read back.

Per chunk and kind: one export of the `_dl` metrics (few series: the marked times are kept in a
set), then one of the value metrics, streamed a series (one JSON line) at a time: a series is one
station and item, so the kind preference is decided per series. Real-time values are the series
without a `data_kind` label (or labelled `realtime`). The export's `end` is inclusive and in
milliseconds: it is the chunk's end less 1 ms.

`answers_as_victoriametrics(config)` tells VictoriaMetrics from InfluxDB 2 for `influxdb_api:
auto`: InfluxDB 2's `/health` answers JSON naming itself, VictoriaMetrics' a plain `OK`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from itertools import repeat
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
from ingest.sinks.influxdb import InfluxDBSinkConfig

NS_PER_MS: Final = 1_000_000
NORMAL: Final = "N"
NO_FLAGS_NOTE: Final = (
    "VictoriaMetrics keeps no data flags (string fields are stored as 0): every value was read as "
    "valid (N), flagged ones included"
)
PROBE_TIMEOUT_SECONDS: Final = 5.0


def answers_as_victoriametrics(config: InfluxDBSinkConfig) -> bool:
    """True when the server at the sink's URL is VictoriaMetrics (False when unsure: Flux it is)."""
    pool = make_pool(config.tls)
    try:
        response = pool.request(
            "GET",
            f"{str(config.url).rstrip('/')}/health",
            timeout=PROBE_TIMEOUT_SECONDS,
            preload_content=True,
        )
    except Exception:  # down or unreachable: the first query will say so
        return False
    finally:
        pool.clear()
    return response.status == 200 and response.data.strip() == b"OK"


class VictoriaMetricsResults:
    def __init__(self, config: InfluxDBSinkConfig, *, kinds: Sequence[str], timeout: timedelta) -> None:
        self._config = config
        self.kinds = tuple(kinds)
        self._timeout = timeout.total_seconds()
        self._catalogue = default_catalogue()
        self._pool = make_pool(config.tls)
        self._url = f"{str(config.url).rstrip('/')}/api/v1/export"
        self._headers: dict[str, str] = {}
        if config.token is not None:
            self._headers["Authorization"] = f"Token {config.token.get_secret_value()}"

    @property
    def description(self) -> str:
        return f"victoriametrics {self._config.name}"

    @property
    def notes(self) -> Sequence[str]:
        return (NO_FLAGS_NOTE,)

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        groups = items_by_measurement(request.items, self._catalogue)
        chunks = request.chunks()
        with progress_bar(request, self.description, len(chunks) * len(groups)) as bar:
            for chunk in chunks:
                bar.set_postfix_str(chunk.label)
                span = (chunk.start_ns // NS_PER_MS, (chunk.end_ns - 1) // NS_PER_MS)
                for measurement, codes in groups.items():
                    served: set[tuple[str, str]] = set()
                    for kind in self.kinds:
                        yield from self._kind_rows(measurement, codes, kind, span, served)
                    bar.update(1)

    def close(self) -> None:
        self._pool.clear()

    def selector(self, measurement: str, codes: Sequence[str], kind: str, suffix: str = "") -> str:
        """The series selector of one measurement, kind and metric suffix (public for the tests)."""
        names = "|".join(re.escape(code) for code in codes)
        kind_is = f'data_kind=~"|{REALTIME}"' if kind == REALTIME else f'data_kind="{kind}"'
        return f'{{__name__=~"{re.escape(measurement)}_({names}){re.escape(suffix)}",{kind_is}}}'

    def _kind_rows(
        self,
        measurement: str,
        codes: Sequence[str],
        kind: str,
        span: tuple[int, int],
        served: set[tuple[str, str]],
    ) -> Iterator[ResultRow]:
        prefix = len(measurement) + 1
        marked: set[tuple[str, str, int]] = set()
        for series in self._export(self.selector(measurement, codes, kind, "_dl"), span):
            metric = series["metric"]
            code = metric["__name__"][prefix:-3]
            station_id = metric.get("station_id", "")
            marked.update(
                (station_id, code, t)
                for t, v in zip(series["timestamps"], series["values"], strict=True)
                if v
            )
        seen: set[tuple[str, str]] = set()
        for series in self._export(self.selector(measurement, codes, kind), span):
            metric = series["metric"]
            code, station_id = metric["__name__"][prefix:], metric.get("station_id", "")
            if not station_id or (station_id, code) in served:
                continue
            seen.add((station_id, code))
            stamps: list[int] = series["timestamps"]
            times = [t * NS_PER_MS for t in stamps]
            values = map(float, series["values"])
            if marked:
                below: Any = [(station_id, code, t) in marked for t in stamps]
            else:
                below = repeat(False)
            yield from zip(repeat(station_id), times, repeat(code), values, repeat(NORMAL), below)
        served |= seen

    def _export(self, selector: str, span: tuple[int, int]) -> Iterator[dict[str, Any]]:
        query = urlencode(
            {"match[]": selector, "start": f"{span[0] / 1000:.3f}", "end": f"{span[1] / 1000:.3f}"}
        )
        response = open_stream(
            self._pool,
            "GET",
            f"{self._url}?{query}",
            description=self.description,
            timeout=self._timeout,
            headers=self._headers,
        )
        try:
            for line in stream_lines(response):
                yield json.loads(line)
        except (ValueError, urllib3.exceptions.HTTPError) as exc:
            raise SourceError(f"{self.description}: unreadable answer: {short(exc)}") from None
        finally:
            response.release_conn()
