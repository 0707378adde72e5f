"""Support of the fault-injection tests: an identifiable stream, a background publisher, exact checks.

Every message of a `Stream` is one synthetic station at one second (stations in turn), with the
eight load parameters, so each reading is identified by (parameter, station, time) and the test
knows its value. `check_stored` reads VictoriaMetrics back and names what is missing, extra,
duplicated or different; `check_reconciled` asserts that the daemon's durable counts (and, for
one uninterrupted run, its in-process counters) agree with each other and with the stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from simulators.load import LOAD_CODES, pregenerate, synthetic_registry, write_registry
from simulators.publish import MqttOptions, MqttPublisher
from tests.integration.daemon_process import DaemonProcess, Stats
from tests.servers import VictoriaMetricsServer

SINK: Final = "vm"
CLIENT_ID: Final = "ecowatch-fault"
TOPIC_TEMPLATE: Final = "ecowatch/v1/{district}/{station_id}/{kind}"
_METRICS: Final = '{__name__=~"water_quality_(' + "|".join(LOAD_CODES) + ')"}'
_PROBE: Final = '{__name__="water_quality_ph"}'
PUBLISH_TIMEOUT_SECONDS: Final = 600.0

# (parameter, station_id) -> {time in ms: value}
Expected = dict[tuple[str, str], dict[int, float]]


@dataclass(frozen=True)
class Stream:
    registry_file: Path
    messages: list[tuple[str, bytes]]
    expected: Expected

    def __len__(self) -> int:
        return len(self.messages)


def make_stream(folder: Path, n_messages: int, n_stations: int = 100) -> Stream:
    """`n_messages` messages of `min(n_messages, n_stations)` stations, one second apart per round."""
    stations = synthetic_registry(min(n_messages, n_stations))
    folder.mkdir(parents=True, exist_ok=True)
    registry_file = folder / "registry.yaml"
    write_registry(stations, registry_file)
    # A day ago: within retention and the skew check, and clear of "now".
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    messages = pregenerate(n_messages, stations, start=start)
    expected: Expected = {}
    for _, payload in messages:
        document = orjson.loads(payload)
        time_ms = int(datetime.fromisoformat(document["ts"]).timestamp() * 1000)
        for code, value in document["readings"].items():
            expected.setdefault((code, document["station_id"]), {})[time_ms] = float(value)
    readings = sum(len(times) for times in expected.values())
    if readings != n_messages * len(LOAD_CODES):
        raise AssertionError(f"the stream repeats a (station, time): {readings} distinct readings")
    return Stream(registry_file, messages, expected)


def daemon_config(mqtt_port: int, vm_url: str, stream: Stream, **extra: Any) -> dict[str, Any]:
    """A daemon reading our JSON topics and writing to VictoriaMetrics, with short retry delays."""
    config: dict[str, Any] = {
        "registry": str(stream.registry_file),
        "mqtt": {
            "port": mqtt_port,
            "client_id": CLIENT_ID,
            "reconnect_min_delay": "PT0.1S",
            "reconnect_max_delay": "PT1S",
            "subscriptions": [
                {"topic": TOPIC_TEMPLATE, "format": "json", "tags": {"kind": {"values": ["water"]}}}
            ],
        },
        "sinks": [
            {
                "type": "influxdb",
                "name": SINK,
                "url": vm_url,
                "org": "eco",
                "bucket": "water",
                "batch_size": 5000,
                "flush_interval": "PT0.2S",
                "retry_initial_delay": "PT0.05S",
                "retry_max_delay": "PT0.5S",
                "retry_budget": "PT2S",
            }
        ],
        "shutdown_grace": "PT10S",
    }
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            config[key] = config[key] | dict(value)
        else:
            config[key] = value
    return config


@dataclass
class BackgroundPublisher:
    """Publishes the stream at QoS 1 from a thread; `published` counts the messages handed over."""

    port: int
    messages: list[tuple[str, bytes]]
    client_id: str = "fault-publisher"
    published: int = 0
    sent: int = 0
    failed: int = 0
    error: BaseException | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def start(self) -> BackgroundPublisher:
        self._thread.start()
        return self

    def join(self, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        """Wait until the broker acknowledged every message; raise if any was lost."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"publishing took over {timeout} s ({self.published} handed over)")
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}")
        if self.sent != len(self.messages) or self.failed:
            raise AssertionError(f"the broker acknowledged {self.sent} of {len(self.messages)}")

    def _run(self) -> None:
        options = MqttOptions(port=self.port, client_id=self.client_id, max_unacked=1000)
        try:
            publisher = MqttPublisher(options)
            publisher.connect()
            try:
                for topic, payload in self.messages:
                    publisher.publish(topic, payload)
                    self.published += 1
                publisher.flush(PUBLISH_TIMEOUT_SECONDS)
            finally:
                publisher.close()
                self.sent, self.failed = publisher.sent, publisher.failed
        except BaseException as exc:  # reported by join()
            self.error = exc


