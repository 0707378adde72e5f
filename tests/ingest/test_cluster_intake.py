"""`MqttIntake`: what stations publish over MQTT QoS 1 reaches the stations stream once, in each station's
order, and waits in the listener's store while the stations stream cannot take it.

Real nats-server with its MQTT listener, real paho publishers; the intake holder is killed -9 as a
process in the takeover test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import nats
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.cluster.intake import MQTT_STREAM, MSG_ID, MqttIntake, intake_consumers
from ingest.cluster.stations import (
    SOURCE_SUBJECTS,
    ensure_stream,
    intake_subjects,
    topic_of_subject,
)
from tests.helpers import wait_for
from tests.ingest.pull_faults import lose_the_consumer
from tests.servers import HOST, NatsServer

pytestmark = pytest.mark.integration

STREAM: Final = "intake-test"
PARTITIONS: Final = 4
STATIONS: Final = ("s-1", "s-2", "s-3")
LEASE_TTL: Final = 1.0
RENEW: Final = 0.25
ACK_WAIT: Final = 2.0
ROOT: Final = Path(__file__).resolve().parents[2]


def test_the_listener_subjects_map_to_the_stations_stream() -> None:
    """`ecowatch.v1.<d>.<s>.<k>` goes to `ecowatch.in.<key>.<d>.<s>.<k>` with the station's key (its
    id by default, `.` in it as the listener writes it); another shape under key `_`; HJ 212 that
    came as `hj212/<MN>` goes under its station when the MN is known and the id is one token."""
    by_id = intake_subjects()
    assert by_id("ecowatch.v1.d1.s-1.water") == "ecowatch.in.s-1.d1.s-1.water"
    assert by_id("ecowatch.v1.d1.cq//cj.water") == "ecowatch.in.cq_cj.d1.cq//cj.water"
    assert by_id("ecowatch.v1.d1.odd") == "ecowatch.in._.d1.odd"
    assert by_id("ecowatch.v1.a.b.c.d") == "ecowatch.in._.a.b.c.d"
    assert by_id("ecowatch.v1.hj212.500001.mn") == "ecowatch.in.500001.hj212.500001.mn"
    known = {"500001": "cq-cj-cuntan", "500002": "odd.id"}
    basins = {"cq-cj-cuntan": "~长江"}
    subject_for = intake_subjects(key_of=lambda s: basins.get(s, s), station_of_mn=known.get)
    assert subject_for("ecowatch.v1.hj212.500001.mn") == "ecowatch.in.~长江.hj212.cq-cj-cuntan.packet"
    assert subject_for("ecowatch.v1.hj212.500002.mn") == "ecowatch.in.500002.hj212.500002.mn"
    assert subject_for("ecowatch.v1.hj212.999999.mn") == "ecowatch.in.999999.hj212.999999.mn"
    assert subject_for("ecowatch.v1.d1.cq-cj-cuntan.water") == "ecowatch.in.~长江.d1.cq-cj-cuntan.water"
    assert subject_for("ecowatch.v1.d1.500001.mn") == "ecowatch.in.500001.d1.500001.mn"
    assert (
        topic_of_subject("ecowatch.part.3.hj212.cq-cj-cuntan.packet")
        == "ecowatch/v1/hj212/cq-cj-cuntan/packet"
    )
    assert topic_of_subject("ecowatch.in._.d1.odd") == "ecowatch/v1/d1/odd"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path, server_name="in1", mqtt=True) as running:
        yield running


def intake(server: NatsServer, name: str) -> MqttIntake:
    return MqttIntake(
        [server.url],
        stream=STREAM,
        worker_id=name,
        lease_ttl=LEASE_TTL,
        renew_interval=RENEW,
        ack_wait=ACK_WAIT,
        batch=20,
        fetch_wait=0.2,
    )


def make_stream(server: NatsServer) -> None:
    async def make() -> None:
        nc = await nats.connect(server.url)
        try:
            await ensure_stream(nc.jetstream(), PARTITIONS, stream=STREAM, max_bytes=64 << 20)
        finally:
            await nc.close()

    asyncio.run(make())


def publish(server: NatsServer, seqs: range, *, client_id: str = "stations", pace: float = 0.0) -> None:
    """`{"seq": n}` to every station in turn, QoS 1, each PUBACKed by the listener."""
    assert server.mqtt_port is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.connect(HOST, server.mqtt_port)
    client.loop_start()
    paced = threading.Event()
    try:
        for seq in seqs:
            for station in STATIONS:
                info = client.publish(f"ecowatch/v1/d1/{station}/water", json.dumps({"seq": seq}), qos=1)
                info.wait_for_publish(10)
                assert info.is_published()
            if pace:
                paced.wait(pace)
    finally:
        client.disconnect()
        client.loop_stop()


def stored(server: NatsServer) -> list[tuple[str, int, str]]:
    """(station, seq, Nats-Msg-Id) of every message in the stations stream, in stream order ([] if
    the stream does not exist)."""

    async def read() -> list[tuple[str, int, str]]:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(STREAM)
            except nats.js.errors.NotFoundError:
                return []
            out: list[tuple[str, int, str]] = []
            if not info.state.messages:
                return out
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(STREAM, seq)
                assert msg.subject is not None
                assert msg.data is not None
                station = topic_of_subject(msg.subject).split("/")[3]
                out.append((station, int(json.loads(msg.data)["seq"]), (msg.headers or {})[MSG_ID]))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def listener_store(server: NatsServer) -> tuple[int, int, int]:
    """$MQTT_msgs: messages kept, and the intake consumer's pending and unacknowledged counts."""

    async def read() -> tuple[int, int, int]:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(MQTT_STREAM)
            consumers = await intake_consumers(js)
            assert len(consumers) == 1, consumers  # the older tenures' consumers are gone
            consumer = consumers[-1][1]
            assert info.state.messages is not None
            return info.state.messages, consumer.num_pending or 0, consumer.num_ack_pending or 0
        finally:
            await nc.close()

    return asyncio.run(read())


