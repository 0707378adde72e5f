"""`WindowedPublisher`: the one MQTT publisher, QoS 1 (or 0) with a bounded unacknowledged window.

Used by the HJ 212 gateway's hand-off, dead-letter replay and the simulator. paho-mqtt 2.x
silently loses QoS 1 messages past 65 535 unacknowledged (its message ids wrap and overwrite
queued messages; ARCHITECTURE.md, facts), so at most `max_unacked` messages are handed to paho at a time; the
rest wait here, in order, and go out as PUBACKs free the window. paho's own in-flight limit stays
at its default: raising it makes paho slower, as each PUBACK scans its in-flight list.

Two ways to hand messages over:
- `submit(topic, payload, on_durable)` never blocks (the gateway bounds what it submits);
  `on_durable` runs once the broker has acknowledged the message, on paho's thread, and never for
  a message the broker refuses (an MQTT 5 PUBACK reason of 0x80 or more, e.g. not authorised).
- `publish(topic, payload)` blocks while the window is full (the simulator, replay).

`start()` connects in the background (paho retries until the broker answers); `connect()` connects
now and raises if the broker is unreachable or refuses. While the broker is away paho keeps the
window's QoS 1 messages and resends them on reconnect (possibly twice: the daemon's processing is
idempotent). `flush` waits for every PUBACK; `close` waits up to its timeout, then counts what is
left as failed. `sent` and `failed` count messages; a `PublishObserver` sees the rest (connects,
refusals, the window's fill) to log or count it.

A PUBACK means the broker holds the message for its subscribers: a subscriber that should get it
must already have subscribed with a persistent session, or the broker drops what nobody wants.

Example:
    {host: 127.0.0.1, port: 8883, protocol: "5", qos: 1, client_id: ecowatch-sim, username: sim,
     tls: {ca_file: /etc/ssl/broker-ca.pem}, max_unacked: 1000}
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Literal, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, model_validator

from ingest.mqtt.connection import BrokerConnection, new_client

# Old field names (the simulator's `MqttOptions`) and their names now.
DEPRECATED_NAMES: Final = {
    "max_inflight": "max_unacked",
    "keepalive_s": "keepalive",
    "connect_timeout_s": "connect_timeout",
}


class PublisherConfig(BrokerConnection):
    """A broker connection, and how a `WindowedPublisher` publishes over it."""

    qos: Literal[0, 1] = Field(1, description="QoS of every publish; 0 is fire and forget.")
    max_unacked: int = Field(
        1000,
        ge=1,
        le=65000,
        description="Messages handed to paho awaiting their PUBACK; more wait in the publisher. "
        "paho loses QoS 1 messages past 65 535 unacknowledged.",
    )
    connect_timeout: timedelta = Field(
        timedelta(seconds=10), gt=timedelta(0), description="How long `connect()` waits for CONNACK."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Accept the old names, with a DeprecationWarning."""
        if not isinstance(data, dict) or not DEPRECATED_NAMES.keys() & data.keys():
            return data
        data = dict(data)
        for old, new in DEPRECATED_NAMES.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"give `{new}`, not both it and `{old}` (its deprecated name)")
            warnings.warn(f"`{old}` is deprecated; use `{new}`", DeprecationWarning, stacklevel=3)
            data[new] = data.pop(old)
        return data

    @classmethod
    def to(cls, broker: BrokerConnection, **overrides: Any) -> Self:
        """A publisher's config for `broker` (e.g. the daemon's `mqtt:` section), with `overrides`."""
        return cls.model_validate(broker.connection_fields() | overrides)


class PublishObserver:
    """What a publisher sees besides its counts; this base notes nothing (tools print their summary).

    Subclass it to log or count (the HJ 212 gateway's hand-off does). Its methods run on paho's
    thread or a submitter's and must not block.
    """

    def connected(self, config: BrokerConnection) -> None:
        """CONNACK with success."""

    def connect_refused(self, config: BrokerConnection, reason: str) -> None:
        """CONNACK with a failure (bad credentials, not authorised ...); paho tries again later."""

    def disconnected(self, config: BrokerConnection, reason: str, *, closing: bool) -> None:
        """The connection is gone; `closing` when the publisher itself is closing."""

    def refused(self, mid: int, reason: str) -> None:
        """The broker refused a message (MQTT 5 PUBACK reason >= 0x80); counted as failed."""

    def not_taken(self, topic: str, error: str) -> None:
        """paho did not take a message (e.g. QoS 0 without a connection); counted as failed."""

    def window(self, pending: int) -> None:
        """The messages submitted and not yet acknowledged, after a round of handing them to paho."""

    def closed_with_pending(self, count: int) -> None:
        """`close` gave up on `count` messages, now counted as failed."""


_Message = tuple[str, bytes, Callable[[], None] | None]


