"""The notification outbox of cluster mode: one stream deduplicated by key, one dispatcher per receiver.

Bytes in, bytes out: an event is its idempotency key (`AlertEvent.key`, `<alert_id>:<n>`) and
its JSON; this module knows nothing of alerts (the composition root plugs alerts' notifiers in
as `deliver`).

    partition owner ──publish(key, json)──▶ stream <outbox> (R3, Nats-Msg-Id = key, dedup window)
                                               │ durable pull consumer per receiver
                                               ▼ (max_ack_pending 1, explicit ack)
    ReceiverDispatch(receiver) ── lease `<prefix>-outbox-<receiver>` (ingest.cluster.Ownership) ──
        fetch one → holds(lease)? → deliver(key, payload) → True: ack · False: nak(retry_delay)

`OutboxStream.publish` stores an event with header `Nats-Msg-Id: <key>`. JetStream remembers
the ids it stored for the stream's `duplicate_window` and answers a second publish of the same id
with the first one's sequence and `duplicate: true`, storing nothing: a partition's new owner
replaying from its checkpoint, or a publisher retrying after a lost PubAck, stores each
transition once. The window (default 10 min) must cover the longest time between the first
publish of a transition and a replay that can publish it again: the checkpoint interval, plus a
worker's failover (lease_ttl + 2 × renew_interval, ~7 s by default), plus the replay itself.

`ReceiverDispatch` runs, for one receiver, on every worker; a lease (`Ownership` with one
partition in the buckets `<prefix>-outbox-<receiver>-*`, so the leases of `ingest.cluster`
with their epochs and deadlines) lets one of them dispatch at a time. The holder reads the
receiver's durable consumer (`outbox-<receiver>`, filtered to topics or all of them) one message
at a time (`max_ack_pending = 1`: also keeps the receiver's events in order, and a failing one
holds the receiver as the single-node outbox does), checks `holds()` right before delivering
(a lost lease: the message is handed back with a nak, undelivered, and the loop stops), calls
`deliver`, and acks only after it returned True (the ack is retried until confirmed; it is sent
even if the lease was lost meanwhile: the message *was* delivered). While `deliver` runs, an
in-progress ack every ack_wait / 3 keeps the message with this dispatcher.

Exactly once, and where the window is:
- No loss: a message leaves the consumer only by an ack, sent after `deliver` returned True;
  anything else (a crash, a lost lease, a refusal, a frozen server) leaves it for the next fetch
  or the next holder. The stream keeps messages for `max_age` (7 days): the bound on how long a
  receiver may refuse before its notifications are dropped.
- No duplicate in the stream: the key dedup above, within `duplicate_window`.
- Never two dispatchers at once, never twice: one lease holder at a time, one message out at a
  time per consumer, an acked message is never handed out again. The holder of a message that
  stopped (killed, partitioned, paused) gets no in-progress acks through, so after `ack_wait`
  the consumer hands the message to the next fetch (the next holder's, once its lease came).
- The window: a message that the receiver got but whose ack did not reach the server within
  `ack_wait` is delivered again: the dispatcher died (or froze longer than ack_wait) between
  `deliver` and the ack, or the receiver took it but the answer was lost (deliver said False).
  The same key arrives again, and the receiver drops it by key (alerts' receivers dedupe by
  the idempotency key). Likewise a transition published again after `duplicate_window`.
  So: at-least-once delivery + the stream's dedup + the receivers' key dedup = exactly one
  notification per transition at the receiver.

Takeover time: a dead dispatcher's lease moves within lease_ttl + 2 × renew_interval; its
in-flight message (if any) reaches the next holder after `ack_wait` (default 30 s, above a
JetStream leader election so that a dispatcher riding one out keeps its message).

Usage:
    outbox = OutboxStream(servers, replicas=3).start()
    outbox.publish(event.key, json.dumps(event.to_json()).encode())
    dispatch = ReceiverDispatch(servers, "wecom-ops", notifier.deliver, replicas=3)
    dispatch.start()   # on every worker; one of them dispatches at a time
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Self, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ingest.cluster.buckets import TRANSIENT, connect
from ingest.cluster.ownership import Ownership
from ingest.cluster.pull import DurablePull
from ingest.wal.jetstream.bridge import LoopThread

log = structlog.get_logger(__name__)

T = TypeVar("T")
Deliver = Callable[[str, bytes], bool]

MSG_ID: Final = "Nats-Msg-Id"
DEFAULT_STREAM: Final = "ecowatch-outbox"
DEFAULT_SUBJECT_PREFIX: Final = "ecowatch.outbox"
# Long enough for a partition's failover and replay from its checkpoint (see the module docstring).
DEFAULT_DUPLICATE_WINDOW: Final = 600.0
DEFAULT_MAX_AGE: Final = 7 * 24 * 3600.0
_NAME: Final = re.compile(r"^[-_A-Za-z0-9]{1,32}$")
_STREAM_NAME_IN_USE: Final = 10058
# The single partition of a receiver's lease.
_LEASE: Final = 0


def _check_name(what: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: must match {_NAME.pattern}")
    return value


def _check_key(key: str) -> str:
    if not key or len(key) > 256 or any(c in key for c in "\r\n\0"):
        raise ValueError(f"invalid idempotency key {key!r}: 1-256 characters, no line breaks")
    return key


@dataclass(frozen=True, slots=True)
class Published:
    """Where an event is stored, and whether this publish was a duplicate of an earlier one."""

    sequence: int
    duplicate: bool


class OutboxStream:
    """Publishes events to the outbox stream, deduplicated by their idempotency key."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        replicas: int = 1,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
        max_age: float = DEFAULT_MAX_AGE,
        publish_timeout: float = 30.0,
        request_timeout: float = 2.0,
    ) -> None:
        if not 0 < duplicate_window <= max_age:
            raise ValueError("duplicate_window must be positive and at most max_age")
        self.servers = list(servers)
        self.stream = _check_name("stream", stream)
        self.subject_prefix = subject_prefix
        self._replicas = replicas
        self.duplicate_window = duplicate_window
        self._max_age = max_age
        self._publish_timeout = publish_timeout
        self._timeout = request_timeout
        self._lock = threading.Lock()
        self.published = 0
        self.duplicates = 0
        self._bridge: LoopThread | None = None

    def start(self) -> Self:
        """Connect and create the stream (or bind to it: its dedup window must not be shorter)."""
        self._bridge = LoopThread.opened(f"outbox-{self.stream}", self._open())
        return self

    def publish(self, key: str, payload: bytes, *, topic: str = "all") -> Published:
        """Store `payload` under `key` (once per key within the window), on `<prefix>.<topic>`.

        Retries through leader elections for `publish_timeout` with the same id, so a retry after
        a lost PubAck is a duplicate, not a second copy; then raises the last error.
        """
        if self._bridge is None:
            raise RuntimeError("OutboxStream.publish before start")
        subject = f"{self.subject_prefix}.{_check_name('topic', topic)}"
        ack = self._bridge.run(self._publish(subject, _check_key(key), payload))
        with self._lock:
            self.published += 1
            self.duplicates += bool(ack.duplicate)
        if ack.duplicate:
            log.info("outbox_duplicate", key=key, sequence=ack.seq)
        return Published(ack.seq, bool(ack.duplicate))

    def stats(self) -> dict[str, int]:
        """Publishes and, of them, duplicates the stream refused to store again."""
        with self._lock:
            return {"published": self.published, "duplicates": self.duplicates}

    def close(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            bridge.run(self._nc.close())
        finally:
            bridge.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-outbox-{self.stream}", self._timeout)
        self._js: JetStreamContext = self._nc.jetstream(timeout=self._timeout)
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self._replicas,
            duplicate_window=self.duplicate_window,
            max_age=self._max_age,
        )
        try:
            try:
                await self._js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
                info = await self._js.stream_info(self.stream)
                if info.config.duplicate_window < self.duplicate_window:
                    raise ValueError(
                        f"stream {self.stream} deduplicates over {info.config.duplicate_window} s, "
                        f"less than the {self.duplicate_window} s configured"
                    ) from exc
        except BaseException:
            await self._nc.close()
            raise

    async def _publish(self, subject: str, key: str, payload: bytes) -> api.PubAck:
        deadline = time.monotonic() + self._publish_timeout
        while True:
            try:
                return await self._js.publish(
                    subject, payload, timeout=self._timeout, stream=self.stream, headers={MSG_ID: key}
                )
            except TRANSIENT as exc:
                if time.monotonic() >= deadline:
                    raise
                log.debug("outbox_publish_retry", key=key, error=repr(exc))
                await asyncio.sleep(0.2)


