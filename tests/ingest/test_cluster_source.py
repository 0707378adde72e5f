"""`PartitionSource`: stations over MQTT into the cluster, each partition's messages into its owner's raw log."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.cluster import Ownership
from ingest.cluster.buckets import connect
from ingest.cluster.intake import MqttIntake
from ingest.cluster.source import PartitionSource, RawLogHandler
from ingest.cluster.stations import ensure_stream, station_partition, topic_of_subject, transform_destination
from ingest.records import decode_message
from ingest.wal import WriteAheadLog
from tests.helpers import wait_for
from tests.servers import HOST, NatsServer

PARTITIONS = 8
STATIONS = [f"5001{d:02d}-{n:04d}" for d in range(4) for n in range(6)]
LEASE_TTL = 2.0
RENEW = 0.4
BATCH = 32


def test_station_partition_is_fnv1a_of_the_station() -> None:
    """The partition is FNV-1a-32 of the station id mod N, as nats-server's partition() computes it."""
    assert station_partition("a", 1 << 32) == 0xE40C292C
    assert station_partition("", 1 << 32) == 0x811C9DC5
    assert {station_partition(s, PARTITIONS) for s in STATIONS} <= set(range(PARTITIONS))
    with pytest.raises(ValueError, match="at least 1"):
        station_partition("a", 0)


def test_stored_subjects_map_back_to_topics() -> None:
    """A stored subject names the MQTT topic it came from; the transform carries the partition count."""
    assert topic_of_subject("ecowatch.part.3.d1.st-1.water") == "ecowatch/v1/d1/st-1/water"
    assert topic_of_subject("ecowatch.in._.d1.odd") == "ecowatch/v1/d1/odd"
    assert transform_destination(8) == (
        "ecowatch.part.{{partition(8,1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}"
    )


@dataclass
class Worker:
    """One worker: its raw log, its source and its ownership, and which partitions it held when."""

    name: str
    wal: WriteAheadLog
    source: PartitionSource
    ownership: Ownership
    acquired: list[tuple[int, int]] = field(default_factory=list)

    def records(self) -> list[tuple[str, int]]:
        """(station, seq) of every record in the raw log, in log order."""
        reader = self.wal.reader("check")
        reader.seek(0)
        out: list[tuple[str, int]] = []
        while batch := reader.read(10_000, timeout=0):
            for _offset, record in batch:
                message = decode_message(record)
                out.append((message.topic.split("/")[3], int(json.loads(message.payload)["seq"])))
        return out


def make_worker(name: str, server: NatsServer, tmp: Path) -> Worker:
    """A worker with its own WAL; Ownership's callbacks go to the source (and are recorded)."""
    wal = WriteAheadLog(tmp / name, segment_bytes=1 << 20, quota_bytes=4 << 20)
    source = PartitionSource(
        [server.url],
        RawLogHandler(wal),
        partitions=PARTITIONS,
        max_bytes=64 << 20,
        batch=BATCH,
        fetch_wait=0.2,
        name=name,
    )
    acquired: list[tuple[int, int]] = []

    def on_acquired(p: int, epoch: int) -> None:
        acquired.append((p, epoch))
        source.on_acquired(p, epoch)

    ownership = Ownership(
        [server.url],
        partitions=PARTITIONS,
        worker_id=name,
        on_acquired=on_acquired,
        on_lost=source.on_lost,
        lease_ttl=LEASE_TTL,
        renew_interval=RENEW,
    )
    source.start(ownership)
    ownership.start()
    return Worker(name, wal, source, ownership, acquired)


@pytest.fixture
def nats_mqtt(tmp_path: Path) -> Iterator[NatsServer]:
    """A single nats-server with JetStream and the MQTT listener, and the intake that moves what
    stations publish into the stations stream (`ingest.cluster.intake`)."""
    with NatsServer(tmp_path, server_name="mq1", mqtt=True) as server:
        intake = MqttIntake([server.url], lease_ttl=LEASE_TTL, renew_interval=RENEW, fetch_wait=0.2).start()
        try:
            yield server
        finally:
            intake.stop()


class Publisher:
    """Publishes `{"seq": n}` to every station in turn over MQTT QoS 1, each publish acknowledged."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stations", protocol=mqtt.MQTTv311)
        self.client.connect(HOST, port)
        self.client.loop_start()
        self.sent: list[tuple[str, int]] = []

    def publish(self, seqs: range, pause: threading.Event | None = None) -> None:
        for seq in seqs:
            for station in STATIONS:
                topic = f"ecowatch/v1/d{station[4:6]}/{station}/water"
                info = self.client.publish(topic, json.dumps({"seq": seq}), qos=1)
                info.wait_for_publish(10)
                assert info.is_published()
                self.sent.append((station, seq))
            if pause is not None:
                pause.wait(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _in_order(records: list[tuple[str, int]]) -> bool:
    """Each station's first occurrences in a log come in publish order."""
    last: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for station, seq in records:
        if (station, seq) in seen:
            continue
        seen.add((station, seq))
        if seq <= last.get(station, -1):
            return False
        last[station] = seq
    return True