def assert_once_in_order(records: list[tuple[str, int, str]], expected: set[tuple[str, int]]) -> None:
    readings = [(station, seq) for station, seq, _id in records]
    assert len(readings) == len(set(readings)), "a message stored twice"
    assert set(readings) == expected
    assert len({msg_id for _s, _q, msg_id in records}) == len(records)
    for station in STATIONS:
        seqs = [seq for s, seq in readings if s == station]
        assert seqs == sorted(seqs), f"{station} out of order"


def test_messages_land_once_in_station_order_and_leave_the_listener_store(server: NatsServer) -> None:
    """Every QoS 1 message reaches the stations stream on `ecowatch.in.…` once, in each station's
    order, with its place in $MQTT_msgs as its id; acked, it is gone from $MQTT_msgs."""
    make_stream(server)
    with intake(server, "a").start() as running:
        wait_for(running.intaking, "the intake to hold its lease")
        publish(server, range(40))
        expected = {(s, n) for s in STATIONS for n in range(40)}
        wait_for(lambda: len(stored(server)) >= len(expected), "every message in the stations stream")
        records = stored(server)
        assert_once_in_order(records, expected)
        assert all(msg_id.startswith("mqtt-") for _s, _q, msg_id in records)
        wait_for(
            lambda: listener_store(server) == (0, 0, 0),
            "$MQTT_msgs drained",
            detail=lambda: listener_store(server),
        )
        assert running.stats()["forwarded"] == len(expected)
    assert SOURCE_SUBJECTS == "ecowatch.in.>"


