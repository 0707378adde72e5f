"""The MQTT source: paho-mqtt 2.x, QoS 1, a persistent session, manual acknowledgement.

Each message is appended to the raw write-ahead log through the group committer; its PUBACK is
sent only once the log is fsynced, so an acknowledged message survives SIGKILL. When the log is
full the committer holds messages unacknowledged: the broker stops sending past its in-flight
window (MQTT 5 Receive Maximum, which we set) and keeps the rest queued, until there is room.

The connection is supervised here rather than by paho's loop_forever: we reconnect with capped
exponential backoff and full jitter (so a fleet of daemons does not stampede a restarted broker),
resubscribe on every connect, and log every connect and disconnect with its reason code.

The receive path is the daemon's ceiling (DESIGN.md), so we drive paho ourselves: paho reads a
packet in three or more small recv calls and runs one select per packet; our socket wrapper reads
up to 256 KiB per recv and our loop selects only when that buffer is empty, which halves the CPU
spent per message. Acknowledgements of a whole group commit leave as one write, from the
committer's thread, through the same wrapper (under its lock, so they never interleave with
paho's packets; paho keeps no state for received QoS 1 messages, so a PUBACK written by us is
the same as one written by `Client.ack`).

Example:
    mqtt:
      host: broker.example.org
      port: 8883
      protocol: "5"
      client_id: ecowatch-1
      username: ecowatch
      password: "${ECOWATCH_MQTT_PASSWORD}"
      tls: {ca_file: /etc/ecowatch/ca.pem}
      subscriptions:
        - {topic: "ecowatch/v1/{district}/{station_id}/{kind}", format: json,
           tags: {kind: {values: [water, hydro, status]}}}
        - {topic: "hj212/{mn}", format: hj212}
"""

from __future__ import annotations

import random
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, SecretStr, field_validator, model_validator

from config.types import StrictModel, TLSConfig
from ingest import telemetry
from ingest.records import encode_message
from ingest.topics import Allowed, TopicTemplate
from ingest.wal import GroupCommitter

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

log = structlog.get_logger(__name__)


# Placeholders that do not become free tags: the registry bounds the station's names and its
# district is the registry's (the topic's value is not stored).
REGISTRY_PLACEHOLDERS: Final = frozenset({"station_id", "mn", "district"})


class TagValues(StrictModel):
    """The values one topic placeholder may take: a list, or a pattern the whole value matches."""

    values: tuple[str, ...] | None = Field(None, min_length=1, description="The allowed values.")
    pattern: str | None = Field(
        None, max_length=200, description="A regular expression the whole value must match."
    )

    @model_validator(mode="after")
    def _one(self) -> TagValues:
        if (self.values is None) == (self.pattern is None):
            raise ValueError("give exactly one of `values` and `pattern`")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: {exc}") from None
        return self

    def allowed(self) -> Allowed:
        return frozenset(self.values) if self.values is not None else re.compile(self.pattern or "")


class SubscriptionConfig(StrictModel):
    topic: str = Field(description="Topic template; `{name}` levels become tags.")
    format: Literal["json", "senml", "hj212"] = Field("json", description="Decoder for these payloads.")
    qos: Literal[0, 1] = 1
    tags: dict[str, TagValues] = Field(
        default_factory=dict,
        description="The values each placeholder that becomes a tag may take (every placeholder but "
        "station_id, mn and district, which the registry bounds). Topics with other values are "
        "dead-lettered as bad_topic, so publishers cannot create unbounded series.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        TopicTemplate.parse(value)
        return value

    @model_validator(mode="after")
    def _bounded_tags(self) -> SubscriptionConfig:
        template = self.template()  # also refuses values for names that are not placeholders
        free = [p for p in template.placeholders if p not in REGISTRY_PLACEHOLDERS and p not in self.tags]
        if free:
            raise ValueError(
                f"topic {self.topic!r}: placeholders {free} become tags; give their allowed values "
                "under `tags` (e.g. tags: {kind: {values: [water, hydro]}})"
            )
        return self

    def template(self) -> TopicTemplate:
        return TopicTemplate.parse(self.topic, {name: rule.allowed() for name, rule in self.tags.items()})


DEFAULT_SUBSCRIPTIONS = (
    SubscriptionConfig(
        topic="ecowatch/v1/{district}/{station_id}/{kind}",
        format="json",
        tags={"kind": TagValues(values=("water", "hydro", "status"))},
    ),
    SubscriptionConfig(topic="ecowatch/senml/{station_id}", format="senml"),
    SubscriptionConfig(topic="hj212/{mn}", format="hj212"),
)


class MQTTConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, gt=0, lt=65536)
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    transport: Literal["tcp", "websockets"] = "tcp"
    client_id: str = Field(
        "ecowatch", min_length=1, max_length=64, description="Fixed, for the persistent session."
    )
    clean_start: bool = Field(
        False, description="Start a new session on connect (loses what the broker queued)."
    )
    session_expiry: timedelta = Field(
        timedelta(days=7),
        description="MQTT 5 session expiry: how long the broker keeps our queue while we are away.",
    )
    keepalive: int = Field(30, ge=5, le=3600, description="Keepalive in seconds.")
    receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum: unacknowledged messages the broker may send us.",
    )
    username: str | None = None
    password: SecretStr | None = None
    tls: TLSConfig | None = None
    reconnect_min_delay: timedelta = timedelta(milliseconds=500)
    reconnect_max_delay: timedelta = timedelta(seconds=30)
    subscriptions: tuple[SubscriptionConfig, ...] = DEFAULT_SUBSCRIPTIONS

    @model_validator(mode="after")
    def _checks(self) -> MQTTConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        if not self.subscriptions:
            raise ValueError("at least one subscription is needed")
        return self


