"""End to end, hostile input: no message stops, stalls or floods a running daemon.

A daemon process (`ecowatch run`, as an operator starts it) on real Mosquitto, writing to its
SQLite store and to VictoriaMetrics, gets good readings in all three formats, then the hostile
messages of issue 13 and more (`hostile_messages`: times outside int64 ns, overflowing numbers,
100 000 nested arrays, values nested 1 020 deep, a 60 KB batch of unknown stations, control
characters, wrong topics and placeholder values outside their allowed set, corrupt HJ 212,
binary garbage, empty payloads), then good readings again. Then:

- every good reading is stored, exactly, in SQLite and in VictoriaMetrics;
- the daemon is alive (/healthz), logged no contained exception, and stops cleanly on SIGTERM;
- every hostile message is dead-lettered with one of the reasons it should have (none with
  `internal_error`), in at most `LETTERS_PER_MESSAGE_BOUND` (100) rows: the store's row cap,
  more than any real station message has parameters; the rest are counted on the message;
- the dead-letter file holds each payload about once (`deadletter_bytes_bound`: twice the clipped
  payloads, 1 KiB a row, 1 MiB of schema; before issue 13 the 60 KB batch alone made 8 960 rows
  and ~554 MiB), here ~0.45 MB for 48 messages;
- the counters reconcile: every message received was processed, the good ones accepted, the
  hostile ones rejected; readings accepted = readings written per sink = good readings; the
  rejections counted by reason equal the rejection counters, and equal the rows stored plus
  those counted past the row cap.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson
import pytest

from config.registry import Registry
from ingest.app.settings import DEMO_REGISTRY
from ingest.decoders.hj212 import encode_data_packet, frame
from ingest.decoders.senml import encode_senml
from simulators.publish import MqttOptions, MqttPublisher
from tests.fuzz.harness import LETTERS_PER_MESSAGE_BOUND, deadletter_bytes_bound
from tests.integration.daemon_process import DaemonProcess, Stats
from tests.servers import MosquittoServer, VictoriaMetricsServer, http_request

pytestmark = pytest.mark.integration

REGISTRY: Final = Registry.load(DEMO_REGISTRY)
STATION: Final = REGISTRY["cq-cj-cuntan"]
OTHER: Final = REGISTRY["cq-cj-zhutuo"]
JSON_TOPIC: Final = f"ecowatch/v1/{STATION.district}/{STATION.id}/water"
SENML_TOPIC: Final = f"ecowatch/senml/{STATION.id}"
HJ212_TOPIC: Final = f"hj212/{STATION.mn}"
MAX_PAYLOAD: Final = 65536  # validation.max_payload_bytes, the default
GOOD_MESSAGES: Final = 60  # per phase, before and after the hostile messages
JSON_CODES: Final = {
    "ph": 7.4,
    "temp": 18.0,
    "do": 8.2,
    "cond": 410.0,
    "turb": 12.0,
    "codmn": 3.1,
    "nh3n": 0.31,
    "tp": 0.08,
}
TIME_REASONS: Final = frozenset({"too_old", "time_out_of_range"})
SETTLE_SECONDS: Final = 120.0
BEIJING: Final = ZoneInfo("Asia/Shanghai")  # HJ 212 DataTime is station local time


@dataclass(frozen=True)
class Hostile:
    """A hostile message and the reasons it may be dead-lettered with."""

    name: str
    topic: str
    payload: bytes
    reasons: frozenset[str]


@dataclass(frozen=True)
class Good:
    """One good reading: its identity and value."""

    station_id: str
    parameter: str
    time_ns: int
    value: float


@dataclass
class Stream:
    """What the test publishes, in order, and what it expects."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    good: list[Good] = field(default_factory=list)
    good_messages: int = 0
    hostile: list[Hostile] = field(default_factory=list)


