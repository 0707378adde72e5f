"""`MqttHandoff`: the gateway's packets to the broker, QoS 1, durable at PUBACK.

paho-mqtt 2.x with its own network thread and reconnect machinery (a bare `loop()` does not
reconnect; DESIGN.md). `submit` does not wait for the broker: at most `max_unacked` messages are
handed to paho at a time, since paho silently loses QoS 1 messages past 65 535 unacknowledged; the
rest wait here, in order, and go out as PUBACKs free the window (the gateway bounds how many it
submits). While the broker is away paho keeps the window's messages and resends them on reconnect
(possibly twice: the daemon's processing is idempotent). `on_durable` runs at the PUBACK, on paho's
thread. A message the broker refuses (an MQTT 5 PUBACK reason of 0x80 or more, e.g. not
authorised) is counted and logged and never made durable.

A PUBACK means the broker holds the message for its subscribers: the daemon must already have
subscribed with its persistent session, or the broker drops what nobody subscribed to.

Example:
    {host: 127.0.0.1, port: 1883, protocol: "5", client_id: ecowatch-hj212-gateway, max_unacked: 1000}
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr

from config.types import StrictModel, TLSConfig
from ingest.sources.hj212_gateway import events
from ingest.sources.hj212_gateway.config import GatewayPublishConfig
from ingest.sources.mqtt import MQTTConfig

log = structlog.get_logger(__name__)

_QOS = 1


class GatewayMqttConfig(StrictModel):
    """The broker connection of `MqttHandoff`."""

    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, gt=0, lt=65536)
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    transport: Literal["tcp", "websockets"] = "tcp"
    client_id: str = Field("ecowatch-hj212-gateway", min_length=1, max_length=64)
    username: str | None = None
    password: SecretStr | None = None
    tls: TLSConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="Keepalive in seconds.")
    max_unacked: int = Field(1000, ge=1, le=65000, description="Messages handed to paho awaiting PUBACK.")
    reconnect_min_delay: timedelta = timedelta(milliseconds=500)
    reconnect_max_delay: timedelta = timedelta(seconds=30)

    @classmethod
    def from_settings(cls, mqtt_config: MQTTConfig, publish: GatewayPublishConfig) -> GatewayMqttConfig:
        """The daemon's broker, user and TLS, with the gateway's own client id and window."""
        return cls(
            host=mqtt_config.host,
            port=mqtt_config.port,
            protocol=mqtt_config.protocol,
            transport=mqtt_config.transport,
            client_id=publish.client_id,
            username=mqtt_config.username,
            password=mqtt_config.password,
            tls=mqtt_config.tls,
            keepalive=mqtt_config.keepalive,
            max_unacked=publish.max_unacked,
            reconnect_min_delay=mqtt_config.reconnect_min_delay,
            reconnect_max_delay=mqtt_config.reconnect_max_delay,
        )


_Message = tuple[str, bytes, Callable[[], None]]


class MqttHandoff:
    def __init__(self, options: GatewayMqttConfig) -> None:
        self.options = options
        self._lock = threading.Condition()
        self._waiting: deque[_Message] = deque()
        self._unacked = 0
        self._callbacks: dict[int, Callable[[], None]] = {}
        # PUBACKs that arrive between paho's publish() and our noting its mid (paho calls
        # on_publish holding its own lock, so ours cannot be held across publish()).
        self._early: dict[int, bool] = {}
        self._connected = threading.Event()
        self._closed = False
        self._pumping = False
        self.failed = 0
        v5 = options.protocol == "5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            transport=options.transport,
        )
        if options.username is not None:
            password = options.password.get_secret_value() if options.password else None
            self._client.username_pw_set(options.username, password)
        if options.tls is not None:
            tls = options.tls
            self._client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
            if tls.insecure_skip_verify:
                log.warning("mqtt_tls_verification_disabled", host=options.host)
                self._client.tls_insecure_set(True)
        self._client.reconnect_delay_set(
            max(1, round(options.reconnect_min_delay.total_seconds())),
            max(1, round(options.reconnect_max_delay.total_seconds())),
        )
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

    def start(self) -> None:
        """Start connecting in the background; paho retries until the broker answers."""
        self._client.connect_async(self.options.host, self.options.port, self.options.keepalive)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the MQTT handoff is closed")
            self._waiting.append((topic, payload, on_durable))
        self._pump()

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted message is acknowledged; False if some are left at the timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._unacked or self._waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to `timeout` s for outstanding PUBACKs, count the rest as failed, disconnect."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            lost = self._unacked + len(self._waiting)
            self._waiting.clear()
            self._callbacks.clear()
            self._unacked = 0
            self.failed += lost
        if lost:
            log.error("hj212_handoff_closed_with_pending", pending=lost, reason="no PUBACK before close")
        self._client.disconnect()
        self._client.loop_stop()
        events.handoff_pending(0)

    # --- the window --------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Move waiting messages into paho's window while it has room, one thread at a time.

        A single pumper keeps the order; the others only leave their change for it to see. paho
        holds its own lock while it calls on_publish, so ours is never held across publish().
        """
        with self._lock:
            if self._pumping:
                return
            self._pumping = True
        while True:
            with self._lock:
                if self._closed or not self._waiting or self._unacked >= self.options.max_unacked:
                    self._pumping = False
                    pending = self._unacked + len(self._waiting)
                    break
                topic, payload, on_durable = self._waiting.popleft()
                self._unacked += 1
            info = self._client.publish(topic, payload, qos=_QOS)
            # Without a connection paho keeps a QoS 1 message and sends it on reconnect (NO_CONN);
            # anything else means paho did not take it.
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.error("hj212_handoff_publish_failed", topic=topic, error=mqtt.error_string(info.rc))
                self._settle(None, ok=False)
                continue
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._callbacks[info.mid] = on_durable
            if early is not None:  # acknowledged before we noted its mid
                self._settle(on_durable, ok=early)
        events.handoff_pending(pending)

    def _settle(self, on_durable: Callable[[], None] | None, *, ok: bool) -> None:
        """One message left paho's window: free its slot and report it."""
        with self._lock:
            self._unacked = max(0, self._unacked - 1)
            if not ok:
                self.failed += 1
            self._lock.notify_all()
        if not ok:
            events.handoff_failed()
        elif on_durable is not None:
            on_durable()

    # --- paho callbacks (paho's thread) ------------------------------------------------------------
    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _properties: Any
    ) -> None:
        ok = not reason.is_failure
        if not ok:
            log.error("hj212_handoff_refused", mid=mid, reason_code=str(reason))
        with self._lock:
            on_durable = self._callbacks.pop(mid, None)
            if on_durable is None:
                if not self._closed:
                    self._early[mid] = ok  # the pumper settles it once it has the mid
                return
        self._settle(on_durable, ok=ok)
        self._pump()

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("hj212_handoff_connect_refused", host=self.options.host, reason_code=str(reason))
            return
        self._connected.set()
        log.info("hj212_handoff_connected", host=self.options.host, port=self.options.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        self._connected.clear()
        level = log.info if self._closed else log.warning
        level("hj212_handoff_disconnected", host=self.options.host, reason_code=str(reason))