def test_what_the_stations_stream_cannot_store_waits_in_the_listener_store(server: NatsServer) -> None:
    """With no stations stream to store into (as with its leader gone), the listener still PUBACKs
    and keeps the messages; the intake retries in place, and once the stream is there every message
    arrives once and in order."""
    with intake(server, "a").start() as running:
        wait_for(running.intaking, "the intake to hold its lease")
        publish(server, range(15))
        wait_for(lambda: int(running.stats()["retried_batches"]) >= 2, "the intake to retry the batch")
        kept, _pending, unacked = listener_store(server)
        assert kept == 15 * len(STATIONS)
        assert unacked > 0
        assert stored(server) == []
        make_stream(server)
        expected = {(s, n) for s in STATIONS for n in range(15)}
        wait_for(lambda: len(stored(server)) >= len(expected), "every message once the stream exists")
        assert_once_in_order(stored(server), expected)
        wait_for(
            lambda: listener_store(server) == (0, 0, 0),
            "$MQTT_msgs drained",
            detail=lambda: listener_store(server),
        )


_HOLDER: Final = """
import sys, time
from ingest.cluster.intake import MqttIntake
intake = MqttIntake([sys.argv[1]], stream=sys.argv[2], worker_id="killed", lease_ttl={ttl}, renew_interval={renew},
                    ack_wait={ack_wait}, batch=20, fetch_wait=0.2).start()
while not intake.intaking():
    time.sleep(0.05)
print("holding", flush=True)
time.sleep(3600)
"""


def test_a_holder_killed_mid_stream_is_replaced_without_loss_duplicate_or_reordering(
    server: NatsServer, tmp_path: Path
) -> None:
    """The intake holder, a process, is killed -9 while stations publish; the standby takes the lease,
    lets the dead holder's unacknowledged batch come first, and the stations stream holds every message
    once (the ids drop what the dead holder stored but did not ack) in each station's order."""
    make_stream(server)
    code = _HOLDER.format(ttl=LEASE_TTL, renew=RENEW, ack_wait=ACK_WAIT)
    output = tmp_path / "holder.out"
    with output.open("w") as out:
        holder = subprocess.Popen(
            [sys.executable, "-c", code, server.url, STREAM],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "holding" in output.read_text().splitlines(), "the holder to hold the lease")
        with intake(server, "standby").start() as standby:
            publisher = threading.Thread(target=publish, args=(server, range(200)), kwargs={"pace": 0.005})
            publisher.start()
            wait_for(lambda: len(stored(server)) >= 60, "the holder forwarding")
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            publisher.join(60)
            assert not publisher.is_alive()
            wait_for(standby.intaking, "the standby to take the lease", timeout=10 * LEASE_TTL + 10)
            expected = {(s, n) for s in STATIONS for n in range(200)}
            wait_for(
                lambda: len({(s, q) for s, q, _ in stored(server)}) >= len(expected),
                "every message in the stations stream",
                timeout=60,
            )
            assert_once_in_order(stored(server), expected)
            wait_for(
                lambda: listener_store(server) == (0, 0, 0),
                "$MQTT_msgs drained",
                detail=lambda: listener_store(server),
            )
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_stream_made_before_the_intake_captures_its_subjects_now(server: NatsServer) -> None:
    """A stations stream that captured the listener's own subjects (`ecowatch.v1.>`, before the
    intake) is moved to the intake's at the next start, with the intake's duplicate window."""

    async def migrate() -> tuple[list[str] | None, float | None, str | None]:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(
                nats.js.api.StreamConfig(
                    name=STREAM,
                    subjects=["ecowatch.v1.>"],
                    max_bytes=64 << 20,
                    subject_transform=nats.js.api.SubjectTransform(
                        src="ecowatch.v1.*.*.*",
                        dest="ecowatch.part.{{partition(4,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}",
                    ),
                )
            )
            await ensure_stream(js, PARTITIONS, stream=STREAM, max_bytes=64 << 20)
            config = (await js.stream_info(STREAM)).config
            assert config.subject_transform is not None
            return config.subjects, config.duplicate_window, config.subject_transform.src
        finally:
            await nc.close()

    assert asyncio.run(migrate()) == (["ecowatch.in.>"], 600.0, "ecowatch.in.*.*.*.*")


