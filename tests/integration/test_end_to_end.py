"""End to end through real servers: Mosquitto → daemon → VictoriaMetrics, InfluxDB 1.x and SQLite.

A real client publishes a few thousand readings, malformed messages among them. Every good reading
must be queryable in each database with the right tags, value and time; every bad one must be in
the dead-letter store with its reason; the counters must reconcile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.settings import DEMO_REGISTRY, load_settings
from simulators.publish import MqttOptions, MqttPublisher
from tests.helpers import wait_for
from tests.servers import InfluxDB1Server, MosquittoServer, VictoriaMetricsServer

pytestmark = pytest.mark.integration

GOOD_MESSAGES = 400
PARAMETERS = {
    "ph": 7.4,
    "temp": 18.0,
    "do": 8.2,
    "cond": 410.0,
    "turb": 12.0,
    "codmn": 3.1,
    "nh3n": 0.31,
    "tp": 0.08,
}
MAX_PAYLOAD = 4096


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class GoodReading:
    station_id: str
    parameter: str
    value: float
    time_ms: int


def _good_stream(registry: Registry, start: datetime) -> Iterator[tuple[Published, list[GoodReading]]]:
    stations = [s for s in registry.values() if "water" in s.kinds]
    for index in range(GOOD_MESSAGES):
        station = stations[index % len(stations)]
        ts = start + timedelta(minutes=index)
        values = {code: round(value + index * 0.001, 6) for code, value in PARAMETERS.items()}
        # Half the messages state units: µg/L and mS/cm must arrive converted.
        readings: dict[str, object] = dict(values)
        if index % 2:
            readings["do"] = {"value": values["do"] * 1000, "unit": "ug/L", "flag": "N"}
            readings["cond"] = {"value": values["cond"] / 1000, "unit": "mS/cm"}
        payload = orjson.dumps({"station_id": station.id, "ts": ts.isoformat(), "readings": readings})
        topic = f"ecowatch/v1/{station.district}/{station.id}/water"
        ms = int(ts.timestamp() * 1000)
        yield Published(topic, payload), [GoodReading(station.id, c, v, ms) for c, v in values.items()]


def _bad_stream(
    registry: Registry, start: datetime
) -> list[tuple[Published, Counter[str], list[GoodReading]]]:
    """Messages with problems: (message, expected dead-letter reasons, readings of it that are still good)."""
    station = registry["cq-cj-cuntan"]
    topic = f"ecowatch/v1/{station.district}/{station.id}/water"
    ts = start - timedelta(days=1)
    ms = int(ts.timestamp() * 1000)

    def doc(**overrides: object) -> bytes:
        body: dict[str, object] = {"station_id": station.id, "ts": ts.isoformat(), "readings": {"ph": 7.0}}
        body.update(overrides)
        return orjson.dumps(body)

    future = datetime.now(UTC) + timedelta(hours=2)
    return [
        (Published(topic, b"{not json"), Counter(malformed=1), []),
        (Published(topic, doc(station_id="nowhere")), Counter(unknown_station=1), []),
        (Published("ecowatch/v1/x/nowhere/water", doc(station_id="nowhere")), Counter(unknown_station=1), []),
        (
            Published(f"ecowatch/v1/{station.district}/cq-cj-zhutuo/water", doc()),
            Counter(topic_mismatch=1),
            [],
        ),
        (
            Published(topic, doc(readings={"ph": 7.0, "do": 99.0})),
            Counter(out_of_range=1),
            [GoodReading(station.id, "ph", 7.0, ms)],
        ),
        (
            Published(
                topic,
                doc(ts=(ts + timedelta(seconds=1)).isoformat(), readings={"tp": {"value": 1, "unit": "ppm"}}),
            ),
            Counter(unknown_unit=1),
            [],
        ),
        (Published(topic, doc(ts="2026-01-01T08:00:00")), Counter(naive_timestamp=1), []),
        (Published(topic, doc(ts=future.isoformat())), Counter(clock_skew=1), []),
        (Published(topic, doc(readings={"xyz": 1.0})), Counter(unknown_parameter=1), []),
        (Published(topic, doc(readings={"ph": "seven"})), Counter(not_a_number=1), []),
        (Published(topic, b" " * (MAX_PAYLOAD + 1)), Counter(too_large=1), []),
    ]


def _settled(daemon: Daemon, messages: int) -> dict[str, Any] | None:
    """The daemon's stats once it processed `messages` and every sink wrote every reading, else None."""
    stats = daemon.stats()
    logs = stats["logs"]
    sinks = stats["sinks"]
    settled = logs["raw_processed"] >= messages and all(
        s["pending"] == 0 and s["committed"] == logs["readings_logged"] for s in sinks.values()
    )
    return stats if settled else None