def _json(ts: str, readings: str | dict[str, Any], station_id: str = STATION.id) -> bytes:
    body = readings if isinstance(readings, str) else orjson.dumps(readings).decode()
    return f'{{"station_id":{json.dumps(station_id)},"ts":{json.dumps(ts)},"readings":{body}}}'.encode()


def _hj212(
    data_time: str, fields: str = "w01001-Rtd=7.50,w01001-Flag=N", mn: str = STATION.mn or ""
) -> bytes:
    segment = f"QN={data_time}000;ST=21;CN=2011;PW=123456;MN={mn};Flag=4;CP=&&DataTime={data_time};{fields}&&"
    return frame(segment)


def hostile_messages(recent: datetime) -> list[Hostile]:
    """The hostile messages: issue 13's and our own, each with the reasons it may get."""
    ts = recent.isoformat()
    data_time = recent.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    good_packet = _hj212(data_time)
    deep = "[" * 1020 + "]" * 1020  # past repr's recursion limit, within orjson's depth
    garbage = random.Random(13)
    unknown_batch: list[dict[str, Any]] = []
    while sum(len(orjson.dumps(d)) for d in unknown_batch) < 60_000:
        unknown_batch.append(
            {"station_id": f"nowhere-{len(unknown_batch)}", "ts": ts, "readings": JSON_CODES}
        )

    def h(name: str, topic: str, payload: bytes, *reasons: str) -> Hostile:
        return Hostile(name, topic, payload, frozenset(reasons))

    return [
        # Issue 13: times int64 ns cannot hold, or far out of the window.
        h("json-year-1500", JSON_TOPIC, _json("1500-01-01T00:00:00Z", {"ph": 7.5}), *TIME_REASONS),
        h("hj212-year-1000", HJ212_TOPIC, _hj212("10000101000000"), *TIME_REASONS),
        h("json-year-1-offset", JSON_TOPIC, _json("0001-01-01T00:00:00+01:00", {"ph": 7.5}), *TIME_REASONS),
        h("json-year-9999", JSON_TOPIC, _json("9999-12-31T23:59:59.999999-23:59", {"ph": 7.5}), "clock_skew", "time_out_of_range"),
        h("senml-year-9999", SENML_TOPIC, f'[{{"bn":"{STATION.id}/","bt":253402300799,"n":"ph","v":7}}]'.encode(), "clock_skew", "time_out_of_range"),
        h("senml-time-overflow", SENML_TOPIC, f'[{{"bn":"{STATION.id}/","bt":1e300,"n":"ph","v":7}}]'.encode(), "bad_timestamp", "time_out_of_range"),
        h("json-ts-number", JSON_TOPIC, _json("x", {"ph": 7.5}).replace(b'"x"', b"1e20"), "malformed", *TIME_REASONS, "clock_skew"),
        # Overflowing and non-finite numbers.
        h("json-1e309", JSON_TOPIC, _json(ts, '{"ph":1e309}'), "malformed", "not_a_number"),
        h("json-10e400", JSON_TOPIC, _json(ts, '{"ph":1' + "0" * 400 + "}"), "malformed", "not_a_number"),
        h("json-object-minus-1e309", JSON_TOPIC, _json(ts, '{"do":{"value":-1e309}}'), "malformed", "not_a_number"),
        h("json-float-max", JSON_TOPIC, _json(ts, {"cond": 1.7976931348623157e308}), "out_of_range"),
        h("json-nan-text", JSON_TOPIC, _json(ts, '{"ph":NaN,"do":"NaN"}'), "malformed", "not_a_number"),
        h("senml-1e309", SENML_TOPIC, f'[{{"bn":"{STATION.id}/","bt":1795000000,"n":"ph","v":1e309}}]'.encode(), "malformed", "not_a_number"),
        h("hj212-1e309", HJ212_TOPIC, _hj212(data_time, "w01001-Rtd=1e309,w01001-Flag=N"), "not_a_number"),
        h("hj212-800-digits", HJ212_TOPIC, _hj212(data_time, "w01001-Rtd=" + "9" * 800 + ",w01001-Flag=N"), "not_a_number", "too_large"),
        # Deep nesting and huge arrays.
        h("json-100000-nested", JSON_TOPIC, b"[" * 100_000 + b"]" * 100_000, "too_large"),
        h("json-30000-nested", JSON_TOPIC, b"[" * 30_000 + b"]" * 30_000, "malformed"),
        h("json-deep-value", JSON_TOPIC, _json(ts, f'{{"ph":{deep}}}'), "malformed", "not_a_number"),
        h("senml-deep-value", SENML_TOPIC, f'[{{"bn":"{STATION.id}/","bt":1795000000,"n":"ph","v":{deep}}}]'.encode(), "malformed", "not_a_number"),
        h("json-60kb-unknown-stations", JSON_TOPIC, orjson.dumps(unknown_batch), "unknown_station", "topic_mismatch"),
        h("json-256-unknown-parameters", JSON_TOPIC, _json(ts, {f"p{i}": i for i in range(256)}), "unknown_parameter"),
        h("json-1001-documents", JSON_TOPIC, orjson.dumps([{}] * 1001), "malformed", "too_large"),
        h("senml-1001-records", SENML_TOPIC, orjson.dumps([{"n": f"{STATION.id}/ph", "v": 7}] * 1001), "malformed", "too_large"),
        h("too-large", JSON_TOPIC, b"\x00" * 2**20, "too_large"),
        # Control characters and unicode.
        h(
            "json-control-characters",
            JSON_TOPIC,
            _json(ts, {"p\x00h": 7.0, "do": {"value": 8.0, "unit": "mg/L\x1b[31m"}, "tp": {"value": 0.1, "flag": "N\x00"}}),
            "unknown_parameter", "unknown_unit", "unknown_flag", "not_a_number",
        ),
        h("json-station-with-nul", JSON_TOPIC, _json(ts, {"ph": 7.0}, station_id=f"{STATION.id}\x00"), "unknown_station", "topic_mismatch"),
        h("json-lookalike-station", JSON_TOPIC.replace("cuntan", "cuntаn"), _json(ts, {"ph": 7.0}, station_id="cq-cj-cuntаn"), "unknown_station"),
        h("hj212-non-ascii", HJ212_TOPIC, good_packet.replace(b"ST=21", "ST=水".encode()), "malformed", "bad_length"),
        # Wrong topics, and placeholders outside their allowed values.
        h("json-kind-not-allowed", JSON_TOPIC.replace("/water", "/nonsense"), _json(ts, {"ph": 7.0}), "bad_topic"),
        h("json-kind-60000-bytes", JSON_TOPIC.replace("/water", "/" + "x" * 60_000), _json(ts, {"ph": 7.0}), "bad_topic"),
        h("json-kind-unicode", JSON_TOPIC.replace("/water", "/水质\u2028"), _json(ts, {"ph": 7.0}), "bad_topic"),
        h("json-unknown-station-topic", "ecowatch/v1/x/nowhere/water", _json(ts, {"ph": 7.0}, station_id="nowhere"), "unknown_station"),
        h("json-topic-mismatch", f"ecowatch/v1/{OTHER.district}/{OTHER.id}/water", _json(ts, {"ph": 7.0}), "topic_mismatch"),
        h("senml-topic-mismatch", f"ecowatch/senml/{OTHER.id}", encode_senml(STATION.id, recent, {"ph": (7.0, None)}), "topic_mismatch"),
        h("hj212-unknown-mn", "hj212/99999999999999", _hj212(data_time, mn="99999999999999"), "unknown_station"),
        h("hj212-topic-mn-mismatch", f"hj212/{OTHER.mn}", good_packet, "topic_mismatch"),
        # Corrupt HJ 212.
        h("hj212-bad-crc", HJ212_TOPIC, good_packet[:-6] + b"%04X\r\n" % (int(good_packet[-6:-2], 16) ^ 0xFFFF), "bad_crc"),
        h("hj212-truncated", HJ212_TOPIC, good_packet[:-20], "bad_length", "malformed"),
        h("hj212-reframed-bad-number", HJ212_TOPIC, _hj212(data_time, "w01001-Rtd=7..5,w01001-Flag=N"), "not_a_number"),
        h("hj212-reframed-bad-flag", HJ212_TOPIC, _hj212(data_time, "w01001-Rtd=7.5,w01001-Flag=Q"), "unknown_flag"),
        h("hj212-no-datatime", HJ212_TOPIC, frame(f"ST=21;CN=2011;PW=1;MN={STATION.mn};CP=&&w01001-Rtd=7.5&&"), "bad_timestamp"),
        h("hj212-doubled", HJ212_TOPIC, good_packet * 2, "bad_length", "malformed", "too_large"),
        # Garbage and nothing at all.
        h("json-binary", JSON_TOPIC, garbage.randbytes(2048), "malformed"),
        h("senml-binary", SENML_TOPIC, garbage.randbytes(2048), "malformed"),
        h("hj212-binary", HJ212_TOPIC, garbage.randbytes(2048), "malformed", "too_large"),
        h("json-empty", JSON_TOPIC, b"", "malformed"),
        h("senml-empty", SENML_TOPIC, b"", "malformed"),
        h("hj212-empty", HJ212_TOPIC, b"", "malformed"),
    ]  # fmt: skip


