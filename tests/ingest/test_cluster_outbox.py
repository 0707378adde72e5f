"""The cluster outbox: a stream deduplicated by idempotency key, one dispatcher per receiver at a time.

Every test runs real nats-servers on loopback (a single node, or a three-node cluster with R3
stream and buckets) and a recording receiver: each call to `deliver` is logged with its
dispatcher and its start and end times, so that a test can assert that every key was handed
over exactly once, in order, and never by two dispatchers at the same time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from ingest.cluster.outbox import OutboxStream, ReceiverDispatch
from tests.helpers import wait_for
from tests.ingest.pull_faults import lose_the_consumer
from tests.servers import NatsCluster, NatsServer

pytestmark = pytest.mark.integration

LEASE_TTL: Final = 2.0
RENEW: Final = 0.5
_runs = itertools.count()


@dataclass
class Receiver:
    """Records every `deliver` call: (key, dispatcher, start, end), and the most ever in flight."""

    calls: list[tuple[str, str, float, float]] = field(default_factory=list)
    # Calls inside the receiver (between taking the key and answering) at once: never above 1.
    in_flight: int = 0
    most_in_flight: int = 0
    # Called inside `deliver` before (phase "before") or after ("after") the receiver takes the key;
    # a test blocks a dispatcher there.
    hook: Callable[[str, str, str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver_as(self, dispatcher: str) -> Callable[[str, bytes], bool]:
        def deliver(key: str, payload: bytes) -> bool:
            assert payload == f'{{"key": "{key}"}}'.encode()
            if self.hook is not None:
                self.hook("before", dispatcher, key)
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            start = time.monotonic()
            time.sleep(0.002)  # the receiver's round trip, so that overlapping calls would show
            with self._lock:
                self.calls.append((key, dispatcher, start, time.monotonic()))
                self.in_flight -= 1
            if self.hook is not None:
                self.hook("after", dispatcher, key)
            return True

        return deliver

    def keys(self) -> list[str]:
        with self._lock:
            return [key for key, *_ in self.calls]

    def deduplicated(self) -> list[str]:
        """What a receiver that drops repeated idempotency keys shows (alerts' receivers do)."""
        return list(dict.fromkeys(self.keys()))

    def check_never_concurrent(self) -> None:
        assert self.most_in_flight == 1
        with self._lock:
            spans = sorted((start, end) for _, _, start, end in self.calls)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


class Run:
    """One deployment's outbox (a stream, subjects and lease buckets of its own) on given servers."""

    def __init__(self, servers: list[str], replicas: int, *, ack_wait: float = 30.0) -> None:
        n = next(_runs)
        self.servers = servers
        self.replicas = replicas
        self.ack_wait = ack_wait
        self.names: dict[str, Any] = {
            "stream": f"outbox-t{n}",
            "subject_prefix": f"t{n}.outbox",
        }
        self.bucket_prefix = f"ob{n}"
        self.outbox = OutboxStream(servers, replicas=replicas, publish_timeout=60.0, **self.names).start()
        self.receiver = Receiver()
        self.dispatchers: list[ReceiverDispatch] = []

    def dispatcher(self, name: str, receiver: str = "r1", **options: Any) -> ReceiverDispatch:
        dispatch = ReceiverDispatch(
            self.servers,
            receiver,
            self.receiver.deliver_as(name),
            start_at="all",
            replicas=self.replicas,
            dispatcher_id=name,
            lease_ttl=LEASE_TTL,
            renew_interval=RENEW,
            ack_wait=self.ack_wait,
            bucket_prefix=self.bucket_prefix,
            **self.names,
            **options,
        )
        self.dispatchers.append(dispatch.start())
        return dispatch

    def publish(self, keys: list[str], topic: str = "all") -> list[bool]:
        return [self.outbox.publish(k, f'{{"key": "{k}"}}'.encode(), topic=topic).duplicate for k in keys]

    def wait_received(self, count: int, timeout: float = 90.0, *, raw: bool = False) -> None:
        """Wait for `count` distinct keys at the receiver (`raw`: `count` calls)."""
        seen = self.receiver.keys if raw else self.receiver.deduplicated
        wait_for(
            lambda: len(seen()) >= count,
            f"{count} keys at the receiver",
            timeout,
            detail=lambda: (
                self.receiver.keys()[-5:],
                [(d.dispatcher_id, d.stats()) for d in self.dispatchers],
            ),
        )

    def close(self) -> None:
        for dispatch in self.dispatchers:
            dispatch.stop(release=False)
        self.outbox.close()


def _keys(n: int, first: int = 0) -> list[str]:
    return [f"alert-{i % 7}:{i}" for i in range(first, first + n)]


@pytest.fixture(scope="module")
def server(nats_server: NatsServer) -> NatsServer:
    """A single NATS node with JetStream, shared by the module (each test has its own stream)."""
    return nats_server


@pytest.fixture
def run(server: NatsServer) -> Iterator[Run]:
    """An outbox on the single node, with short leases; its dispatchers stop at the end."""
    the_run = Run([server.url], 1, ack_wait=3.0)
    try:
        yield the_run
    finally:
        the_run.close()


def _stored(server: NatsServer, stream: str) -> int:
    for account in server.jsz().get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    raise AssertionError(f"no stream {stream}")


def test_the_same_key_published_twice_is_stored_once(run: Run, server: NatsServer) -> None:
    """A replayed transition (same key) is acknowledged as a duplicate with the first one's
    sequence and not stored again; a receiver filtered to one topic gets only that topic, once."""
    first = run.outbox.publish("a1:1", b'{"key": "a1:1"}', topic="ops")
    again = run.outbox.publish("a1:1", b'{"key": "a1:1"}', topic="ops")
    assert (first.duplicate, again.duplicate, again.sequence) == (False, True, first.sequence)
    assert run.publish(["a1:2", "a1:2", "a2:1"], topic="other") == [False, True, False]
    assert run.outbox.stats() == {"published": 5, "duplicates": 2}
    assert _stored(server, run.names["stream"]) == 3

    run.dispatcher("d1", receiver="ops", topics=["ops"])
    run.wait_received(1)
    run.dispatcher("d2", receiver="everything")
    run.wait_received(4, raw=True)
    assert Counter(run.receiver.keys()) == {"a1:1": 2, "a1:2": 1, "a2:1": 1}


def test_the_duplicate_window_must_not_shrink(run: Run, server: NatsServer) -> None:
    """Binding to an existing outbox stream whose dedup window is shorter than configured fails."""
    longer = OutboxStream([server.url], duplicate_window=3600.0, **run.names)
    with pytest.raises(ValueError, match="deduplicates over"):
        longer.start()


def test_two_dispatchers_hand_each_key_over_once_and_never_at_once(run: Run) -> None:
    """Two dispatchers for one receiver: one dispatches; when it hands the lease over (a rolling
    restart) the other continues; every key arrives once, in order, never two calls at a time."""
    dispatchers = [run.dispatcher("d1"), run.dispatcher("d2")]
    keys = _keys(120)
    run.publish(keys[:60])
    first = wait_for(lambda: next((d for d in dispatchers if d.dispatching()), None), "a dispatcher")
    run.wait_received(20)
    first.stop(release=True)
    run.publish(keys[60:])
    run.wait_received(120)
    assert run.receiver.keys() == keys
    assert {dispatcher for _, dispatcher, *_ in run.receiver.calls} == {"d1", "d2"}
    run.receiver.check_never_concurrent()
    # A dispatcher counts a delivery once its ack is confirmed, just after the receiver saw it.
    wait_for(lambda: sum(d.stats()["delivered"] for d in dispatchers) == 120, "120 acks confirmed")


def test_a_failed_bind_is_retried_instead_of_pulling_into_a_dead_inbox(
    run: Run, server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver's consumer vanishes (its leader's node gone) and the first bind after it fails
    too (the node still frozen): the next fetch binds again, and later notifications arrive. Kept
    after a failed bind, the old subscription stalled the dispatcher for good (seen after a NATS
    node restart: messages pending, no pull request waiting)."""
    dispatch = run.dispatcher("d1")
    run.publish(_keys(3))
    run.wait_received(3)
    failed = lose_the_consumer(monkeypatch, dispatch._pull, server.url)
    wait_for(lambda: bool(failed), "a failed bind")
    run.publish(_keys(3, first=3))
    run.wait_received(6, timeout=30.0)
    assert run.receiver.deduplicated() == _keys(6)


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_dispatcher_frozen_mid_delivery_is_taken_over(run: Run, phase: str) -> None:
    """A dispatcher stopped dead in a delivery (its loops frozen, as by SIGSTOP or kill -9): the
    other gets the lease and, after ack_wait, the message. Frozen before the receiver took the
    key, every key arrives exactly once; frozen after it (the window: delivered, not acked), that
    key arrives twice and the receiver's key dedup keeps it once."""
    keys = _keys(30)
    run.publish(keys)
    frozen, thaw = threading.Event(), threading.Event()
    victim: list[ReceiverDispatch] = []

    def freeze_loop() -> None:
        thaw.wait()

    def hook(when: str, dispatcher: str, key: str) -> None:
        if when == phase and key == keys[10] and not frozen.is_set():
            frozen.set()
            for loop in (victim[0]._bridge, victim[0].ownership._bridge):
                assert loop is not None
                loop.loop.call_soon_threadsafe(freeze_loop)
            thaw.wait()
            if phase == "before":
                raise ConnectionError("died before sending")  # this call never reached the receiver

    run.receiver.hook = hook
    victim.append(run.dispatcher("d1"))
    wait_for(victim[0].dispatching, "the first dispatcher to hold the lease")
    other = run.dispatcher("d2")
    try:
        wait_for(frozen.is_set, "the first dispatcher to freeze in the 11th delivery")
        wait_for(other.dispatching, "the other dispatcher to take the lease", 60.0)
        run.wait_received(30)
    finally:
        thaw.set()
    assert run.receiver.deduplicated() == keys
    assert Counter(run.receiver.keys())[keys[10]] == (1 if phase == "before" else 2)
    assert len(run.receiver.keys()) == (30 if phase == "before" else 31)
    assert other.stats()["delivered"] == 20
    run.receiver.check_never_concurrent()


# -- a three-node cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(nats_cluster: NatsCluster) -> NatsCluster:
    """A three-node NATS cluster for the module."""
    return nats_cluster


def test_a_frozen_nats_node_neither_loses_nor_duplicates_notifications(cluster: NatsCluster) -> None:
    """R3 stream and leases: the outbox stream's leader is SIGSTOPped while events (each published
    twice, as a replaying owner would) flow to two dispatchers; after an election every key
    reaches the receiver exactly once, with no two deliveries at a time."""
    run = Run(cluster.urls, 3)
    paused: NatsServer | None = None
    try:
        dispatchers = [run.dispatcher("d1"), run.dispatcher("d2")]
        wait_for(lambda: any(d.dispatching() for d in dispatchers), "a dispatcher")
        keys = _keys(90)
        run.publish(keys[:30])
        run.publish(keys[:30])
        run.wait_received(20)
        paused = cluster.stream_leader(run.names["stream"])
        paused.pause()
        publisher = threading.Thread(target=lambda: (run.publish(keys[30:]), run.publish(keys[30:])))
        publisher.start()
        run.wait_received(60, timeout=120.0)
        paused.resume()
        paused = None
        publisher.join(60.0)
        run.wait_received(90, timeout=120.0)
        assert run.receiver.keys() == keys
        assert run.outbox.stats()["duplicates"] >= 90
        run.receiver.check_never_concurrent()
    finally:
        if paused is not None:
            paused.resume()
        run.close()
        cluster.wait_healthy()