# (connection generation, message id, qos): acks from an older connection are not sent on a newer
# one, where the id may name another message; the broker redelivers those and the log dedups.
AckToken = tuple[int, int, int]


class MQTTSource:
    def __init__(
        self,
        config: MQTTConfig,
        committer: GroupCommitter[AckToken],
        before_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._committer = committer
        # Called on stop after reading has ceased and before DISCONNECT: the daemon flushes the
        # group committer there so the last logged messages are acknowledged, not redelivered.
        self._before_disconnect = before_disconnect
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._generation = 0
        self._received = 0  # since the last count into telemetry, which takes a lock per call
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._supervise, name="mqtt", daemon=True)
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def on_durable(self, tokens: list[AckToken]) -> None:
        """Called by the group committer once the records are fsynced: acknowledge them, in one write."""
        sock = self._client.buffered
        generation = sock.generation if sock is not None else -1
        acks = [
            _puback(mid)
            for token_generation, mid, qos in tokens
            if qos == 1 and token_generation == generation
        ]
        if acks and sock is not None:
            try:
                sock.send(b"".join(acks))
            except OSError as exc:
                # The connection is gone; the broker redelivers and the log dedups downstream.
                log.debug("mqtt_acks_not_sent", count=len(acks), error=str(exc))
        telemetry.MESSAGES_LOGGED.inc(len(tokens))

    # --- paho callbacks (paho's thread) -----------------------------------------------------------
    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._received += 1
        record = encode_message(message.topic.encode("utf-8", "replace"), message.payload, time.time_ns())
        self._committer.submit(record, (self._generation, message.mid, message.qos))

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt_connect_refused", reason_code=str(reason), host=self._config.host)
            return
        self._generation += 1
        if self._client.buffered is not None:
            self._client.buffered.generation = self._generation
        topics: list[tuple[str, int]] = [
            (TopicTemplate.parse(s.topic).subscription, s.qos) for s in self._config.subscriptions
        ]
        client.subscribe(topics)
        self._connected.set()
        telemetry.MQTT_CONNECTED.set(1)
        telemetry.MQTT_CONNECTS.inc()
        log.info(
            "mqtt_connected",
            host=self._config.host,
            port=self._config.port,
            reason_code=str(reason),
            session_present=flags.session_present,
            protocol=self._config.protocol,
        )

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        telemetry.MQTT_CONNECTED.set(0)
        telemetry.MQTT_DISCONNECTS.labels(str(reason)).inc()
        level = log.info if self._stop.is_set() else log.warning
        level("mqtt_disconnected", host=self._config.host, reason_code=str(reason))

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("mqtt_subscribe_refused", reason_codes=failed)

    # --- connection supervision -------------------------------------------------------------------
    def _supervise(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._connect()
            except (OSError, ssl.SSLError) as exc:
                log.warning(
                    "mqtt_connect_failed", host=self._config.host, port=self._config.port, error=str(exc)
                )
                attempt += 1
                self._stop.wait(self._backoff(attempt))
                continue
            while not self._stop.is_set():
                rc = self._pump(timeout=0.5)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                if self._connected.is_set():
                    attempt = 0
            if self._stop.is_set():
                break
            # paho has already called on_disconnect with the reason.
            attempt += 1
            self._stop.wait(self._backoff(attempt))
        if self._before_disconnect is not None:
            self._before_disconnect()
        if self._connected.is_set():
            # DISCONNECT after the acks the flush wrote; closing the wrapper writes out what is left.
            self._client.disconnect()
            self._client.loop_write()
        self._flush_received()

    def _pump(self, timeout: float) -> MQTTErrorCode:
        """One round of network work: wait for data, handle every buffered packet, write, keepalive."""
        client = self._client
        sock = client.buffered
        if sock is None or client.socket() is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if not sock.pending():
            writing = [sock] if client.want_write() or sock.wants_write() else []
            try:
                readable, writable, _ = select.select([sock], writing, [], timeout)
                if writable:
                    sock.flush()
            except (OSError, ValueError) as exc:
                # paho did not see it: report the loss as its on_disconnect would; the next
                # connect closes the socket.
                self._on_disconnect(client, None, None, f"socket error: {exc}", None)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        else:
            readable = [sock]
        if readable:
            for _ in range(_PACKETS_PER_ROUND):
                rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._flush_received()
                    return rc
                if not sock.pending():
                    break
            self._flush_received()
        if client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def _flush_received(self) -> None:
        if self._received:
            telemetry.MESSAGES_RECEIVED.inc(self._received)
            self._received = 0

    def _backoff(self, attempt: int) -> float:
        low = self._config.reconnect_min_delay.total_seconds()
        cap = self._config.reconnect_max_delay.total_seconds()
        return self._rng.uniform(low, min(cap, low * 2 ** min(attempt, 30)))

    def _connect(self) -> None:
        config = self._config
        properties = None
        if config.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(config.session_expiry.total_seconds())
            properties.ReceiveMaximum = config.receive_maximum
        self._client.connect(
            config.host,
            config.port,
            keepalive=config.keepalive,
            clean_start=config.clean_start if config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )

    def _make_client(self) -> _Client:
        config = self._config
        v5 = config.protocol == "5"
        client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=None if v5 else config.clean_start,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            transport=config.transport,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        if config.tls is not None:
            tls = config.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
            if tls.insecure_skip_verify:
                log.warning("mqtt_tls_verification_disabled", host=config.host)
                client.tls_insecure_set(True)
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        # Bounds what paho itself queues of our outgoing packets; we publish nothing, so acks only.
        client.max_queued_messages_set(0)
        return client


# Read this much per recv: a few hundred queued messages, so a backlog drains with few syscalls.
_RECV_BYTES: Final = 256 * 1024
# Packets handled per round before writing and keepalive get their turn.
_PACKETS_PER_ROUND: Final = 2000
# Closing: how long the last writes and the wait for the broker's side to close may take.
_CLOSE_TIMEOUT_S: Final = 1.0
_PUBACK_HEADER: Final = bytes((0x40, 0x02))  # PUBACK, remaining length 2: success, no properties


def _puback(mid: int) -> bytes:
    return _PUBACK_HEADER + mid.to_bytes(2, "big")


class BufferedSocket:
    """A paho `SocketLike` that reads in big chunks and serialises writes from two threads.

    `recv(n)` serves from a buffer filled by one large recv of the real socket; `pending()` tells
    paho (and our loop) that bytes are buffered, as an SSL socket does. `send` is thread-safe and
    never short: what the kernel does not take yet is kept, in order, and written by `flush`
    (our loop selects for writability while `wants_write()`); so paho's packets and our acks
    never interleave mid-packet.
    """

    def __init__(self, sock: SocketLike) -> None:
        self._sock = sock
        self._inbox = b""
        self._read_at = 0
        self._outbox = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        # The connection generation whose acks may be written here (set on CONNACK).
        self.generation = -1

    def recv(self, size: int) -> bytes:
        inbox, start = self._inbox, self._read_at
        available = len(inbox) - start
        if not available:
            data = self._sock.recv(_RECV_BYTES)
            if len(data) <= size:
                return data
            self._inbox, self._read_at = data, size
            return data[:size]
        if size >= available:
            self._inbox, self._read_at = b"", 0
            return inbox[start:] if start else inbox
        self._read_at = start + size
        return inbox[start : start + size]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._inbox) - self._read_at + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        with self._lock:
            if self._closed:
                raise OSError("socket closed")
            self._outbox += data
            self._flush_locked()
        return len(data)

    def wants_write(self) -> bool:
        return bool(self._outbox)

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        while self._outbox:
            try:
                sent = self._sock.send(self._outbox)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            if not sent:
                return  # paho's websocket wrapper: frame partly out, call again when writable
            del self._outbox[:sent]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            # Last acks and DISCONNECT: a short blocking attempt, then give up (the broker
            # redelivers what we did not acknowledge).
            try:
                self._sock.setblocking(True)
                settimeout = getattr(self._sock, "settimeout", None)
                if settimeout is not None:
                    settimeout(_CLOSE_TIMEOUT_S)
                self._flush_locked()
                self._linger()
            except OSError:
                pass
            self._outbox.clear()
        self._sock.close()

    def _linger(self) -> None:
        """Half-close, then read (and drop) until the broker closes its side.

        Closing a socket with unread data in it (the broker keeps publishing until it reads our
        DISCONNECT) sends a TCP reset instead of a FIN, and a broker that sees the reset first
        drops the acks and the DISCONNECT still unread in its buffer: the last messages logged
        before a clean stop would come again after the restart.
        """
        shutdown = getattr(self._sock, "shutdown", None)
        if shutdown is None:  # paho's websocket wrapper
            return
        shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _CLOSE_TIMEOUT_S
        while time.monotonic() < deadline and self._sock.recv(_RECV_BYTES):
            pass

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class _Client(mqtt.Client):
    """paho's client with its socket wrapped in a `BufferedSocket` (see the module docstring)."""

    buffered: BufferedSocket | None = None

    def _create_socket(self) -> SocketLike:
        self.buffered = BufferedSocket(super()._create_socket())
        return self.buffered