class WindowedPublisher:
    """Publishes to one broker over one connection; use as a context manager or call connect/close."""

    def __init__(self, config: PublisherConfig, observer: PublishObserver | None = None) -> None:
        self.config = config
        self.sent = 0
        self.failed = 0
        self._observer = observer if observer is not None else PublishObserver()
        self._lock = threading.Condition()
        self._waiting: deque[_Message] = deque()
        self._unacked = 0
        self._callbacks: dict[int, Callable[[], None] | None] = {}
        # PUBACKs that arrive between paho's publish() and our noting its mid (paho calls
        # on_publish holding its own lock, so ours cannot be held across publish()).
        self._early: dict[int, bool] = {}
        self._pumping = False
        self._closed = False
        self._connected = threading.Event()
        self._answered = threading.Event()  # a CONNACK came, accepting or refusing
        self._refusal: str | None = None
        self._client = new_client(config, mqtt.Client)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages submitted and not yet acknowledged (in paho's window or waiting for it)."""
        with self._lock:
            return self._unacked + len(self._waiting)

    # --- connecting ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background; paho retries until the broker answers."""
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self._client.loop_start()

    def connect(self) -> None:
        """Connect and start the network thread; OSError if unreachable, ConnectionError if refused."""
        config = self.config
        self._client.connect(config.host, config.port, config.keepalive)
        self._client.loop_start()
        timeout = config.connect_timeout.total_seconds()
        if not self._answered.wait(timeout) or self._refusal is not None:
            self._client.loop_stop()
            detail = self._refusal or f"no CONNACK within {timeout:g} s"
            raise ConnectionError(f"MQTT broker {config.host}:{config.port}: {detail}")

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- publishing ----------------------------------------------------------------------------------
    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None] | None = None) -> None:
        """Accept one message without blocking; thread-safe. RuntimeError once closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the publisher is closed")
            self._waiting.append((topic, payload, on_durable))
        self._pump()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message, first waiting while `max_unacked` await their acks."""
        with self._lock:
            while self._unacked + len(self._waiting) >= self.config.max_unacked and not self._closed:
                self._lock.wait()
        self.submit(topic, payload)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message is acknowledged; False if some are left at the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unacked or self._waiting:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to `timeout` s for outstanding PUBACKs, count the rest as failed, disconnect."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            lost = self._unacked + len(self._waiting)
            self._waiting.clear()
            self._callbacks.clear()
            self._unacked = 0
            self.failed += lost
            self._lock.notify_all()
        if lost:
            self._observer.closed_with_pending(lost)
        self._client.disconnect()
        self._client.loop_stop()
        self._observer.window(0)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # --- the window ----------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Move waiting messages into paho's window while it has room, one thread at a time.

        A single pumper keeps the order; the others only leave their change for it to see. paho
        holds its own lock while it calls on_publish, so ours is never held across publish().
        """
        with self._lock:
            if self._pumping:
                return
            self._pumping = True
        qos = self.config.qos
        while True:
            with self._lock:
                if self._closed or not self._waiting or self._unacked >= self.config.max_unacked:
                    self._pumping = False
                    pending = self._unacked + len(self._waiting)
                    break
                topic, payload, on_durable = self._waiting.popleft()
                self._unacked += 1
            info = self._client.publish(topic, payload, qos=qos)
            # Without a connection paho keeps a QoS 1 message and sends it on reconnect (NO_CONN);
            # anything else, or NO_CONN at QoS 0, means paho did not take it.
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not (
                info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0
            ):
                self._observer.not_taken(topic, mqtt.error_string(info.rc))
                self._settle(None, ok=False)
                continue
            with self._lock:
                if self._closed:  # close() counted it as failed
                    continue
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._callbacks[info.mid] = on_durable
            if early is not None:  # acknowledged before we noted its mid
                self._settle(on_durable, ok=early)
        self._observer.window(pending)

    def _settle(self, on_durable: Callable[[], None] | None, *, ok: bool) -> None:
        """One message left paho's window: free its slot, count it and report it."""
        with self._lock:
            self._unacked = max(0, self._unacked - 1)
            if ok:
                self.sent += 1
            else:
                self.failed += 1
            self._lock.notify_all()
        if ok and on_durable is not None:
            on_durable()

    # --- paho callbacks (paho's thread) --------------------------------------------------------------
    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _properties: Any
    ) -> None:
        # An MQTT 5 PUBACK may refuse a message (e.g. 0x87 not authorised); 3.1.1 acks carry no reason.
        ok = not reason.is_failure
        if not ok:
            self._observer.refused(mid, str(reason))
        with self._lock:
            if mid not in self._callbacks:
                if not self._closed:
                    self._early[mid] = ok  # the pumper settles it once it has the mid
                return
            on_durable = self._callbacks.pop(mid)
        self._settle(on_durable, ok=ok)
        self._pump()

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if reason.is_failure:
            self._refusal = f"connection refused: {reason}"
            self._answered.set()
            self._observer.connect_refused(self.config, str(reason))
            return
        self._refusal = None
        self._connected.set()
        self._answered.set()
        self._observer.connected(self.config)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        self._connected.clear()
        self._observer.disconnected(self.config, str(reason), closing=self._closed)
