"""The intake of cluster mode: station messages from the MQTT listener's store into the stations stream,
each acknowledged to the listener only after the stations stream stored it.

Why it exists. nats-server answers a station's QoS 1 PUBLISH (PUBACK) once the message is in its
own stream `$MQTT_msgs` (subject `$MQTT.msgs.<subject>`, interest retention: kept while a consumer
has not acknowledged it). It also publishes the message as a plain NATS message on `<subject>`,
and a stream capturing that subject stores it only if it has a leader at that moment: with the
stations stream's leader killed or cut off, readings the station saw acknowledged were lost (the
cluster proof lost 124-339 of them per run). So the stations stream does not capture the
listener's subjects; this intake moves the messages over:

    station ─QoS 1─▶ MQTT listener ─▶ $MQTT_msgs (R3, interest) ─ PUBACK to the station
                                          │ durable pull consumer `ecowatch-intake-e<n>`,
                                          ▼ filter $MQTT.msgs.ecowatch.v1.>
    MqttIntake (one worker at a time: lease `<prefix>-intake-*`; consumer `ecowatch-intake-e<n>`)
        publish `ecowatch.in.<key>.<district>.<station>.<kind>` (Nats-Msg-Id = $MQTT_msgs sequence
        and time) ─▶ stream ecowatch-stations (R3) ─ PubAck ─▶ ack the $MQTT_msgs message

No loss: a message leaves `$MQTT_msgs` only when every consumer interested in it acknowledged it,
and the intake acknowledges only after the stations stream's PubAck; whatever fails in between
(the stations stream without a leader, the intake killed, its node cut off) leaves the message
there, delivered again after `ack_wait`. The stream `$MQTT_msgs` is the MQTT listener's (its
name, subjects and retention are nats-server's, `server/mqtt.go`); the intake makes it first if
no MQTT client has connected yet, with the same configuration, so that its consumer exists before
the first station publishes (an interest stream drops what no consumer wants).

No duplicate: the id `mqtt-<sequence>-<time>` is the message's place in `$MQTT_msgs`, the same
on every delivery, and the stations stream drops a second publish of an id within its duplicate
window (10 min, `stations.DUPLICATE_WINDOW`). A station's own resend after a lost PUBACK is a
second message with another id; the readings store keeps a reading once.

Order: a station's messages reach the stations stream in the order the listener stored them,
which its alert engine relies on (a reading older than the newest it has is taken as a replay).
Messages of one subject are published one after another (each after the previous one's PubAck),
different stations concurrently; a batch that cannot be stored is retried as a whole, in place,
before anything newer is fetched, and kept while the lease is only late in renewing. A pull
consumer delivers what it lost (an answer gone with its node) or what expired in pieces only after
its ack deadline, behind newer messages: the cluster proofs once had a station's 08:00 report
stored before its 04:00 one that way. So each tenure of the lease, and each gap in the consumer's
delivery sequence, starts a consumer of its own, `ecowatch-intake-e<n>`, at the last one's ack
floor (`_take_over`), which delivers strictly in stream order.

QoS 0 messages are not stored by the listener and are not taken in: stations publish QoS 1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Self, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ingest.cluster.buckets import TRANSIENT, connect
from ingest.cluster.ownership import Ownership
from ingest.cluster.pull import DurablePull
from ingest.cluster.stations import DEFAULT_STREAM, intake_subjects
from ingest.wal.jetstream.bridge import LoopThread

log = structlog.get_logger(__name__)

T = TypeVar("T")

MSG_ID: Final = "Nats-Msg-Id"
# nats-server's MQTT message store (server/mqtt.go: mqttStreamName, mqttStreamSubjectPrefix).
MQTT_STREAM: Final = "$MQTT_msgs"
MQTT_SUBJECT_PREFIX: Final = "$MQTT.msgs."
INTAKE_FILTER: Final = f"{MQTT_SUBJECT_PREFIX}ecowatch.v1.>"
DURABLE: Final = "ecowatch-intake"
_STREAM_NAME_IN_USE: Final = 10058
_LEASE: Final = 0
# (MQTT topic, payload, why): where a message the stations stream refuses for good is kept.
Refused = Callable[[str, bytes, str], None]


_CONSUMER_NAME: Final = re.compile(rf"{DURABLE}(?:-e(\d+))?")


def consumer_tenure(name: str) -> int | None:
    """The tenure of an intake consumer's name (`ecowatch-intake-e<n>`; the unnumbered one of
    an earlier version counts as 0), None for another consumer."""
    match = _CONSUMER_NAME.fullmatch(name)
    if match is None:
        return None
    return int(match[1]) if match[1] else 0


async def intake_consumers(js: JetStreamContext) -> list[tuple[int, api.ConsumerInfo]]:
    """The intake's consumers on the listener's store, by tenure, oldest first (the last is current)."""
    found: list[tuple[int, api.ConsumerInfo]] = []
    for info in await js.consumers_info(MQTT_STREAM):
        tenure = consumer_tenure(info.name or "")
        if tenure is not None:
            found.append((tenure, info))
    return sorted(found, key=lambda pair: pair[0])


def _consumer_config(
    tenure: int, ack_wait: float, batch: int, previous: api.ConsumerInfo | None
) -> api.ConsumerConfig:
    """Tenure `tenure`'s consumer: from the previous one's ack floor on (all of the store without one)."""
    start: int | None = None
    if previous is not None:
        floor = previous.ack_floor.stream_seq if previous.ack_floor else 0
        start = floor + 1 if floor else previous.config.opt_start_seq
    return api.ConsumerConfig(
        durable_name=f"{DURABLE}-e{tenure}",
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start else api.DeliverPolicy.ALL,
        opt_start_seq=start,
        ack_wait=ack_wait,
        max_ack_pending=2 * batch,
        max_deliver=-1,
        filter_subject=INTAKE_FILTER,
    )


def _delivery(msg: Msg) -> int:
    """The consumer's delivery sequence of `msg` (each delivery, redeliveries too, takes the next)."""
    return msg.metadata.sequence.consumer


