"""Publishers: where simulated messages go — an MQTT broker, or a file for replay.

`MqttPublisher` is the pipeline's one windowed publisher (`ingest.mqtt.WindowedPublisher`: MQTT 5
or 3.1.1, TCP or WebSockets, QoS 0 or 1, TLS, user and password), configured by `MqttOptions`
(`ingest.mqtt.PublisherConfig`). It bounds its unacknowledged window itself: paho silently loses
QoS 1 messages past 65 535 unacknowledged, so `publish` blocks while `max_unacked` messages await
their PUBACK, and `flush` waits for every ack. Messages still unacknowledged when the publisher
closes count as failed.

`FilePublisher` writes one message a line, `topic<TAB>payload`; a payload that is not
single-line UTF-8 text (HJ 212 packets end in CRLF; bad payloads are binary) is written as
`b64:` and its base64. `read_replay` reads such a file back.

Example:
    {host: 127.0.0.1, port: 8883, protocol: "5", qos: 1, client_id: ecowatch-sim, username: sim,
     tls: {ca_file: /etc/ssl/broker-ca.pem}, max_unacked: 1000}
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

from ingest.mqtt import PublisherConfig, WindowedPublisher

_B64_PREFIX = "b64:"

# The simulator's names for the pipeline's publisher and its config.
MqttOptions = PublisherConfig
MqttPublisher = WindowedPublisher


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