def test_every_reading_is_stored_and_every_rejection_dead_lettered(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    victoria_metrics: VictoriaMetricsServer,
    influxdb1: InfluxDB1Server,
) -> None:
    """A few thousand readings and ten bad messages: all accounted for, in three databases at once."""
    influxdb1.create_database("water")
    registry = Registry.load(DEMO_REGISTRY)
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        mqtt={"port": mosquitto.port, "client_id": "ecowatch-e2e"},
        http={"port": 0},
        validation={"max_payload_bytes": MAX_PAYLOAD},
        sinks=[
            {
                "type": "influxdb",
                "name": "vm",
                "url": victoria_metrics.url,
                "org": "eco",
                "bucket": "water",
                "token": "unused-by-victoria",
                "batch_size": 500,
            },
            {
                "type": "influxdb1",
                "name": "influx1",
                "url": influxdb1.url,
                "database": "water",
                "batch_size": 700,
            },
            {"type": "sqlite", "name": "local", "path": str(tmp_path / "data" / "readings.db")},
        ],
    )
    daemon = Daemon(settings, registry)
    daemon.start()
    try:
        assert daemon.source.wait_connected(10)
        # Prometheus counters are process-wide: other tests in this process count too.
        before = dict(daemon.stats()["counters"])
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        good = list(_good_stream(registry, start))
        bad = _bad_stream(registry, start)
        expected: list[GoodReading] = [r for _, readings in good for r in readings]
        expected += [r for _, _, readings in bad for r in readings]
        with MqttPublisher(MqttOptions(port=mosquitto.port, client_id="e2e-publisher")) as publisher:
            for message, _ in good[: GOOD_MESSAGES // 2]:
                publisher.publish(message.topic, message.payload)
            for message, _, _ in bad:
                publisher.publish(message.topic, message.payload)
            for message, _ in good[GOOD_MESSAGES // 2 :]:
                publisher.publish(message.topic, message.payload)
            assert publisher.flush(30)
        assert publisher.failed == 0
        total_messages = len(good) + len(bad)
        stats = wait_for(
            lambda: _settled(daemon, total_messages),
            "the daemon to settle",
            60.0,
            detail=daemon.stats,
            interval=0.1,
        )

        # Every good reading, in VictoriaMetrics (through influxdb-client and /api/v2/write).
        stored_vm: dict[tuple[str, str, int], float] = {}
        for series in victoria_metrics.export(
            '{__name__=~"water_quality_.*"}', min_series=len(PARAMETERS) * 30
        ):
            metric = series["metric"]
            parameter = metric["__name__"].removeprefix("water_quality_")
            if parameter.endswith("_flag"):
                continue
            station = registry[metric["station_id"]]
            assert (metric["district"], metric["basin"], metric["river"], metric["kind"]) == (
                station.district,
                station.basin,
                station.river,
                "water",
            )
            for value, ts in zip(series["values"], series["timestamps"], strict=True):
                key = (metric["station_id"], parameter, ts)
                assert key not in stored_vm, f"stored twice: {key}"
                stored_vm[key] = value
        assert stored_vm == pytest.approx({(r.station_id, r.parameter, r.time_ms): r.value for r in expected})

        # ... in InfluxDB 1.x, one point per message with every parameter as a field.
        points = influxdb1.points("water_quality", "water")
        # The harness queries with epoch=ns.
        stored_influx = {
            (p["station_id"], code, p["time"] // 1_000_000): p[code]
            for p in points
            for code in PARAMETERS
            if p.get(code) is not None
        }
        assert stored_influx == pytest.approx(
            {(r.station_id, r.parameter, r.time_ms): r.value for r in expected}
        )
        assert {p["do_flag"] for p in points if p.get("do_flag")} == {"N"}

        # ... and in the embedded store.
        local = next(r.sink for r in daemon.runners if r.config.name == "local")
        assert local.count() == len(expected)  # type: ignore[attr-defined]

        # Every bad message is in the dead-letter store with its reason and raw payload.
        letters = daemon.deadletters.list(limit=1000)
        expected_reasons: Counter[str] = Counter()
        for _, reasons, _ in bad:
            expected_reasons.update(reasons)
        assert Counter(str(d.reason) for d in letters) == expected_reasons
        payloads = {m.payload[:MAX_PAYLOAD] for m, _, _ in bad}
        assert {d.payload for d in letters} <= payloads

        # The counters reconcile: received = processed; accepted = written per sink.
        after = stats["counters"]
        assert isinstance(after, dict)
        counters = {name: value - before.get(name, 0) for name, value in after.items()}
        assert counters["ecowatch_messages_received_total"] == total_messages
        processed = sum(v for k, v in counters.items() if k.startswith("ecowatch_messages_processed_total"))
        assert processed == total_messages
        assert counters["ecowatch_readings_accepted_total"] == len(expected)
        for sink in ("vm", "influx1", "local"):
            assert counters[f"ecowatch_sink_readings_written_total{{sink={sink}}}"] == len(expected)
        rejected = sum(v for k, v in counters.items() if k.startswith("ecowatch_readings_rejected_total"))
        assert rejected == sum(expected_reasons.values())
        print(f"\nend-to-end counters: {orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode()}")
    finally:
        daemon.stop()
