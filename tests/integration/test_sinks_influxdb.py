"""The `influxdb` sink against a real VictoriaMetrics through its InfluxDB 2 write API (`/api/v2/write`)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.errors import SinkError
from ingest.model import DataFlag, Reading
from ingest.sinks.influxdb import InfluxDBSink, InfluxDBSinkConfig
from tests.servers import VictoriaMetricsServer

pytestmark = pytest.mark.integration

# VictoriaMetrics keeps milliseconds: times in these tests are whole milliseconds.
T0_MS = 1_795_600_000_000
T0 = T0_MS * 1_000_000
MINUTE = 60_000_000_000
TOKEN = "influx-token-that-must-not-leak"


def reading(
    station_id: str = "cq-cj-cuntan",
    parameter: str = "ph",
    value: float = 7.6,
    minute: int = 0,
    tags: tuple[tuple[str, str], ...] | None = None,
) -> Reading:
    return Reading(
        station_id=station_id,
        measurement="hydrology" if parameter == "level" else "water_quality",
        parameter=parameter,
        value=value,
        unit="",
        time_ns=T0 + minute * MINUTE,
        flag=DataFlag.NORMAL,
        tags=tags
        if tags is not None
        else (("basin", "长江"), ("district", "渝中区"), ("station_id", station_id)),
    )


def config(url: str, **overrides: Any) -> InfluxDBSinkConfig:
    return InfluxDBSinkConfig.model_validate(
        {"name": "tsdb", "url": url, "org": "ecowatch", "bucket": "water", "token": TOKEN} | overrides
    )


@pytest.fixture
def sink(victoria_metrics: VictoriaMetricsServer) -> Iterator[InfluxDBSink]:
    sink = InfluxDBSink(config(victoria_metrics.url))
    yield sink
    sink.close()


def test_readings_become_metrics_with_labels_values_and_times(
    sink: InfluxDBSink, victoria_metrics: VictoriaMetricsServer
) -> None:
    """Field `ph` of `water_quality` is stored as `water_quality_ph`, tags as labels, at the reading time."""
    sink.write(
        [
            reading(value=7.6),
            reading(parameter="do", value=8.25),
            reading(value=7.7, minute=1),
            reading(station_id="cq-jlj-beiwenquan", value=6.9),
            reading(parameter="level", value=3.5),
        ]
    )

    series = victoria_metrics.export('{__name__=~"(water_quality|hydrology)_(ph|do|level)"}', min_series=4)

    stored = {
        (s["metric"]["__name__"], s["metric"]["station_id"]): list(
            zip(s["timestamps"], s["values"], strict=True)
        )
        for s in series
    }
    assert stored == {
        ("water_quality_ph", "cq-cj-cuntan"): [(T0_MS, 7.6), (T0_MS + 60_000, 7.7)],
        ("water_quality_do", "cq-cj-cuntan"): [(T0_MS, 8.25)],
        ("water_quality_ph", "cq-jlj-beiwenquan"): [(T0_MS, 6.9)],
        ("hydrology_level", "cq-cj-cuntan"): [(T0_MS, 3.5)],
    }
    for s in series:
        labels = {k: v for k, v in s["metric"].items() if k not in ("__name__", "station_id")}
        assert labels == {"basin": "长江", "district": "渝中区"}


def test_flags_arrive_as_their_own_metric(
    sink: InfluxDBSink, victoria_metrics: VictoriaMetricsServer
) -> None:
    """The flag field arrives as the metric `<measurement>_<parameter>_flag` (its text is stored as 0)."""
    sink.write([reading()])

    series = victoria_metrics.export('{__name__="water_quality_ph_flag"}')

    assert [(s["timestamps"], s["values"]) for s in series] == [([T0_MS], [0])]


def test_writing_a_batch_twice_stores_each_sample_once(
    sink: InfluxDBSink, victoria_metrics: VictoriaMetricsServer
) -> None:
    """A replayed batch overwrites: every series holds one sample per time, not two."""
    batch = [reading(parameter=p, minute=m) for p in ("ph", "do") for m in range(5)]

    sink.write(batch)
    sink.write(batch)

    series = victoria_metrics.export('{__name__=~"water_quality_(ph|do)"}', min_series=2)
    assert sorted(s["metric"]["__name__"] for s in series) == ["water_quality_do", "water_quality_ph"]
    assert all(s["timestamps"] == [T0_MS + m * 60_000 for m in range(5)] for s in series)


@pytest.mark.parametrize("gzip_body", [False, True])
def test_tag_values_with_special_characters_arrive_unchanged(
    victoria_metrics: VictoriaMetricsServer, gzip_body: bool
) -> None:
    """Spaces, commas, equals signs, quotes, backslashes and CJK in tag values reach the labels intact."""
    values = [
        "a b",
        "a,b",
        "a=b",
        'say "hi"',
        "back\\slash",
        "trailing\\",
        "=,\\ ",
        " lead",
        "长江 · 嘉陵江",
        "🌊",
    ]
    sink = InfluxDBSink(config(victoria_metrics.url, gzip=gzip_body))
    try:
        sink.write([reading(tags=(("river", v), ("station_id", f"s{i}"))) for i, v in enumerate(values)])
    finally:
        sink.close()

    series = victoria_metrics.export('{__name__="water_quality_ph"}', min_series=len(values))

    assert {s["metric"]["station_id"]: s["metric"]["river"] for s in series} == {
        f"s{i}": v for i, v in enumerate(values)
    }


def test_check_passes_against_a_running_server(sink: InfluxDBSink) -> None:
    """The ping and the empty probe write both succeed on a healthy server."""
    sink.check()


def test_check_fails_fast_on_a_closed_port(closed_port: int) -> None:
    """With nothing listening, check() fails at once with a retryable connection error, no token in it."""
    sink = InfluxDBSink(config(f"http://127.0.0.1:{closed_port}", timeout="PT30S"))
    started = time.monotonic()

    with pytest.raises(SinkError) as caught:
        sink.check()

    assert time.monotonic() - started < 1.0
    assert (caught.value.reason, caught.value.retryable) == ("connection_failed", True)
    assert TOKEN not in str(caught.value)


def test_write_to_a_stopped_server_is_retryable(victoria_metrics: VictoriaMetricsServer) -> None:
    """A write while the server is down is retryable, and succeeds once the server is back."""
    sink = InfluxDBSink(config(victoria_metrics.url))
    try:
        victoria_metrics.stop()
        with pytest.raises(SinkError) as caught:
            sink.write([reading()])
        assert caught.value.retryable
        assert TOKEN not in str(caught.value)

        victoria_metrics.start()
        sink.write([reading()])
    finally:
        sink.close()

    assert len(victoria_metrics.export('{__name__="water_quality_ph"}')) == 1


def test_a_body_the_server_cannot_read_is_a_permanent_rejection(
    victoria_metrics: VictoriaMetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VictoriaMetrics' 400 (here: a body announced as gzip that is not) maps to a non-retryable SinkError."""
    monkeypatch.setattr(gzip, "compress", lambda data, *_args, **_kwargs: data)
    sink = InfluxDBSink(config(victoria_metrics.url, gzip=True))
    try:
        with pytest.raises(SinkError) as caught:
            sink.write([reading()])
    finally:
        sink.close()

    assert (caught.value.reason, caught.value.retryable) == ("rejected", False)
    assert caught.value.detail.startswith("HTTP 400: ")
    assert "gzip" in caught.value.detail
    assert TOKEN not in str(caught.value)


def test_a_reading_that_cannot_be_encoded_is_rejected_before_sending(
    sink: InfluxDBSink, victoria_metrics: VictoriaMetricsServer
) -> None:
    """A control character in a tag is refused as `rejected`, and nothing of the batch is written."""
    with pytest.raises(SinkError) as caught:
        sink.write([reading(), reading(tags=(("river", "a\nb"),), minute=1)])

    assert (caught.value.reason, caught.value.retryable) == ("rejected", False)
    assert victoria_metrics.export('{__name__="water_quality_ph"}', min_series=0) == []