def intake_bucket_prefix(bucket_prefix: str) -> str:
    """The intake lease's buckets: `<prefix>-intake-leases` and `<prefix>-intake-workers`."""
    return f"{bucket_prefix}-intake"


def message_id(msg: Msg) -> str:
    """The message's place in `$MQTT_msgs`: the same on every delivery of it."""
    meta = msg.metadata
    return f"mqtt-{meta.sequence.stream}-{int(meta.timestamp.timestamp() * 1_000_000)}"


class MqttIntake:
    """Moves station messages from `$MQTT_msgs` to the stations stream while holding the intake lease."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        stream: str = DEFAULT_STREAM,
        replicas: int = 1,
        worker_id: str | None = None,
        lease_ttl: float = 5.0,
        renew_interval: float = 1.0,
        bucket_prefix: str = "ecowatch",
        batch: int = 500,
        ack_wait: float = 10.0,
        fetch_wait: float = 0.5,
        request_timeout: float = 2.0,
        subject_for: Callable[[str], str] | None = None,
        on_refused: Refused | None = None,
    ) -> None:
        """`subject_for`: the stations stream's subject for a listener's subject (`ecowatch.v1.…`);
        by default `stations.intake_subjects()` (keyed by station id). `on_refused(topic, payload,
        detail)`: keeps a message the stations stream refuses for good (JetStream's 400), which is
        then acknowledged; without it such a message is retried like any failure."""
        self.servers = list(servers)
        self._subject_for = subject_for or intake_subjects()
        self._on_refused = on_refused
        self._pull: DurablePull | None = None  # this tenure's consumer (`_take_over`)
        self._delivered = 0  # its consumer sequence of the last message fetched
        self._stream = stream
        self._replicas = replicas
        self._batch = batch
        self._ack_wait = ack_wait
        self._fetch_wait = fetch_wait
        self._timeout = request_timeout
        self.ownership = Ownership(
            servers,
            partitions=1,
            worker_id=worker_id,
            on_acquired=self._on_acquired,
            on_lost=self._on_lost,
            lease_ttl=lease_ttl,
            renew_interval=renew_interval,
            replicas=replicas,
            bucket_prefix=intake_bucket_prefix(bucket_prefix),
        )
        self.worker_id = self.ownership.worker_id
        self._lock = threading.Lock()
        self._counts = {"forwarded": 0, "duplicates": 0, "refused": 0, "retried_batches": 0, "batches": 0}
        self._running: tuple[concurrent.futures.Future[None], threading.Event] | None = None
        self._bridge: LoopThread | None = None
        self.state = "starting"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Connect, make sure `$MQTT_msgs` and the intake's consumer exist, compete for the lease."""
        self._bridge = LoopThread(f"intake-{self.worker_id}")
        try:
            self._bridge.run(self._open())
            self.ownership.start()
        except BaseException:
            self._close_bridge()
            raise
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop taking in (the batch in flight is stored and acked first) and leave the lease."""
        self.ownership.stop(release=release)
        self._close_bridge()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def intaking(self) -> bool:
        """This process holds the intake lease and its loop runs."""
        running = self._running
        return running is not None and not running[1].is_set() and bool(self.ownership.owned())

    def stats(self) -> dict[str, int | str]:
        """forwarded (stored in the stations stream and acked), duplicates (of them, ids the stream
        had already), refused (the stream refused them for good: handed to `on_refused`), batches,
        retried_batches (a publish failed: retried in place)."""
        with self._lock:
            return {**self._counts, "intaking": int(self.intaking()), "state": self.state}

    # -- the lease's callbacks ----------------------------------------------------------------

    def _on_acquired(self, _partition: int, epoch: int) -> None:
        bridge = self._bridge
        if bridge is None:
            return
        stop = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self._run(epoch, stop), bridge.loop)
        self._running = (future, stop)
        log.info("intake_started", worker=self.worker_id, epoch=epoch)

    def _on_lost(self, _partition: int) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        future, stop = running
        stop.set()
        try:
            future.result()
        except (concurrent.futures.CancelledError, RuntimeError):
            pass  # the loop closed under it
        except Exception:
            log.exception("intake_loop_failed", worker=self.worker_id)
        log.info("intake_stopped", worker=self.worker_id)

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self, epoch: int, stop: threading.Event) -> None:
        while not stop.is_set() and not await self._take_over(epoch):
            await asyncio.sleep(0.5)  # the consumers could not be read or made: again
        while not stop.is_set():
            try:
                await self._step(epoch, stop)
            except Exception:  # the loop must outlive any one batch: what failed is delivered again
                log.exception("intake_step_failed", worker=self.worker_id)
                await asyncio.sleep(1.0)

    async def _step(self, epoch: int, stop: threading.Event) -> None:
        self.state = "waiting_for_lease"
        if not self.ownership.holds(_LEASE, epoch):
            await asyncio.sleep(0.1)
            return
        self.state = "fetching"
        msgs = await self._fetch()
        if not msgs:
            return
        if not self._in_sequence(msgs):
            # Deliveries were lost (a fetch's answer with its node, a pull to a consumer leader that
            # moved): they come back only after ack_wait, behind newer ones. Start a consumer at
            # the ack floor instead, which delivers them first; these go unacked, to come again.
            log.warning("intake_delivery_gap", expected=self._delivered + 1, got=_delivery(msgs[0]))
            self.state = "taking_over"
            await self._take_over(epoch)
            return
        self.state = "forwarding"
        if await self._forward(msgs, epoch, stop):
            self.state = "acking"
            for msg in msgs:
                await self._attempt(msg.ack())

    def _in_sequence(self, msgs: list[Msg]) -> bool:
        """The batch continues the consumer's deliveries without a gap (and remembers where it ends)."""
        sequences = [_delivery(m) for m in msgs]
        if sequences != list(range(self._delivered + 1, self._delivered + 1 + len(msgs))):
            return False
        self._delivered = sequences[-1]
        return True

    async def _take_over(self, epoch: int) -> bool:
        """A consumer of its own, `ecowatch-intake-e<n>` (n one above the newest), made to deliver from
        the newest one's ack floor on, in stream order; then the older ones deleted. True once in
        place. At every tenure's start, and after a gap in the deliveries.

        A consumer's redeliveries come in the order their ack deadlines pass, not in stream order
        (a batch whose in-progress acks got through only in part, its node frozen, expired in
        pieces), so a next tenure on the same consumer could store a station's newer message before
        an older one. A fresh consumer from the floor delivers strictly in order; what the last
        tenure stored after the floor is published again under the same ids, which the stations
        stream drops. The new consumer is made before the old ones go, so the listener's store
        (interest retention) never lacks a consumer interested in those messages."""
        try:
            previous = await intake_consumers(self._js)
            tenure = previous[-1][0] + 1 if previous else 1
            config = _consumer_config(
                tenure, self._ack_wait, self._batch, previous[-1][1] if previous else None
            )
            pull = DurablePull(MQTT_STREAM, config)
            await pull.bind(self._js)
        except (*TRANSIENT, nats.errors.Error) as exc:
            log.warning("intake_take_over_failed", worker=self.worker_id, epoch=epoch, error=repr(exc))
            return False
        self._pull, self._delivered = pull, 0
        for _tenure, info in previous:
            if info.name != config.durable_name:
                await self._attempt(self._js.delete_consumer(MQTT_STREAM, info.name))
        log.info("intake_consumer_taken_over", consumer=config.durable_name, start=config.opt_start_seq)
        return True

    async def _forward(self, msgs: list[Msg], epoch: int, stop: threading.Event) -> bool:
        """Store every message of the batch in the stations stream (per subject in order), retrying
        what failed until it is stored; False if the lease was lost first (nothing acked)."""
        by_subject: dict[str, list[Msg]] = {}
        for msg in msgs:
            by_subject.setdefault(msg.subject, []).append(msg)
        pending = list(by_subject.values())
        keepalive = asyncio.ensure_future(self._keep_in_progress(msgs))
        delay = 0.2
        try:
            while True:
                results = await asyncio.gather(*(self._publish_in_order(chain) for chain in pending))
                errors = [error for _done, error in results if error is not None]
                pending = [
                    chain[done:]
                    for chain, (done, _e) in zip(pending, results, strict=True)
                    if done < len(chain)
                ]
                with self._lock:
                    self._counts["retried_batches" if pending else "batches"] += 1
                if not pending:
                    return True
                log.warning(
                    "intake_publish_failed",
                    waiting=sum(map(len, pending)),
                    error=repr(errors[0]),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                # A renewal late past its deadline: keep the batch (publishing nothing) until it lands
                # or the lease is lost for good (`stop`); dropping it would let newer messages pass.
                while not self.ownership.holds(_LEASE, epoch):
                    if stop.is_set():
                        return False
                    await asyncio.sleep(0.1)
                if stop.is_set():
                    return False
        finally:
            keepalive.cancel()

    async def _publish_in_order(self, chain: list[Msg]) -> tuple[int, Exception | None]:
        """Publish `chain` one after another: how many were stored before the first failure, and it."""
        for done, msg in enumerate(chain):
            subject = self._subject_for(msg.subject.removeprefix(MQTT_SUBJECT_PREFIX))
            try:
                ack = await self._js.publish(
                    subject,
                    msg.data,
                    timeout=self._timeout,
                    stream=self._stream,
                    headers={MSG_ID: message_id(msg)},
                )
            except nats.js.errors.BadRequestError as exc:
                if not self._keep_refused(msg, exc):
                    return done, exc
                continue
            except (*TRANSIENT, nats.errors.Error) as exc:  # retried in place: nothing newer is fetched
                return done, exc
            with self._lock:
                self._counts["forwarded"] += 1
                self._counts["duplicates"] += bool(ack.duplicate)
        return len(chain), None

    def _keep_refused(self, msg: Msg, exc: nats.js.errors.BadRequestError) -> bool:
        """Hand a refused message to `on_refused` (then it counts as moved); False if there is none
        or it failed (the message is retried)."""
        if self._on_refused is None:
            return False
        topic = msg.subject.removeprefix(MQTT_SUBJECT_PREFIX).replace(".", "/")
        try:
            self._on_refused(topic, msg.data, f"stations stream refused it: {exc.description}")
        except Exception:
            log.exception("intake_refused_not_kept", topic=topic)
            return False
        log.warning("intake_refused", topic=topic, error=exc.description)
        with self._lock:
            self._counts["refused"] += 1
        return True

    async def _keep_in_progress(self, msgs: list[Msg]) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            for msg in msgs:
                await self._attempt(msg.in_progress())

    # -- the connection ------------------------------------------------------------------------

    async def _open(self) -> None:
        self._nc: Client = await connect(self.servers, f"ecowatch-intake-{self.worker_id}", self._timeout)
        self._js: JetStreamContext = self._nc.jetstream(timeout=self._timeout)
        try:
            await self._ensure_mqtt_stream()
            if not await intake_consumers(self._js):
                # Interest from the first start on: the listener's store keeps what no consumer wants
                # for no time at all. The first holder's tenure starts from here.
                await self._js.add_consumer(
                    MQTT_STREAM, _consumer_config(0, self._ack_wait, self._batch, None)
                )
        except BaseException:
            await self._nc.close()
            raise

    async def _ensure_mqtt_stream(self) -> None:
        config = api.StreamConfig(
            name=MQTT_STREAM,
            subjects=[f"{MQTT_SUBJECT_PREFIX}>"],
            retention=api.RetentionPolicy.INTEREST,
            storage=api.StorageType.FILE,
            num_replicas=self._replicas,
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise  # made by the listener (its own replicas): used as it is

    async def _fetch(self) -> list[Msg]:
        if self._pull is None:
            return []
        return await self._pull.fetch(self._js, self._batch, self._fetch_wait)

    async def _attempt(self, call: Coroutine[Any, Any, T]) -> T | None:
        try:
            return await call
        except nats.errors.Error as exc:
            log.debug("intake_request_failed", error=repr(exc))
            return None

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