def _good(stream: Stream, start: datetime, index: int) -> None:
    """One good message (JSON, SenML or HJ 212 in turn), at its own minute."""
    moment = start + timedelta(minutes=index)
    time_ns = int(moment.timestamp()) * 1_000_000_000
    stations = [s for s in REGISTRY.values() if "water" in s.kinds and s.mn]
    station = stations[index % len(stations)]
    kind = index % 5
    if kind == 3:  # SenML
        values = {"ph": 7.2 + index / 1000, "temp": 18.5}
        payload = encode_senml(station.id, moment, {code: (value, None) for code, value in values.items()})
        stream.messages.append((f"ecowatch/senml/{station.id}", payload))
    elif kind == 4:  # HJ 212 hourly data
        values = {"ph": 7.3, "do": 8.0 + index / 1000, "nh3n": 0.3}
        payload = encode_data_packet(
            station.mn or "", "123456", "2061", moment, {c: (v, "N") for c, v in values.items()}
        )
        stream.messages.append((f"hj212/{station.mn}", payload))
    else:
        values = {code: round(value + index / 1000, 6) for code, value in JSON_CODES.items()}
        stream.messages.append(
            (
                f"ecowatch/v1/{station.district}/{station.id}/water",
                _json(moment.isoformat(), values, station.id),
            )
        )
    stream.good_messages += 1
    stream.good.extend(Good(station.id, code, time_ns, value) for code, value in values.items())


