"""The `influxdb1` sink against a real InfluxDB 1.6 (`influxd`), read back with InfluxQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.errors import SinkError
from ingest.model import DataFlag, Reading
from ingest.sinks.influxdb1 import InfluxDB1Sink, InfluxDB1SinkConfig
from tests.servers import InfluxDB1Server

pytestmark = pytest.mark.integration

T0 = 1_795_600_000_123_456_789
MINUTE = 60_000_000_000
PASSWORD = "writer-password-that-must-not-leak"


def reading(
    station_id: str = "cq-cj-cuntan",
    parameter: str = "ph",
    value: float = 7.6,
    minute: int = 0,
    flag: DataFlag = DataFlag.NORMAL,
) -> Reading:
    return Reading(
        station_id=station_id,
        measurement="water_quality",
        parameter=parameter,
        value=value,
        unit="",
        time_ns=T0 + minute * MINUTE,
        flag=flag,
        tags=(("basin", "长江"), ("river", "嘉陵江 north,arm"), ("station_id", station_id)),
    )


def config(server: InfluxDB1Server, **overrides: Any) -> InfluxDB1SinkConfig:
    return InfluxDB1SinkConfig.model_validate(
        {"name": "legacy", "url": server.url, "database": "ecowatch"} | overrides
    )


@pytest.fixture
def influx(influxdb1: InfluxDB1Server) -> InfluxDB1Server:
    influxdb1.create_database("ecowatch")
    return influxdb1


@pytest.fixture
def secured(influxdb1_auth: InfluxDB1Server) -> InfluxDB1Server:
    """An auth-enabled server with database `ecowatch` and a user `writer` who may only write to it."""
    influxdb1_auth.create_database("ecowatch")
    influxdb1_auth.create_user("writer", PASSWORD, write_on="ecowatch")
    return influxdb1_auth


@pytest.fixture
def sink(influx: InfluxDB1Server) -> Iterator[InfluxDB1Sink]:
    sink = InfluxDB1Sink(config(influx))
    yield sink
    sink.close()


def test_readings_read_back_with_tags_fields_and_ns_time(
    sink: InfluxDB1Sink, influx: InfluxDB1Server
) -> None:
    """One point per station and time holds every parameter and flag, with tags and the exact ns time."""
    sink.write([reading(), reading(parameter="do", value=8.25, flag=DataFlag.CALIBRATION), reading(minute=1)])

    points = influx.points("water_quality", "ecowatch")

    assert points == [
        {
            "time": T0,
            "basin": "长江",
            "river": "嘉陵江 north,arm",
            "station_id": "cq-cj-cuntan",
            "ph": 7.6,
            "ph_flag": "N",
            "do": 8.25,
            "do_flag": "C",
        },
        {
            "time": T0 + MINUTE,
            "basin": "长江",
            "river": "嘉陵江 north,arm",
            "station_id": "cq-cj-cuntan",
            "ph": 7.6,
            "ph_flag": "N",
            "do": None,
            "do_flag": None,
        },
    ]


def test_rewriting_a_batch_stores_each_point_once(sink: InfluxDB1Sink, influx: InfluxDB1Server) -> None:
    """A replayed batch overwrites the same series and times: the point count does not grow."""
    batch = [reading(station_id=s, minute=m) for s in ("a", "b") for m in range(50)]

    sink.write(batch)
    sink.write(batch)

    answer = influx.query("SELECT COUNT(ph) FROM water_quality", "ecowatch")
    assert answer["results"][0]["series"][0]["values"][0][1] == 100


def test_gzip_bodies_are_accepted(influx: InfluxDB1Server) -> None:
    """With gzip on, the compressed write is stored like a plain one."""
    sink = InfluxDB1Sink(config(influx, gzip=True))
    try:
        sink.write([reading(value=7.125)])
    finally:
        sink.close()

    assert [p["ph"] for p in influx.points("water_quality", "ecowatch")] == [7.125]


def test_write_only_user_writes_and_passes_check(secured: InfluxDB1Server) -> None:
    """A user with WRITE only passes check() (the database is listed to it) and its writes are stored."""
    sink = InfluxDB1Sink(config(secured, username="writer", password=PASSWORD))
    try:
        sink.check()
        sink.write([reading()])
    finally:
        sink.close()

    assert len(secured.points("water_quality", "ecowatch")) == 1


@pytest.mark.parametrize("operation", ["write", "check"])
def test_wrong_password_is_unauthorized_and_retried(secured: InfluxDB1Server, operation: str) -> None:
    """401 maps to `unauthorized`, retryable (readings wait in the log); no password leaks."""
    wrong = "wrong-password-that-must-not-leak"
    sink = InfluxDB1Sink(config(secured, username="writer", password=wrong))
    try:
        with pytest.raises(SinkError) as caught:
            sink.write([reading()]) if operation == "write" else sink.check()
    finally:
        sink.close()

    assert (caught.value.reason, caught.value.retryable) == ("unauthorized", True)
    assert wrong not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_missing_credentials_on_a_secured_server_are_unauthorized(secured: InfluxDB1Server) -> None:
    """Without credentials an auth-enabled server refuses: unauthorized, retried."""
    sink = InfluxDB1Sink(config(secured))
    try:
        with pytest.raises(SinkError) as caught:
            sink.write([reading()])
    finally:
        sink.close()

    assert (caught.value.reason, caught.value.retryable) == ("unauthorized", True)


@pytest.mark.parametrize("operation", ["write", "check"])
def test_a_missing_database_is_not_found(influxdb1: InfluxDB1Server, operation: str) -> None:
    """Writing to (or checking) a missing database fails as `not_found`, retried (readings wait)."""
    sink = InfluxDB1Sink(config(influxdb1, database="absent"))
    try:
        with pytest.raises(SinkError) as caught:
            sink.write([reading()]) if operation == "write" else sink.check()
    finally:
        sink.close()

    assert (caught.value.reason, caught.value.retryable) == ("not_found", True)
    assert "absent" in caught.value.detail


def test_a_field_type_conflict_is_a_permanent_rejection(sink: InfluxDB1Sink, influx: InfluxDB1Server) -> None:
    """Points the server will never take (a string field written where a float lives) are `rejected`."""
    sink.write([reading()])
    clash = Reading("cq-cj-cuntan", "water_quality", "ph_flag", 1.0, "", T0 + MINUTE, tags=reading().tags)

    with pytest.raises(SinkError) as caught:
        sink.write([clash])

    assert (caught.value.reason, caught.value.retryable) == ("rejected", False)
    assert "conflict" in caught.value.detail


def test_check_fails_fast_on_a_closed_port(closed_port: int) -> None:
    """With nothing listening, check() fails at once with a retryable connection error."""
    sink = InfluxDB1Sink(
        InfluxDB1SinkConfig(
            name="legacy", url=f"http://127.0.0.1:{closed_port}", database="ecowatch", timeout="PT30S"
        )
    )
    started = time.monotonic()

    with pytest.raises(SinkError) as caught:
        sink.check()

    assert time.monotonic() - started < 1.0
    assert (caught.value.reason, caught.value.retryable) == ("connection_failed", True)


def test_writes_resume_after_a_restart(influx: InfluxDB1Server) -> None:
    """A write during a restart is retryable; the next one, after it, is stored with the earlier points."""
    sink = InfluxDB1Sink(config(influx))
    try:
        sink.write([reading()])
        influx.stop()
        with pytest.raises(SinkError) as caught:
            sink.write([reading(minute=1)])
        assert caught.value.retryable
        influx.start()
        sink.write([reading(minute=1)])
    finally:
        sink.close()

    assert [p["time"] for p in influx.points("water_quality", "ecowatch")] == [T0, T0 + MINUTE]


def test_floats_in_exponent_form_read_back_exactly(sink: InfluxDB1Sink, influx: InfluxDB1Server) -> None:
    """Values that repr writes with an exponent (1e-05, 1.5e+16) or at float limits are stored exactly."""
    values = [1e-05, 1.5e16, 123456789.123, 5e-324, 1.7976931348623157e308, -2.5e-10]
    sink.write([reading(value=v, minute=m) for m, v in enumerate(values)])

    assert [p["ph"] for p in influx.points("water_quality", "ecowatch")] == values