def quiescent(stats: Stats) -> bool:
    """Nothing in flight inside the daemon: every logged message processed, every reading written."""
    logs = stats["logs"]
    sink = stats["sinks"][SINK]
    return bool(
        logs["raw_processed"] == logs["raw_logged"]
        and sink["pending"] == 0
        and sink["committed"] == logs["readings_logged"]
        and stats["held_messages"] == 0
    )


def wait_until_stored(
    daemon: DaemonProcess, vm: VictoriaMetricsServer, stream: Stream, timeout: float
) -> Stats:
    """Poll until the daemon is quiescent with every message in and every ph sample in the database."""
    n = len(stream)

    def done() -> bool:
        stats = daemon.stats()
        if not (stats["logs"]["raw_logged"] >= n and quiescent(stats)):
            return False
        return sum(len(s["values"]) for s in vm.export(_PROBE, min_series=0)) >= n

    daemon.poll_until(done, timeout, f"{n} messages stored", detail=lambda: str(daemon.stats()))
    return daemon.wait_for(quiescent, 30, "quiescent")


def check_stored(vm: VictoriaMetricsServer, stream: Stream) -> None:
    """Every reading of the stream is in VictoriaMetrics exactly once, with its value; nothing else."""
    stored: Expected = {}
    problems: list[str] = []
    for series in vm.export(_METRICS, min_series=len(stream.expected)):
        metric = series["metric"]
        key = (metric["__name__"].removeprefix("water_quality_"), metric.get("station_id", "?"))
        timestamps, values = series["timestamps"], series["values"]
        if key in stored:
            problems.append(f"{key}: a second series {metric}")
        if len(set(timestamps)) != len(timestamps):
            problems.append(f"{key}: {len(timestamps) - len(set(timestamps))} duplicate samples")
        stored.setdefault(key, {}).update(zip(timestamps, map(float, values), strict=True))
    for key in stored.keys() - stream.expected.keys():
        problems.append(f"{key}: unexpected series")
    missing = wrong = extra = 0
    for key, expected in stream.expected.items():
        got = stored.get(key, {})
        missing += len(expected.keys() - got.keys())
        extra += len(got.keys() - expected.keys())
        wrong += sum(1 for t, v in expected.items() if t in got and got[t] != v)
    if missing or extra or wrong:
        problems.append(f"{missing} readings missing, {extra} unexpected, {wrong} with another value")
    if problems:
        raise AssertionError("database does not hold the stream exactly once:\n" + "\n".join(problems[:20]))


def logged_at_least(count: int) -> Callable[[Stats], bool]:
    """A stats predicate: the raw log holds at least `count` messages."""

    def predicate(stats: Stats) -> bool:
        return bool(stats["logs"]["raw_logged"] >= count)

    return predicate


def counter(stats: Stats, name: str) -> float:
    return float(stats["counters"].get(name, 0.0))


def check_reconciled(stats: Stats, stream: Stream, *, single_run: bool, redelivered: bool) -> None:
    """Durable counts agree; with `single_run` (one process saw everything) the counters too.

    `redelivered`: the broker may have sent some messages twice (after a restart of either side),
    so the raw log may hold more than the stream; without it, exactly the stream.
    """
    n = len(stream)
    logs = stats["logs"]
    sink = stats["sinks"][SINK]
    assert stats["deadletters"] == {}, stats["deadletters"]
    assert logs["raw_processed"] == logs["raw_logged"], logs
    assert logs["raw_logged"] >= n if redelivered else logs["raw_logged"] == n, logs
    assert sink["committed"] == logs["readings_logged"], sink
    assert sink["pending"] == 0, sink
    assert not sink["down"], sink
    assert not stats["raw_log_full"], stats
    assert stats["held_messages"] == 0, stats
    # Every message is good: one readings record each, more only if a crash re-processed a batch.
    if single_run:
        assert logs["readings_logged"] == logs["raw_processed"], logs
        received = counter(stats, "ecowatch_messages_received_total")
        assert received == counter(stats, "ecowatch_messages_logged_total") == logs["raw_logged"], stats
        accepted = counter(stats, "ecowatch_messages_processed_total{outcome=accepted}")
        assert accepted == logs["raw_processed"], stats
        readings = counter(stats, "ecowatch_readings_accepted_total")
        assert readings == accepted * len(LOAD_CODES), stats
        assert counter(stats, f"ecowatch_sink_readings_written_total{{sink={SINK}}}") == readings, stats
    else:
        assert logs["readings_logged"] >= logs["raw_processed"], logs