def make_stream() -> Stream:
    """Good messages, the hostile ones, good messages again."""
    start = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    stream = Stream()
    for index in range(GOOD_MESSAGES):
        _good(stream, start, index)
    stream.hostile = hostile_messages(start - timedelta(hours=1))
    stream.messages.extend((m.topic, m.payload) for m in stream.hostile)
    for index in range(GOOD_MESSAGES, 2 * GOOD_MESSAGES):
        _good(stream, start, index)
    return stream


def _counter(stats: Stats, name: str) -> float:
    return float(stats["counters"].get(name, 0.0))


def _settled(stats: Stats, received: int) -> bool:
    logs = stats["logs"]
    return bool(
        _counter(stats, "ecowatch_messages_received_total") >= received
        and logs["raw_logged"] >= received
        and logs["raw_processed"] == logs["raw_logged"]
        and all(
            s["pending"] == 0 and s["committed"] == logs["readings_logged"] for s in stats["sinks"].values()
        )
    )


def _deadletters(daemon: DaemonProcess) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        status, body = http_request("GET", f"{daemon.url}/api/v1/deadletters?limit=1000&after_id={after}")
        assert status == 200, body
        rows = json.loads(body)["deadletters"]
        if not rows:
            return
        yield from rows
        after = rows[-1]["id"]