class ReceiverDispatch:
    """Delivers one receiver's messages from the outbox stream while this process holds its lease."""

    def __init__(
        self,
        servers: Sequence[str],
        receiver: str,
        deliver: Deliver,
        *,
        topics: Sequence[str] | None = None,
        start_at: Literal["all", "new"] = "new",
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        replicas: int = 1,
        dispatcher_id: str | None = None,
        lease_ttl: float = 5.0,
        renew_interval: float = 1.0,
        ack_wait: float = 30.0,
        retry_delay: float = 1.0,
        fetch_wait: float = 0.5,
        request_timeout: float = 2.0,
        bucket_prefix: str = "ecowatch",
    ) -> None:
        self.receiver = _check_name("receiver", receiver)
        self.servers = list(servers)
        self._deliver = deliver
        self._stream = _check_name("stream", stream)
        self._subjects = [f"{subject_prefix}.{_check_name('topic', t)}" for t in topics or ()] or [
            f"{subject_prefix}.>"
        ]
        self._replicas = replicas
        self._ack_wait = ack_wait
        self._retry_delay = retry_delay
        self._fetch_wait = fetch_wait
        self._timeout = request_timeout
        self.durable = f"outbox-{receiver}"
        single = len(self._subjects) == 1
        self._pull = DurablePull(
            self._stream,
            api.ConsumerConfig(
                durable_name=self.durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL if start_at == "all" else api.DeliverPolicy.NEW,
                ack_wait=ack_wait,
                max_ack_pending=1,
                max_deliver=-1,
                filter_subject=self._subjects[0] if single else None,
                filter_subjects=None if single else self._subjects,
            ),
        )
        self.ownership = Ownership(
            servers,
            partitions=1,
            worker_id=dispatcher_id,
            on_acquired=self._on_acquired,
            on_lost=self._on_lost,
            lease_ttl=lease_ttl,
            renew_interval=renew_interval,
            replicas=replicas,
            bucket_prefix=f"{bucket_prefix}-outbox-{receiver}",
        )
        self.dispatcher_id = self.ownership.worker_id
        self._lock = threading.Lock()
        self._counts = {"delivered": 0, "refused": 0, "handed_back": 0, "ack_failed": 0}
        self._running: tuple[threading.Thread, threading.Event] | None = None
        self._bridge: LoopThread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Connect, create (or bind) the receiver's durable consumer, then compete for the lease."""
        self._bridge = LoopThread(f"dispatch-{self.receiver}-{self.dispatcher_id}")
        try:
            self._bridge.run(self._open())
            self.ownership.start()
        except BaseException:
            self._close_bridge()
            raise
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop dispatching (the message in `deliver` finishes and is acked) and leave the lease:
        handed over at once with `release`, left to expire without it (as a crash would)."""
        self.ownership.stop(release=release)
        self._close_bridge()

    def dispatching(self) -> bool:
        """This process holds the receiver's lease and its dispatch loop runs."""
        running = self._running
        return running is not None and not running[1].is_set() and bool(self.ownership.owned())

    def stats(self) -> dict[str, int]:
        """delivered (acked), refused (deliver said False or raised), handed_back (lease lost
        before delivering), ack_failed (delivered, ack unconfirmed: it will come again)."""
        with self._lock:
            return dict(self._counts)

    # -- the lease's callbacks (on Ownership's callbacks thread, one at a time) ---------------

    def _on_acquired(self, _partition: int, epoch: int) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._dispatch, args=(epoch, stop), name=f"dispatch-{self.receiver}-e{epoch}", daemon=True
        )
        self._running = (thread, stop)
        log.info(
            "outbox_dispatch_started", receiver=self.receiver, dispatcher=self.dispatcher_id, epoch=epoch
        )
        thread.start()

    def _on_lost(self, _partition: int) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        thread, stop = running
        stop.set()
        thread.join()  # the delivery in flight ends (and is acked) before the lease is written free
        log.info("outbox_dispatch_stopped", receiver=self.receiver, dispatcher=self.dispatcher_id)

    # -- the dispatch loop (a thread of its own: `deliver` may block) --------------------------

    def _dispatch(self, epoch: int, stop: threading.Event) -> None:
        bridge = self._bridge
        assert bridge is not None
        while not stop.is_set():
            if not self.ownership.holds(_LEASE, epoch):
                # A renewal still in flight past the deadline: not ours until it lands. A lease
                # really lost sets `stop` (`_on_lost`); one renewed late goes on at this epoch.
                stop.wait(0.1)
                continue
            try:
                msg = bridge.run(self._fetch())
            except RuntimeError:  # the loop is closing
                return
            if msg is None:
                continue
            if stop.is_set() or not self.ownership.holds(_LEASE, epoch):
                bridge.run(self._settle(msg.nak()))
                self._count("handed_back")
                continue
            key = (msg.headers or {}).get(MSG_ID, "")
            ok = self._call_deliver(bridge, msg, key)
            if ok:
                acked = bridge.run(self._ack(msg))
                self._count("delivered" if acked else "ack_failed")
                if not acked:
                    log.error("outbox_ack_unconfirmed", receiver=self.receiver, key=key)
            else:
                self._count("refused")
                bridge.run(self._settle(msg.nak(delay=self._retry_delay)))

    def _call_deliver(self, bridge: LoopThread, msg: Msg, key: str) -> bool:
        keepalive = asyncio.run_coroutine_threadsafe(self._in_progress(msg), bridge.loop)
        try:
            return bool(self._deliver(key, msg.data))
        except Exception:
            log.exception("outbox_deliver_failed", receiver=self.receiver, key=key)
            return False
        finally:
            keepalive.cancel()

    # -- on the loop ---------------------------------------------------------------------------

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-{self.durable}", self._timeout)
        self._js: JetStreamContext = self._nc.jetstream(timeout=self._timeout)
        try:
            await self._pull.bind(self._js)
        except BaseException:
            await self._nc.close()
            raise

    async def _fetch(self) -> Msg | None:
        msgs = await self._pull.fetch(self._js, 1, self._fetch_wait)
        return msgs[0] if msgs else None

    async def _ack(self, msg: Msg) -> bool:
        """Ack, confirmed by the server; retried (through an election) until ack_wait ran out."""
        deadline = time.monotonic() + self._ack_wait
        while True:
            try:
                await msg.ack_sync(timeout=self._timeout)
                return True
            except nats.errors.MsgAlreadyAckdError:
                return True
            except (*TRANSIENT, nats.errors.Error) as exc:
                if time.monotonic() >= deadline:
                    return False
                log.debug("outbox_ack_retry", error=repr(exc))
                await asyncio.sleep(0.2)

    async def _in_progress(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            await self._attempt(msg.in_progress())

    async def _settle(self, call: Coroutine[Any, Any, None]) -> None:
        await self._attempt(call)  # a lost nak costs ack_wait, nothing else

    async def _attempt(self, call: Coroutine[Any, Any, T]) -> T | None:
        try:
            return await call
        except nats.errors.Error as exc:
            log.debug("outbox_request_failed", error=repr(exc))
            return None

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _close_bridge(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            bridge.run(self._attempt(self._nc.close()))
        except AttributeError:  # never connected
            pass
        finally:
            bridge.stop()
