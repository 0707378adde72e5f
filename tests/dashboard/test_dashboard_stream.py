"""The live stream: snapshots as server-sent events, updates on change, bounded, ended on close."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from alerts.api import AlertSnapshot
from ingest.app.dashboard import DashboardConfig
from ingest.app.dashboard.stream import LiveFeed
from tests.dashboard.support import T0, TOKEN, FakeClock, Stack, dashboard_registry, reading, serve_stack
from tests.helpers import wait_for

DEADLINE_S = 10.0


class EventReader:
    """A stream opened with http.client, read event by event."""

    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
        headers = {"Accept": "text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.connection.request("GET", "/api/v1/stream", headers=headers)
        self.response = self.connection.getresponse()

    def next_event(self) -> tuple[str, dict[str, Any]]:
        """The next event with data (comments and pings skipped)."""
        event, data = "message", b""
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            line = line.rstrip(b"\n")
            if line == b"":
                if data:
                    return event, orjson.loads(data)
                continue
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data += line[6:]

    def close(self) -> None:
        # The connection hands its socket to a response that reads until EOF: close both.
        self.response.close()
        self.connection.close()


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    config = DashboardConfig(stream_interval=timedelta(milliseconds=100), max_streams=2)
    with serve_stack(tmp_path, monkeypatch, config=config) as served:
        yield served


def test_first_event_is_a_snapshot_in_the_alert_api_shapes(stack: Stack) -> None:
    """The stream opens with an `update` holding what /api/v1/stations, alerts, compliance and silences say."""
    reader = EventReader(stack.port)
    try:
        assert reader.response.status == 200
        assert reader.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        event, snapshot = reader.next_event()
    finally:
        reader.close()
    assert event == "update"
    assert snapshot["alerts_enabled"] is True
    assert snapshot["problems"] == []
    assert snapshot["stations"] == stack.get_json("/api/v1/stations")["stations"]
    assert snapshot["alerts"] == stack.get_json("/api/v1/alerts")["alerts"]
    assert snapshot["silences"] == []
    compliance = stack.get_json("/api/v1/compliance")
    assert snapshot["compliance"] == {k: v for k, v in compliance.items() if k != "at"}
    classes = {s["id"]: (s["class"], s["compliant"]) for s in snapshot["stations"]}
    assert classes == {"st-river": ("IV", False), "st-lake": ("III", True), "st-evil": ("II", True)}
    assert {a["station_id"] for a in snapshot["alerts"]} == {"st-river"}


def test_a_change_is_pushed_as_a_new_update(stack: Stack) -> None:
    """New readings that change a class reach an open stream as the next update."""
    reader = EventReader(stack.port)
    try:
        _, first = reader.next_event()
        assert {s["id"]: s["class"] for s in first["stations"]}["st-river"] == "IV"
        stack.clock.now = T0 + timedelta(minutes=5)
        # Enough to move the day's mean (16 reports of 1.2 so far) past the class V limit of 2.0.
        stack.feed(reading("st-river", "nh3n", 20.0, T0) for _ in range(1))
        _, second = reader.next_event()
    finally:
        reader.close()
    assert {s["id"]: s["class"] for s in second["stations"]}["st-river"] == "劣V"
    assert second["at"] > first["at"]


def test_unchanged_state_sends_pings_only(stack: Stack) -> None:
    """Between changes the stream sends `: ping` comments, not repeated snapshots."""
    reader = EventReader(stack.port)
    try:
        reader.next_event()
        lines = [reader.response.readline() for _ in range(4)]
    finally:
        reader.close()
    assert lines == [b": ping\n", b"\n", b": ping\n", b"\n"]


def test_streams_are_bounded_and_a_closed_client_frees_its_slot(stack: Stack) -> None:
    """With max_streams open, another is answered 503; once a client goes away a new one is let in."""
    first, second = EventReader(stack.port), EventReader(stack.port)
    try:
        first.next_event()
        second.next_event()
        refused = stack.request("GET", "/api/v1/stream")
        assert refused.status == 503
        assert refused.json() == {"error": "too many open dashboard streams; retry later"}
        first.close()

        def free_slot() -> EventReader | None:
            reader = EventReader(stack.port)
            if reader.response.status == 200:
                return reader
            reader.close()
            return None

        third = wait_for(free_slot, "the slot of the closed stream to be freed", DEADLINE_S)
        assert third.next_event()[0] == "update"
        third.close()
    finally:
        first.close()
        second.close()


def test_close_ends_open_streams(stack: Stack) -> None:
    """Dashboard.close() (daemon shutdown) ends every open stream and refuses new ones."""
    reader = EventReader(stack.port)
    try:
        reader.next_event()
        stack.dashboard.close()
        with pytest.raises(EOFError):
            reader.next_event()
    finally:
        reader.close()
    assert stack.request("GET", "/api/v1/stream").status == 503


def test_without_the_alert_engine_stations_come_from_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon without the alert service still streams its stations, unclassified, and says so."""
    with serve_stack(tmp_path, monkeypatch, with_alerts=False) as bare:
        reader = EventReader(bare.port)
        try:
            _, snapshot = reader.next_event()
        finally:
            reader.close()
    assert snapshot["alerts_enabled"] is False
    assert snapshot["alerts"] is None
    assert [(s["id"], s["class"]) for s in snapshot["stations"]] == [
        ("st-river", None),
        ("st-lake", None),
        ("st-evil", None),
    ]


def test_an_alert_state_that_cannot_be_read_is_left_out_and_named() -> None:
    """When the alert state function raises, the snapshot has no alert parts and says why in `problems`."""

    def broken() -> AlertSnapshot:
        raise RuntimeError("the alert database is gone")

    feed = LiveFeed(dashboard_registry(), broken, FakeClock(), max_age=0.0)
    with capture_logs() as logs:
        snapshot = feed.snapshot()
    assert snapshot == {
        "alerts_enabled": True,
        "problems": ["the alert state could not be read"],
        "stations": None,
        "alerts": None,
        "compliance": None,
        "silences": None,
    }
    assert [e["event"] for e in logs] == ["dashboard_snapshot_failed"]