def _payload(row: dict[str, Any]) -> bytes | None:
    if row.get("payload") is not None:
        return str(row["payload"]).encode("utf-8")
    if row.get("payload_hex") is not None:
        return bytes.fromhex(row["payload_hex"])
    return None


def _check_deadletters(daemon: DaemonProcess, stream: Stream) -> tuple[int, int]:
    """Every hostile message is dead-lettered, with its reasons, in a bounded number of rows.

    Returns the rows stored and the rejections they account for (rows plus those counted on their
    message as `omitted` past the row cap).
    """
    by_message: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in _deadletters(daemon):
        by_message.setdefault((row["received_ns"], row["topic"]), []).append(row)
    letters_of: dict[tuple[str, bytes], list[dict[str, Any]]] = {}
    for rows in by_message.values():
        payloads = {p for p in map(_payload, rows) if p is not None}
        assert len(payloads) == 1, f"one message, one payload: {rows[:2]}"
        letters_of[(rows[0]["topic"], payloads.pop())] = rows
    problems: list[str] = []
    for message in stream.hostile:
        found = letters_of.pop((message.topic, message.payload[:MAX_PAYLOAD]), None)
        if found is None:
            problems.append(f"{message.name}: not dead-lettered")
            continue
        rows = found
        reasons = Counter(str(r["reason"]) for r in rows)
        if not set(reasons) <= message.reasons:
            details = sorted({str(r["detail"])[:160] for r in rows})[:3]
            problems.append(
                f"{message.name}: reasons {dict(reasons)}, expected {sorted(message.reasons)}: {details}"
            )
        if len(rows) > LETTERS_PER_MESSAGE_BOUND:
            problems.append(
                f"{message.name}: {len(rows)} dead-letter rows (bound {LETTERS_PER_MESSAGE_BOUND})"
            )
    problems += [
        f"unexpected dead letters on {topic[:60]!r}: {rows[:1]}" for (topic, _), rows in letters_of.items()
    ]
    assert not problems, "\n".join(problems)
    assert len(by_message) == len(stream.hostile)
    stored = sum(len(rows) for rows in by_message.values())
    return stored, stored + sum(int(rows[0].get("omitted", 0)) for rows in by_message.values())


def _check_sqlite(path: Path, stream: Stream) -> None:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        stored = {
            (s, p, t): v
            for s, p, t, v in db.execute("SELECT station_id, parameter, time_ns, value FROM readings")
        }
    expected = {(g.station_id, g.parameter, g.time_ns): g.value for g in stream.good}
    assert stored == pytest.approx(expected)