def test_a_failed_bind_is_retried_instead_of_pulling_into_a_dead_inbox(
    server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's consumer vanishes (its leader's node gone) and the first bind after it fails too
    (the node still frozen): the next fetch binds again, so messages keep flowing. Keeping the old
    subscription after a failed bind stalled the intake for good (pulls to an inbox nobody read)."""
    make_stream(server)
    with intake(server, "a").start() as running:
        wait_for(running.intaking, "the intake to hold its lease")
        publish(server, range(5))
        wait_for(lambda: len(stored(server)) >= 5 * len(STATIONS), "the first messages stored")
        assert running._pull is not None
        failed = lose_the_consumer(monkeypatch, running._pull, server.url)
        wait_for(lambda: failed and consumer_exists(server), "the intake to bind again after a failed bind")
        publish(server, range(5, 10), client_id="stations-2")
        expected = {(s, n) for s in STATIONS for n in range(10)}
        wait_for(lambda: len(stored(server)) >= len(expected), "the later messages stored too")
        assert_once_in_order(stored(server), expected)


def consumer_exists(server: NatsServer) -> bool:
    async def read() -> bool:
        nc = await nats.connect(server.url)
        try:
            return bool(await intake_consumers(nc.jetstream()))
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_worker_keyed_otherwise_than_the_stream_is_refused(server: NatsServer) -> None:
    """The stream records what its partitions are keyed by; a worker with another `partition_by` (or
    another partition count) is refused at start, the stream left as it was."""

    async def check() -> str | None:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await ensure_stream(
                js, PARTITIONS, partition_by="river_system", stream=STREAM, max_bytes=64 << 20
            )
            with pytest.raises(ValueError, match="partitioned by river_system, this worker by station"):
                await ensure_stream(js, PARTITIONS, stream=STREAM, max_bytes=64 << 20)
            with pytest.raises(ValueError, match="partitions with"):
                await ensure_stream(
                    js, PARTITIONS + 1, partition_by="river_system", stream=STREAM, max_bytes=64 << 20
                )
            metadata = (await js.stream_info(STREAM)).config.metadata or {}
            return metadata.get("ecowatch.partition_by")
        finally:
            await nc.close()

    assert asyncio.run(check()) == "river_system"


def test_a_message_the_stations_stream_refuses_for_good_is_kept_and_the_rest_flows(
    server: NatsServer,
) -> None:
    """A message the stations stream refuses (here: larger than its max_msg_size; JetStream answers
    400) goes to `on_refused` with its topic and payload and is acknowledged; the station's other
    messages are stored in order, and the intake does not stall on it."""
    make_stream(server)

    async def limit_message_size() -> None:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            config = (await js.stream_info(STREAM)).config
            config.max_msg_size = 200
            await js.update_stream(config)
        finally:
            await nc.close()

    asyncio.run(limit_message_size())
    refused: list[tuple[str, bytes, str]] = []
    assert server.mqtt_port is not None
    running = MqttIntake(
        [server.url],
        stream=STREAM,
        worker_id="a",
        lease_ttl=LEASE_TTL,
        renew_interval=RENEW,
        ack_wait=ACK_WAIT,
        fetch_wait=0.2,
        on_refused=lambda topic, payload, detail: refused.append((topic, payload, detail)),
    ).start()
    with running:
        wait_for(running.intaking, "the intake to hold its lease")
        big = json.dumps({"seq": 1, "pad": "x" * 400}).encode()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stations", protocol=mqtt.MQTTv311)
        client.connect(HOST, server.mqtt_port)
        client.loop_start()
        try:
            for payload in (json.dumps({"seq": 0}).encode(), big, json.dumps({"seq": 2}).encode()):
                info = client.publish("ecowatch/v1/d1/s-1/water", payload, qos=1)
                info.wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_for(lambda: len(stored(server)) >= 2, "the two small messages stored")
        wait_for(
            lambda: listener_store(server) == (0, 0, 0),
            "$MQTT_msgs drained",
            detail=lambda: listener_store(server),
        )
        assert [(s, q) for s, q, _ in stored(server)] == [("s-1", 0), ("s-1", 2)]
        assert [(topic, payload) for topic, payload, _ in refused] == [("ecowatch/v1/d1/s-1/water", big)]
        assert "refused" in refused[0][2]
        assert running.stats()["refused"] == 1
