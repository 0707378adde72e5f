"""`MQTTSource`: subscribes, logs every message, acknowledges it once durable; supervises the connection.

Each message is submitted to the group committer of the raw write-ahead log; `on_durable` (the
committer's thread, after the fsync) writes the PUBACKs of the whole group in one write. Tokens
carry the connection's generation: acks from an older connection are not sent on a newer one,
where the id may name another message (the broker redelivers those and the log dedups).

Supervision: connect, then run the receive loop (`receive.pump`) until the connection drops;
reconnect with capped exponential backoff and full jitter (so a fleet of daemons does not stampede
a restarted broker); resubscribe on every connect; log every connect and disconnect with its
reason code. paho's own reconnect machinery is off, since we drive its loop ourselves.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode

from ingest import telemetry
from ingest.mqtt import new_client
from ingest.mqtt.paho_internals import BufferedClient, puback
from ingest.records import encode_message
from ingest.sources.mqtt.config import MQTTConfig
from ingest.sources.mqtt.receive import pump
from ingest.topics import TopicTemplate
from ingest.wal import GroupCommitter

log = structlog.get_logger("ingest.sources.mqtt")

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
            puback(mid)
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
                rc = self._round()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if self._connected.is_set():
                    attempt = 0
            if self._stop.is_set():
                break
            # paho (or _round) has already called on_disconnect with the reason.
            attempt += 1
            self._stop.wait(self._backoff(attempt))
        if self._before_disconnect is not None:
            self._before_disconnect()
        if self._connected.is_set():
            # DISCONNECT after the acks the flush wrote; closing the wrapper writes out what is left.
            self._client.disconnect()
            self._client.loop_write()
        self._flush_received()

    def _round(self) -> MQTTErrorCode:
        try:
            rc = pump(self._client, timeout=0.5)
        except (OSError, ValueError) as exc:
            # paho did not see it: report the loss as its on_disconnect would; the next connect
            # closes the socket.
            self._on_disconnect(self._client, None, None, f"socket error: {exc}", None)
            rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
        self._flush_received()
        return rc

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
        self._client.connect(
            config.host,
            config.port,
            keepalive=config.keepalive,
            clean_start=config.clean_start if config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=config.connect_properties(),
        )

    def _make_client(self) -> BufferedClient:
        client = new_client(
            self._config,
            BufferedClient,
            clean_session=self._config.clean_start,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        # Bounds what paho itself queues of our outgoing packets; we publish nothing, so acks only.
        client.max_queued_messages_set(0)
        return client