def _check_victoria_metrics(vm: VictoriaMetricsServer, stream: Stream) -> None:
    expected = {(g.station_id, g.parameter, g.time_ns // 1_000_000): g.value for g in stream.good}
    series_wanted = len({(g.station_id, g.parameter) for g in stream.good})
    stored: dict[tuple[str, str, int], float] = {}
    for series in vm.export('{__name__=~"water_quality_.*"}', min_series=series_wanted):
        metric = series["metric"]
        parameter = metric["__name__"].removeprefix("water_quality_")
        if parameter.endswith("_flag"):
            continue
        for value, ts in zip(series["values"], series["timestamps"], strict=True):
            key = (metric["station_id"], parameter, ts)
            assert key not in stored, f"stored twice: {key}"
            stored[key] = value
    assert stored == pytest.approx(expected)


def test_hostile_messages_between_good_readings_stop_nothing(
    tmp_path: Path, mosquitto: MosquittoServer, victoria_metrics: VictoriaMetricsServer
) -> None:
    """Good readings, issue 13's hostile messages and ours, good readings: all good stored, all bad dead-lettered."""
    stream = make_stream()
    data_dir = tmp_path / "daemon" / "data"
    config = {
        "registry": str(DEMO_REGISTRY),
        "mqtt": {"port": mosquitto.port, "client_id": "ecowatch-hostile"},
        "sinks": [
            {"type": "sqlite", "name": "local", "path": str(data_dir / "readings.db")},
            {
                "type": "influxdb",
                "name": "vm",
                "url": victoria_metrics.url,
                "org": "eco",
                "bucket": "water",
                "flush_interval": "PT0.2S",
            },
        ],
    }
    with DaemonProcess(tmp_path / "daemon", config) as daemon:
        daemon.wait_for(lambda s: bool(s["mqtt_connected"]), 30, "connected to the broker")
        with MqttPublisher(MqttOptions(port=mosquitto.port, client_id="hostile-publisher")) as publisher:
            for topic, payload in stream.messages:
                publisher.publish(topic, payload)
            assert publisher.flush(60)
        assert (publisher.sent, publisher.failed) == (len(stream.messages), 0)
        stats = daemon.wait_for(
            lambda s: _settled(s, len(stream.messages)), SETTLE_SECONDS, "every message processed and written"
        )

        # Alive, and every good reading stored (the ones after the hostile messages too).
        assert http_request("GET", f"{daemon.url}/healthz")[0] == 200
        _check_victoria_metrics(victoria_metrics, stream)

        # Every hostile message dead-lettered with its reasons, in few rows.
        rows, rejections = _check_deadletters(daemon, stream)

        # The counters reconcile: received = accepted (stored) + rejected (dead-lettered).
        received = _counter(stats, "ecowatch_messages_received_total")
        assert (
            received == stats["logs"]["raw_logged"] == stats["logs"]["raw_processed"] == len(stream.messages)
        ), stats
        outcomes = {
            o: _counter(stats, f"ecowatch_messages_processed_total{{outcome={o}}}")
            for o in ("accepted", "partial", "rejected")
        }
        assert outcomes == {
            "accepted": stream.good_messages,
            "partial": 0,
            "rejected": len(stream.hostile),
        }, stats
        assert _counter(stats, "ecowatch_readings_accepted_total") == len(stream.good), stats
        for sink in ("local", "vm"):
            assert _counter(stats, f"ecowatch_sink_readings_written_total{{sink={sink}}}") == len(
                stream.good
            ), stats
        # Every rejection counted by reason, stored as a row or counted on its message past the cap.
        for reason, count in stats["deadletters"].items():
            assert count == _counter(stats, f"ecowatch_readings_rejected_total{{reason={reason}}}"), (
                reason,
                stats,
            )
        assert sum(stats["deadletters"].values()) == rejections, stats
        store = stats["deadletter_store"]
        assert (store["rows"], store["messages"], store["full"]) == (rows, len(stream.hostile), False), store
        # Past the row cap, counted and not stored (the store is not full: nothing else is unstored).
        assert sum(store["unstored"].values()) == rejections - rows, store
        # Nothing raised anywhere: no exception contained as internal_error, no lost worker.
        for event in ("internal_error", "processor_failed", "processor_worker_lost", "sink_write_failed"):
            assert daemon.events(event) == [], daemon.log_tail()
        assert daemon.terminate() == 0

    _check_sqlite(data_dir / "readings.db", stream)
    # The dead-letter store stays small: each hostile payload about once, not once per reading.
    payload_bytes = sum(min(len(m.payload), MAX_PAYLOAD) for m in stream.hostile)
    size = sum(p.stat().st_size for p in data_dir.glob("deadletter.db*"))
    assert size <= deadletter_bytes_bound(payload_bytes, rows), f"{size} bytes for {rows} rows"
    print(f"\nhostile input: {len(stream.hostile)} hostile messages, {rows} dead-letter rows, {size} bytes")
