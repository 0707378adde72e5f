"""Every new catalogue item, from an HJ 212 packet to each real sink and back.

The items that could not be ingested before (the GB 3838 Table-1 items beyond the nine, fecal
coliform) and the lake items (chlorophyll a, transparency) arrive in one HJ 212-2017 upload, in the
units table B.1 gives their codes (µg/L for the metals), and again one minute later in an HJ/T
212-2005 upload under the 2005 codes (mg/L): both must be stored as the same canonical value in
SQLite, in VictoriaMetrics through the InfluxDB 2 write API, and in InfluxDB 1.x, and read back.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.hj212 import default_code_table
from config.parameters import default_catalogue
from ingest.decoders.hj212 import HJ212Decoder, encode_data_packet, frame
from ingest.model import DataFlag, Reading
from ingest.sinks.influxdb import InfluxDBSink, InfluxDBSinkConfig
from ingest.sinks.influxdb1 import InfluxDB1Sink, InfluxDB1SinkConfig
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from ingest.validate import ValidationConfig, Validator
from tests.config.catalogue_samples import NEW_ITEMS
from tests.helpers import T0, T0_NS, registry, station
from tests.servers import InfluxDB1Server, VictoriaMetricsServer

pytestmark = pytest.mark.integration

MN = "50010300000001"
MINUTE_NS = 60 * 10**9
EXPECTED = {s.parameter: s.canonical for s in NEW_ITEMS}
# The items with a 2005 code (not the lake items), sent again at T0 + 1 min.
WITH_2005 = {p: v for p, v in EXPECTED.items() if default_code_table().by_parameter[p].hj212_2005 is not None}


def _readings() -> list[Reading]:
    """The 2017 upload at T0 and the 2005 upload at T0 + 1 min, decoded and validated."""
    decoder = HJ212Decoder()
    # Canonical values in: the encoder writes each in its code's unit (µg/L for the metals).
    packet = encode_data_packet(
        MN, "123456", "2011", T0, {s.parameter: (s.canonical, "N") for s in NEW_ITEMS}
    )
    assert b"w20120-Rtd=2.5," in packet  # Pb 0.0025 mg/L
    new = decoder.decode(f"hj212/{MN}", packet)
    codes_2005 = {p: default_code_table().by_parameter[p].hj212_2005 for p in WITH_2005}
    cp = ";".join(
        f"{codes_2005[p]}-Rtd={format(Decimal(repr(v)), 'f')},{codes_2005[p]}-Flag=N"
        for p, v in WITH_2005.items()
    )
    # T0 is 08:00 UTC, 16:00 in Beijing: the 2005 upload is at 16:01 station time.
    old = decoder.decode(
        f"hj212/{MN}", frame(f"ST=21;CN=2011;PW=123456;MN={MN};CP=&&DataTime=20261125160100;{cp}&&")
    )
    validator = Validator(
        ValidationConfig(), registry(station("st-1", mn=MN, timezone="Asia/Shanghai")), default_catalogue()
    )
    readings, rejections = validator.validate_many([*new.readings, *old.readings], {}, T0_NS + 10 * MINUTE_NS)
    assert (new.rejections, old.rejections, rejections) == ([], [], [])
    assert len(readings) == len(EXPECTED) + len(WITH_2005)
    return readings


def _expected_at(time_ns: int) -> dict[str, float]:
    return EXPECTED if time_ns == T0_NS else WITH_2005


def test_sqlite_stores_every_new_item_in_its_canonical_unit(tmp_path: Path) -> None:
    """SQLite gives back each item's canonical value, unit, flag and station at both times."""
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "readings.db"))
    try:
        sink.write(_readings())
        stored = sink.query(station_id="st-1", limit=100)
    finally:
        sink.close()

    catalogue = default_catalogue()
    for time_ns in (T0_NS, T0_NS + MINUTE_NS):
        at = {r.parameter: r for r in stored if r.time_ns == time_ns}
        assert set(at) == set(_expected_at(time_ns))
        for code, value in _expected_at(time_ns).items():
            assert at[code].value == pytest.approx(value, rel=1e-12), code
            assert (at[code].unit, at[code].measurement, at[code].flag) == (
                catalogue[code].unit,
                "water_quality",
                DataFlag.NORMAL,
            )


def test_victoria_metrics_stores_every_new_item_as_a_metric(victoria_metrics: VictoriaMetricsServer) -> None:
    """Through /api/v2/write each item becomes `water_quality_<code>` with both samples."""
    sink = InfluxDBSink(
        InfluxDBSinkConfig.model_validate(
            {"name": "tsdb", "url": victoria_metrics.url, "org": "ecowatch", "bucket": "water", "token": "t"}
        )
    )
    try:
        sink.write(_readings())
    finally:
        sink.close()

    names = "|".join(EXPECTED)
    series = victoria_metrics.export(f'{{__name__=~"water_quality_({names})"}}', min_series=len(EXPECTED))

    stored = {
        s["metric"]["__name__"].removeprefix("water_quality_"): dict(
            zip(s["timestamps"], s["values"], strict=True)
        )
        for s in series
        if s["metric"]["station_id"] == "st-1"
    }
    assert set(stored) == set(EXPECTED)
    for code, samples in stored.items():
        expected = {T0_NS // 10**6: EXPECTED[code]}
        if code in WITH_2005:
            expected[(T0_NS + MINUTE_NS) // 10**6] = WITH_2005[code]
        assert samples == pytest.approx(expected, rel=1e-9), code


def test_influxdb1_stores_every_new_item_as_a_field(influxdb1: InfluxDB1Server) -> None:
    """InfluxDB 1.x keeps one point per time with a float field and a flag field per item."""
    influxdb1.create_database("ecowatch")
    sink = InfluxDB1Sink(
        InfluxDB1SinkConfig.model_validate({"name": "legacy", "url": influxdb1.url, "database": "ecowatch"})
    )
    try:
        sink.write(_readings())
    finally:
        sink.close()

    points = influxdb1.points("water_quality", "ecowatch")

    assert [p["time"] for p in points] == [T0_NS, T0_NS + MINUTE_NS]
    for point in points:
        assert point["station_id"] == "st-1"
        for code in EXPECTED:
            value = _expected_at(point["time"]).get(code)
            if value is None:
                assert (point[code], point[f"{code}_flag"]) == (None, None), code
            else:
                assert point[code] == pytest.approx(value, rel=1e-12), code
                assert point[f"{code}_flag"] == "N", code
