"""Test support for the notifiers and the outbox: a scripted HTTP receiver, events, a fake clock.

`FakeReceiver` is a real HTTP server on 127.0.0.1 that records every request and answers from
a script (status, headers, body, a delay, or a dropped connection), then from its default. It
can be stopped and started again on the same port, to be "down" (connection refused) for a while;
stopping also closes the connections clients keep alive, as a server going down does.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts.events import EVENTS_TABLE_DDL, AlertEvent, StationInfo
from tests.helpers import wait_for

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (timeouts)
    drop: bool = False  # close the connection without an answer

    @classmethod
    def json(cls, status: int, document: Any, **kwargs: Any) -> Answer:
        return cls(status, json.dumps(document).encode(), {"Content-Type": "application/json"}, **kwargs)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    answer: Answer

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.answer.status < 300 and not self.answer.drop

    def event_keys(self) -> list[str]:
        """The event keys a webhook body carries (one event, or a digest's list)."""
        document = self.json()
        return list(document["keys"]) if document.get("type") == "digest" else [document["key"]]


class FakeReceiver:
    def __init__(self, default: Answer | None = None, port: int = 0) -> None:
        self.default = default or Answer()
        self.requests: list[Recorded] = []
        self.responder: Callable[[Recorded], Answer | None] | None = None
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order, then with the default again."""
        with self._lock:
            self._script.extend(answers)

    def start(self) -> FakeReceiver:
        self._closing.clear()
        self._server = ThreadingHTTPServer((HOST, self._port), self._handler())
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop answering: the port then refuses connections (until `start` again)."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # kept-alive connections would otherwise go on being served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Poll until `count` requests arrived; fail after `timeout` seconds."""
        wait_for(
            lambda: len(self.requests) >= count,
            f"{count} requests",
            timeout,
            detail=lambda: f"{len(self.requests)} arrived",
            interval=0.005,
        )
        return list(self.requests)

    def accepted_keys(self) -> list[str]:
        """Event keys of every accepted webhook request, repeats included."""
        return [key for r in list(self.requests) if r.accepted for key in r.event_keys()]

    def _next_answer(self, recorded: Recorded) -> Answer:
        if self.responder is not None:
            chosen = self.responder(recorded)
            if chosen is not None:
                return chosen
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits out a delayed ACK (40 ms)

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                probe = Recorded("POST", url.path, query, dict(self.headers.items()), body, Answer())
                answer = receiver._next_answer(probe)
                with receiver._lock:
                    receiver.requests.append(
                        Recorded("POST", url.path, query, dict(self.headers.items()), body, answer)
                    )
                if answer.delay:
                    receiver._closing.wait(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client timed out and left: nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


STATION = StationInfo(
    id="cq-jl-001",
    name="嘉陵江 磁器口",
    district="沙坪坝区",
    basin="长江",
    river="嘉陵江",
    water_body="river",
    target_class="III",
)


def make_event(
    n: int,
    *,
    status: str = "firing",
    severity: str = "warning",
    silenced: bool = False,
    labels: dict[str, str] | None = None,
    at: datetime = T0,
    seq: int = 1,
    alert: str | None = None,
) -> AlertEvent:
    """Notification `n`: alert `a<n>` (or `alert`), key `<alert>:<seq>`."""
    alert_id = alert or f"a{n}"
    return AlertEvent(
        key=f"{alert_id}:{seq}",
        alert_id=alert_id,
        rule="exceedance",
        kind="exceedance",
        status=status,  # type: ignore[arg-type]
        severity=severity,
        labels=labels
        if labels is not None
        else {"rule": "exceedance", "station_id": STATION.id, "parameter": "nh3n"},
        annotations={"summary": f"{STATION.name}：氨氮超过III类标准 (#{n})"},
        starts_at=at,
        event_at=at,
        ends_at=at + timedelta(minutes=5) if status == "resolved" else None,
        station=STATION,
        parameter="nh3n",
        water_class="V",
        target_class="III",
        primary_pollutants=("nh3n",),
        values={"nh3n": 1.8 + n / 100},
        silenced=silenced,
        links={"alert": f"http://127.0.0.1:8080/alerts/{alert_id}"},
    )


def insert_events(db_path: Path, events: Iterable[AlertEvent], created: datetime = T0) -> None:
    """Write events as the alert engine does: rows of `notification_events`."""
    created_ns = int(created.timestamp()) * 1_000_000_000
    with sqlite3.connect(db_path) as conn:
        conn.execute(EVENTS_TABLE_DDL)
        conn.executemany(
            "INSERT INTO notification_events (key, created_ns, event) VALUES (?, ?, ?)",
            [(e.key, created_ns, json.dumps(e.to_json())) for e in events],
        )
    conn.close()
