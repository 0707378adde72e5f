"""What the JetStream log adds to the seam's conformance tests: replicas, faults, the server's limits.

The seam's behaviour runs against JetStream in tests/ingest/test_log_seam.py; these tests pin what
only a replicated stream has: an R3 log keeps every record exactly once, in order, through a node
killed (-9) and brought back and through a frozen leader (SIGSTOP); the server itself enforces
the quota; a second writer on the stream is refused rather than interleaved.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Final

import nats
import nats.js.errors
import pytest

from ingest.errors import WalFullError
from ingest.wal.jetstream import JetStreamLog, SyncError
from ingest.wal.seam import Consumer
from tests.servers import MissingServerBinaryError, NatsCluster, NatsServer

pytestmark = pytest.mark.integration

_streams = itertools.count()
_QUOTA: Final = 1 << 20


def record(i: int) -> bytes:
    return b"%08d" % i + bytes(92)


def read_all(consumer: Consumer, expected: int, timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """Read until `expected` records came or a read waits `timeout` seconds for nothing."""
    out: list[tuple[int, bytes]] = []
    while len(out) < expected and (batch := consumer.read(500, timeout=timeout)):
        out += batch
    return out


@pytest.fixture(scope="module")
def cluster(nats_cluster: NatsCluster) -> NatsCluster:
    """A three-node NATS cluster for the module (each test restores any node it stops)."""
    return nats_cluster


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A single NATS node with JetStream."""
    try:
        nats_server = NatsServer(tmp_path_factory.mktemp("nats"))
    except MissingServerBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    with nats_server:
        yield nats_server


def open_r3(cluster: NatsCluster) -> JetStreamLog:
    return JetStreamLog(cluster.urls, f"fault-{next(_streams)}", replicas=3, quota_bytes=_QUOTA)


def test_an_r3_log_keeps_every_record_once_in_order_through_a_leader_killed_and_brought_back(
    cluster: NatsCluster,
) -> None:
    """kill -9 of the stream's leader: sync rides out the election; readers see each record once, in order."""
    log = open_r3(cluster)
    try:
        consumer = log.reader("sink")
        before = [log.append(record(i)) for i in range(200)]
        log.sync()
        assert [o for o, _ in read_all(consumer, 100)][:100] == before[:100]
        leader = cluster.stream_leader(log.stream)
        leader.kill()
        after = [log.append(record(i)) for i in range(200, 400)]
        assert log.sync() == after[-1] + 1
        leader.start()
        cluster.wait_healthy()
        consumer.seek(consumer.committed)
        got = read_all(consumer, 400)
        assert got == [(o, record(i)) for i, o in enumerate(before + after)]
        consumer.commit(got[-1][0] + 1)
        assert consumer.lag() == 0
    finally:
        log.close()


def test_an_r3_log_rides_out_a_frozen_leader(cluster: NatsCluster) -> None:
    """SIGSTOP of the leader (a node cut off): sync completes on the others; nothing is lost or doubled."""
    log = open_r3(cluster)
    leader = None
    try:
        consumer = log.reader("sink")
        first = [log.append(record(i)) for i in range(100)]
        log.sync()
        leader = cluster.stream_leader(log.stream)
        leader.pause()
        second = [log.append(record(i)) for i in range(100, 200)]
        assert log.sync() == second[-1] + 1
        got = read_all(consumer, 200)
        assert got == [(o, record(i)) for i, o in enumerate(first + second)]
    finally:
        if leader is not None:
            leader.resume()
            cluster.wait_healthy()
        log.close()


def test_usage_counts_the_bytes_the_server_counts(server: NatsServer) -> None:
    """usage_bytes after a sync equals the stream's stored bytes, so WalFullError comes before the server's limit."""
    log = JetStreamLog([server.url], "usage", quota_bytes=_QUOTA)
    try:
        for i in range(1234):
            log.append(record(i) + bytes(i % 17))
        log.sync()
        assert log.usage_bytes() == asyncio.run(_stream_bytes(server.url, "usage"))
    finally:
        log.close()


def test_the_server_refuses_what_the_quota_refuses(server: NatsServer) -> None:
    """The stream's own limit (max_bytes = quota, discard new) refuses a publish once the log is full."""
    log = JetStreamLog([server.url], "full", quota_bytes=64 * 1024)
    try:
        with pytest.raises(WalFullError):  # noqa: PT012 - appending until it is full is the point
            for appended in range(10_000):
                log.append(record(appended))
        log.sync()
        with pytest.raises(nats.js.errors.APIError) as refused:
            asyncio.run(_publish(server.url, log.subject, bytes(1000)))
        assert refused.value.err_code == 10077  # maximum bytes exceeded
    finally:
        log.close()


def test_a_second_writer_is_refused_not_interleaved(server: NatsServer) -> None:
    """Two logs appending to one stream: the one whose offsets were taken fails its sync; records stay whole."""
    first = JetStreamLog([server.url], "shared", quota_bytes=_QUOTA)
    second = JetStreamLog([server.url], "shared", quota_bytes=_QUOTA)
    try:
        offset = first.append(b"first")
        first.sync()
        assert second.append(b"second") == offset  # it predicted the same offset
        with pytest.raises(SyncError, match="another writer"):
            second.sync()
        assert first.reader("sink").read(10) == [(offset, b"first")]
    finally:
        first.close()
        second.close()


async def _stream_bytes(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.state.bytes
    finally:
        await nc.close()


async def _publish(url: str, subject: str, payload: bytes) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, payload)
    finally:
        await nc.close()
