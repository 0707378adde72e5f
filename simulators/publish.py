"""Publishers: where simulated messages go — an MQTT broker, or a file for replay.

`MqttPublisher` (paho-mqtt 2.x, MQTT 5 or 3.1.1, QoS 0 or 1, TLS, user and password) bounds its
unacknowledged window itself: paho silently loses QoS 1 messages past 65 535 unacknowledged (its
message ids wrap and overwrite queued messages), so `publish` blocks while `max_inflight` messages
await their PUBACK, and `flush` waits for every ack. paho's own in-flight limit stays at its
default: raising it makes paho slower, as each PUBACK scans its in-flight list (DESIGN.md).
Messages still unacknowledged when the publisher closes count as failed.

`FilePublisher` writes one message a line, `topic<TAB>payload`; a payload that is not
single-line UTF-8 text (HJ 212 packets end in CRLF; bad payloads are binary) is written as
`b64:` and its base64. `read_replay` reads such a file back.

Example:
    {host: 127.0.0.1, port: 8883, protocol: "5", qos: 1, client_id: ecowatch-sim, username: sim,
     tls: {ca_file: /etc/ssl/broker-ca.pem}, max_inflight: 1000}
"""

from __future__ import annotations

import base64
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr

from config.types import StrictModel, TLSConfig

_B64_PREFIX = "b64:"


class Publisher(Protocol):
    """A sink for messages that counts what it delivered and what it lost."""

    sent: int
    failed: int

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand one message over; may block while the unacknowledged window is full."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message is delivered; False if some are still pending at the timeout."""
        ...

    def close(self) -> None: ...


class MqttOptions(StrictModel):
    """How the simulator connects to its broker."""

    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    qos: Literal[0, 1] = Field(1, description="QoS of every publish.")
    client_id: str = Field(
        "", description="Client id; empty lets the broker assign one (MQTT 5) or paho pick one."
    )
    username: str | None = None
    password: SecretStr | None = None
    tls: TLSConfig | None = Field(None, description="TLS to the broker; plain TCP when absent.")
    max_inflight: int = Field(
        1000, ge=1, le=65000, description="Messages awaiting an ack before publish blocks."
    )
    keepalive_s: int = Field(60, ge=5, description="MQTT keepalive.")
    connect_timeout_s: float = Field(10.0, gt=0, description="How long to wait for CONNACK.")


class MqttPublisher:
    """Publishes to one broker over one connection; use as a context manager or call connect/close."""

    def __init__(self, options: MqttOptions) -> None:
        self.options = options
        self.sent = 0
        self.failed = 0
        self._pending = 0
        self._closed = False
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        v5 = options.protocol == "5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        if options.username is not None:
            password = options.password.get_secret_value() if options.password else None
            self._client.username_pw_set(options.username, password)
        if options.tls is not None:
            _set_tls(self._client, options.tls)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish

    def connect(self) -> None:
        """Connect and start the network thread; raises ConnectionError if the broker refuses."""
        self._client.connect(self.options.host, self.options.port, self.options.keepalive_s)
        self._client.loop_start()
        if not self._connected.wait(self.options.connect_timeout_s) or self._connect_error:
            self._client.loop_stop()
            detail = self._connect_error or f"no CONNACK within {self.options.connect_timeout_s} s"
            raise ConnectionError(f"MQTT broker {self.options.host}:{self.options.port}: {detail}")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message, first waiting while `max_inflight` await their acks."""
        with self._cond:
            while self._pending >= self.options.max_inflight and not self._closed:
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the publisher is closed")
            self._pending += 1
        info = self._client.publish(topic, payload, qos=self.options.qos)
        # QoS 1 without a connection stays queued in paho and goes out on reconnect; anything else is lost.
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.options.qos > 0
        ):
            self._settle(ok=False)

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to `timeout` s for outstanding acks, count the rest as failed, disconnect."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self.failed += self._pending
            self._pending = 0
            self._cond.notify_all()
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _settle(self, *, ok: bool) -> None:
        with self._cond:
            if self._pending == 0:  # already counted as failed by close()
                return
            self._pending -= 1
            if ok:
                self.sent += 1
            else:
                self.failed += 1
            self._cond.notify_all()

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if reason.is_failure:
            self._connect_error = f"connection refused: {reason}"
        self._connected.set()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reason: ReasonCode, _properties: Any
    ) -> None:
        # MQTT 5 PUBACK may refuse a message (e.g. 0x87 not authorised); 3.1.1 acks carry no reason.
        self._settle(ok=not reason.is_failure)


def _set_tls(client: mqtt.Client, tls: TLSConfig) -> None:
    client.tls_set(
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
    )
    if tls.insecure_skip_verify:
        client.tls_insecure_set(True)


class FilePublisher:
    """Writes `topic<TAB>payload` lines for replay; every line written counts as sent."""

    def __init__(self, target: Path | IO[str]) -> None:
        self.sent = 0
        self.failed = 0
        self._owned = isinstance(target, Path)
        self._fh: IO[str] = (
            target.open("w", encoding="utf-8", newline="\n") if isinstance(target, Path) else target
        )

    def publish(self, topic: str, payload: bytes) -> None:
        self._fh.write(f"{topic}\t{encode_line_payload(payload)}\n")
        self.sent += 1

    def flush(self, timeout: float | None = None) -> bool:  # noqa: ARG002 - a file write has nothing to await
        self._fh.flush()
        return True

    def close(self) -> None:
        self._fh.flush()
        if self._owned:
            self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def encode_line_payload(payload: bytes) -> str:
    """The payload as written on a replay line: text as is, anything else as `b64:` + base64."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith(_B64_PREFIX) or any(c in text for c in "\t\n\r"):
        return _B64_PREFIX + base64.b64encode(payload).decode("ascii")
    return text


def read_replay(path: Path) -> Iterator[tuple[str, bytes]]:
    """The (topic, payload) pairs of a file written by `FilePublisher`, in order."""
    with path.open(encoding="utf-8", newline="\n") as fh:
        for number, line in enumerate(fh, start=1):
            topic, sep, text = line.rstrip("\n").partition("\t")
            if not sep:
                raise ValueError(f"{path}:{number}: no TAB between topic and payload")
            if text.startswith(_B64_PREFIX):
                yield topic, base64.b64decode(text[len(_B64_PREFIX) :], validate=True)
            else:
                yield topic, text.encode("utf-8")