@pytest.mark.integration
def test_partitions_to_owners_exactly_once_then_failover_at_least_once(
    nats_mqtt: NatsServer, tmp_path: Path
) -> None:
    """Two workers share 8 partitions; MQTT QoS 1 messages land once each in their owner's raw log;
    after one worker stops renewing abruptly, the survivor takes its partitions and the union of the
    logs holds every message, with duplicates only from the dead worker's unacknowledged batches."""
    w1 = make_worker("w1", nats_mqtt, tmp_path)
    w2 = make_worker("w2", nats_mqtt, tmp_path)
    assert nats_mqtt.mqtt_port is not None
    publisher = Publisher(nats_mqtt.mqtt_port)
    workers = [w1, w2]
    try:
        wait_for(
            lambda: len(w1.source.reading()) == len(w2.source.reading()) == PARTITIONS // 2,
            "the partitions split between the two workers",
        )
        owners_before = {w.name: set(w.source.reading()) for w in workers}
        # Phase 1: steady ownership, exactly once.
        publisher.publish(range(0, 20))
        phase1 = set(publisher.sent)
        wait_for(
            lambda: phase1 <= set(w1.records()) | set(w2.records()),
            "phase 1 in the raw logs",
            detail=lambda: (
                w1.source.stats(),
                w2.source.stats(),
                sorted(phase1 - set(w1.records()) - set(w2.records()))[:5],
                w1.source.reading(),
                w2.source.reading(),
                w1.acquired,
                w2.acquired,
            ),
        )
        wait_for(
            lambda: w1.source.stats()["acked"] + w2.source.stats()["acked"] >= len(phase1), "phase 1 acked"
        )
        for w in workers:
            records = w.records()
            assert len(records) == len(set(records)), f"{w.name} logged a message twice in steady state"
            assert {station_partition(s, PARTITIONS) for s, _ in records} <= owners_before[w.name]
            assert _in_order(records)
        assert sorted(w1.records() + w2.records()) == sorted(phase1)

        # Phase 2: w2 stops renewing abruptly mid-stream; w1 takes its partitions.
        pace = threading.Event()
        second = threading.Thread(target=publisher.publish, args=(range(20, 60), pace))
        second.start()
        wait_for(lambda: len(publisher.sent) >= len(phase1) + 5 * len(STATIONS), "phase 2 under way")
        w2_before_kill = len(w2.records())
        w2.ownership.stop(release=False)  # no more renewals: its leases expire after lease_ttl
        w2.source.stop()
        second.join(60)
        assert not second.is_alive()
        sent = set(publisher.sent)
        wait_for(
            lambda: len(w1.source.reading()) == PARTITIONS,
            "w1 owning every partition",
            timeout=3 * LEASE_TTL + 10,
        )
        wait_for(
            lambda: sent <= set(w1.records()) | set(w2.records()),
            "every message in the union of the raw logs",
            detail=lambda: (w1.source.stats(), len(sent - set(w1.records()) - set(w2.records()))),
        )
        r1, r2 = w1.records(), w2.records()
        counts = Counter(r1 + r2)
        duplicates = {m: c for m, c in counts.items() if c > 1}
        moved = owners_before["w2"]
        # Only the moved partitions' messages, each at most twice (w2's copy + w1's), at most
        # w2's unacknowledged batches: one per partition it held.
        assert all(station_partition(s, PARTITIONS) in moved for s, _ in duplicates)
        assert all(c == 2 for c in duplicates.values())
        assert len(duplicates) <= BATCH * len(moved)
        assert len(r1) == len(set(r1)), "w1 logged a message twice"
        assert _in_order(r1)
        assert _in_order(r2)
        # w2 wrote nothing after its source stopped; what it wrote was its own partitions'.
        assert len(r2) >= w2_before_kill
        assert {station_partition(s, PARTITIONS) for s, _ in r2} <= moved
        print(f"messages={len(sent)} duplicates={len(duplicates)} w1={len(r1)} w2={len(r2)}")
    finally:
        publisher.close()
        for w in workers:
            w.ownership.stop(release=False)
            w.source.stop()
            w.wal.close()


@pytest.mark.integration
def test_the_stations_stream_takes_the_configured_limits_at_every_start(nats_server: NatsServer) -> None:
    """A worker started with other limits (`stream_max_bytes`) changes the existing stream's
    limits; one with another partition count is refused."""

    async def limits() -> tuple[int | None, float | None]:
        nc = await connect([nats_server.url], "limits-test", 2.0)
        try:
            js = nc.jetstream(timeout=2.0)
            await ensure_stream(js, 8, stream="limits-test", max_bytes=64 << 20, max_age=3600.0)
            await ensure_stream(js, 8, stream="limits-test", max_bytes=32 << 20, max_age=7200.0)
            with pytest.raises(ValueError, match="partitions with"):
                await ensure_stream(js, 16, stream="limits-test", max_bytes=32 << 20, max_age=7200.0)
            config = (await js.stream_info("limits-test")).config
            return config.max_bytes, config.max_age
        finally:
            await nc.close()

    assert asyncio.run(limits()) == (32 << 20, 7200.0)
