"""The outbox dispatcher with a fake clock: routing, verdicts, retries, budgets, the API."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from alerts.notify_config import NotifyConfig
from alerts.outbox import NotificationDispatcher
from ingest.routes import BadRequest, Request
from tests.alerts.notifiers.fake_receiver import (
    T0,
    Answer,
    FakeClock,
    FakeReceiver,
    insert_events,
    make_event,
)

SECRET = "webhook-secret-of-32-bytes-12345"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver that accepts everything until told otherwise."""
    server = FakeReceiver().start()
    yield server
    server.stop()


def _hook(receiver: FakeReceiver, name: str = "hook", **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": f"{receiver.url}/{name}", "secret": SECRET, **extra}


def _dispatcher(
    tmp_path: Path, receivers: list[dict[str, Any]], clock: FakeClock, **notify: Any
) -> NotificationDispatcher:
    config = NotifyConfig.model_validate({"receivers": receivers, **notify})
    return NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, rng=random.Random(7))


def _states(dispatcher: NotificationDispatcher) -> list[tuple[str, str, int]]:
    return [(d["key"], d["state"], d["attempts"]) for d in dispatcher.deliveries()]


def test_starts_on_an_empty_database_and_creates_the_tables(tmp_path: Path) -> None:
    """The dispatcher can start before the engine: it creates notification_events and its own tables."""
    dispatcher = _dispatcher(tmp_path, [], FakeClock())
    dispatcher.stop(1.0)

    with sqlite3.connect(tmp_path / "alerts.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"notification_events", "deliveries", "outbox_watermark", "firing_alerts"} <= tables


def test_each_event_is_routed_once_and_delivered(tmp_path: Path, receiver: FakeReceiver) -> None:
    """New events become one delivery per receiver, are sent once, and later rounds send nothing more."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(3)])

    dispatcher.run_once(clock())
    dispatcher.run_once(clock.advance(60))

    assert [r.header("webhook-id") for r in receiver.requests] == ["a0:1", "a1:1", "a2:1"]
    assert _states(dispatcher) == [
        ("a0:1", "delivered", 1),
        ("a1:1", "delivered", 1),
        ("a2:1", "delivered", 1),
    ]
    assert dispatcher.stats()["hook"] | {"last_error": None} == {
        "type": "webhook",
        "pending": 0,
        "delivered": 3,
        "failed": 0,
        "skipped": 0,
        "firing": 0,
        "failing": False,
        "last_error": None,
        "last_error_at": None,
    }
    dispatcher.stop(1.0)


def test_silenced_events_are_recorded_as_skipped_and_not_sent(tmp_path: Path, receiver: FakeReceiver) -> None:
    """A silenced event gets a `skipped` delivery and no request."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(1, silenced=True), make_event(2)])

    dispatcher.run_once(clock())

    assert [r.header("webhook-id") for r in receiver.requests] == ["a2:1"]
    assert _states(dispatcher) == [("a1:1", "skipped", 0), ("a2:1", "delivered", 1)]
    dispatcher.stop(1.0)


def test_5xx_is_retried_exactly_to_the_attempt_budget_then_failed_loudly(
    tmp_path: Path, receiver: FakeReceiver
) -> None:
    """With max_attempts 4 a receiver answering 503 gets exactly 4 attempts; then failed, logged at error."""
    receiver.default = Answer(503, b"maintenance")
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock, retry={"max_attempts": 4})
    insert_events(tmp_path / "alerts.db", [make_event(1)])

    with capture_logs() as logs:
        for _ in range(10):
            dispatcher.run_once(clock.advance(600))  # past any backoff (max_delay 5 min)

    assert len(receiver.requests) == 4
    assert {r.header("webhook-id") for r in receiver.requests} == {"a1:1"}
    assert _states(dispatcher) == [("a1:1", "failed", 4)]
    failed = [e for e in logs if e["event"] == "notification_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error"
    assert failed[0]["keys"] == ["a1:1"]
    assert failed[0]["attempts"] == 4
    stats = dispatcher.stats()["hook"]
    assert (stats["failed"], stats["pending"]) == (1, 0)
    assert stats["last_error"] == "unavailable: HTTP 503: maintenance"
    dispatcher.stop(1.0)


def test_retries_until_accepted_with_the_same_idempotency_key(tmp_path: Path, receiver: FakeReceiver) -> None:
    """500, 502, then 200: three attempts carrying the same webhook-id, then delivered."""
    receiver.script(Answer(500, b"boom"), Answer(502, b"bad gateway"))
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(1)])

    for _ in range(5):
        dispatcher.run_once(clock.advance(600))

    assert [r.answer.status for r in receiver.requests] == [500, 502, 200]
    assert {r.header("webhook-id") for r in receiver.requests} == {"a1:1"}
    assert _states(dispatcher) == [("a1:1", "delivered", 3)]
    dispatcher.stop(1.0)


def test_retry_after_is_honoured_over_a_shorter_backoff(tmp_path: Path, receiver: FakeReceiver) -> None:
    """429 with Retry-After: 120 holds the receiver 120 s even though the backoff cap is 10 s."""
    receiver.script(Answer(429, b"slow down", {"Retry-After": "120"}))
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path, [_hook(receiver)], clock, retry={"initial_delay": "PT1S", "max_delay": "PT10S"}
    )
    insert_events(tmp_path / "alerts.db", [make_event(1)])

    dispatcher.run_once(clock())
    for _ in range(11):
        dispatcher.run_once(clock.advance(10))  # up to +110 s
    assert len(receiver.requests) == 1
    dispatcher.run_once(clock.advance(11))  # +121 s

    assert len(receiver.requests) == 2
    assert _states(dispatcher) == [("a1:1", "delivered", 2)]
    dispatcher.stop(1.0)


def test_timeouts_are_retried(tmp_path: Path, receiver: FakeReceiver) -> None:
    """Two answers slower than the timeout count as two retryable failures; the third attempt lands."""
    receiver.script(Answer(200, b"late", delay=1.0), Answer(200, b"late", delay=1.0))
    clock = FakeClock()
    config = NotifyConfig.model_validate({"receivers": [_hook(receiver)]})
    dispatcher = NotificationDispatcher(config, tmp_path / "alerts.db", clock=clock, http_timeout=0.2)
    insert_events(tmp_path / "alerts.db", [make_event(1)])

    with capture_logs() as logs:
        for _ in range(4):
            dispatcher.run_once(clock.advance(600))

    assert len(receiver.requests) == 3
    assert _states(dispatcher) == [("a1:1", "delivered", 3)]
    assert [e["reason"] for e in logs if e["event"] == "receiver_failing"] == ["timeout"]
    dispatcher.stop(1.0)


def test_final_4xx_is_failed_at_once_and_does_not_hold_the_others(
    tmp_path: Path, receiver: FakeReceiver
) -> None:
    """A 400 fails that delivery after one attempt, visible in stats and the API; the next events still go."""
    receiver.script(Answer(400, b"schema mismatch"))
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(3)])

    with capture_logs() as logs:
        dispatcher.run_once(clock())

    assert len(receiver.requests) == 3
    assert _states(dispatcher) == [("a0:1", "failed", 1), ("a1:1", "delivered", 1), ("a2:1", "delivered", 1)]
    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert (failed["log_level"], failed["final"], failed["reason"]) == ("error", True, "rejected")
    status, body = dispatcher.routes()[("GET", "/api/v1/notifications")](
        Request("GET", "/api/v1/notifications", {"state": ["failed"]}, None, {})
    )
    assert status == 200
    (row,) = body["notifications"]
    assert (row["key"], row["receiver"], row["last_error"]) == (
        "a0:1",
        "hook",
        "rejected: HTTP 400: schema mismatch",
    )
    assert body["receivers"]["hook"]["failed"] == 1
    dispatcher.stop(1.0)


def test_a_receiver_that_is_down_is_probed_once_per_backoff(tmp_path: Path, receiver: FakeReceiver) -> None:
    """Twenty pending events to a failing receiver cost one request per backoff, not twenty."""
    receiver.default = Answer(503, b"")
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(20)])

    dispatcher.run_once(clock())
    assert len(receiver.requests) == 1
    dispatcher.run_once(clock.advance(600))

    assert len(receiver.requests) == 2
    assert {r.header("webhook-id") for r in receiver.requests} == {"a0:1"}  # oldest first, order kept
    assert dispatcher.stats()["hook"]["pending"] == 20
    dispatcher.stop(1.0)


def test_max_age_fails_what_has_been_failing_too_long(tmp_path: Path, receiver: FakeReceiver) -> None:
    """With max_age 1 h, a delivery still failing an hour after its event is marked failed."""
    receiver.default = Answer(503, b"")
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock, retry={"max_age": "PT1H"})
    insert_events(tmp_path / "alerts.db", [make_event(1)], created=T0)

    for _ in range(11):
        dispatcher.run_once(clock.advance(300))  # +55 min
    assert _states(dispatcher)[0][1] == "pending"
    dispatcher.run_once(clock.advance(400))

    assert _states(dispatcher)[0][1] == "failed"
    dispatcher.stop(1.0)


def test_firing_then_resolved_arrive_in_order_after_an_outage(tmp_path: Path, receiver: FakeReceiver) -> None:
    """An alert's firing and resolved events reach the receiver in event order after it comes back."""
    receiver.script(Answer(503, b""), Answer(503, b""))
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    insert_events(tmp_path / "alerts.db", [make_event(1, seq=1), make_event(1, seq=2, status="resolved")])

    for _ in range(5):
        dispatcher.run_once(clock.advance(600))

    accepted = [r.json()["status"] for r in receiver.requests if r.accepted]
    assert accepted == ["firing", "resolved"]
    dispatcher.stop(1.0)


def test_unreadable_event_is_logged_and_passed(tmp_path: Path, receiver: FakeReceiver) -> None:
    """A row the engine wrote that is not an AlertEvent is logged at error level; later events still go."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock)
    with sqlite3.connect(tmp_path / "alerts.db") as conn:
        conn.execute(
            "INSERT INTO notification_events (key, created_ns, event) VALUES ('bad:1', 0, '{\"x\": 1}')"
        )
    conn.close()
    insert_events(tmp_path / "alerts.db", [make_event(2)])

    with capture_logs() as logs:
        dispatcher.run_once(clock())

    assert [e["key"] for e in logs if e["event"] == "notification_event_unreadable"] == ["bad:1"]
    assert [r.header("webhook-id") for r in receiver.requests] == ["a2:1"]
    dispatcher.stop(1.0)


def test_routes_pick_receivers_by_matchers_and_severity(tmp_path: Path, receiver: FakeReceiver) -> None:
    """Critical events go to the duty receiver and on to the default one; others only to the default."""
    clock = FakeClock()
    dispatcher = _dispatcher(
        tmp_path,
        [_hook(receiver, "duty"), _hook(receiver, "archive")],
        clock,
        routes=[
            {
                "severities": ["critical"],
                "matchers": ["station_id=~cq-.*"],
                "receivers": ["duty"],
                "continue": True,
            }
        ],
        default_receivers=["archive"],
    )
    insert_events(
        tmp_path / "alerts.db", [make_event(1, severity="critical"), make_event(2, severity="warning")]
    )

    dispatcher.run_once(clock())

    sent = sorted((r.path, r.header("webhook-id")) for r in receiver.requests)
    assert sent == [("/archive", "a2:1"), ("/duty", "a1:1")]
    dispatcher.stop(1.0)


def test_api_filters_and_validates(tmp_path: Path, receiver: FakeReceiver) -> None:
    """GET /api/v1/notifications filters by receiver, state and key, pages by after_id, refuses bad states."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver, "one"), _hook(receiver, "two")], clock)
    insert_events(tmp_path / "alerts.db", [make_event(n) for n in range(3)])
    dispatcher.run_once(clock())
    handler = dispatcher.routes()[("GET", "/api/v1/notifications")]

    def get(**query: str) -> list[dict[str, Any]]:
        status, body = handler(
            Request("GET", "/api/v1/notifications", {k: [v] for k, v in query.items()}, None, {})
        )
        assert status == 200
        rows: list[dict[str, Any]] = body["notifications"]
        return rows

    assert len(get()) == 6
    assert {r["receiver"] for r in get(receiver="two")} == {"two"}
    assert [r["key"] for r in get(key="a1:1")] == ["a1:1", "a1:1"]
    first = get(limit="2")
    assert len(first) == 2
    assert get(after_id=str(first[-1]["id"]))[0]["id"] == first[-1]["id"] + 1
    assert get(state="delivered")[0]["delivered_at"] == T0.isoformat()
    with pytest.raises(BadRequest):
        get(state="lost")
    dispatcher.stop(1.0)


def test_pending_deliveries_of_a_removed_receiver_are_kept_and_reported(
    tmp_path: Path, receiver: FakeReceiver
) -> None:
    """A receiver dropped from the configuration keeps its pending rows, and start-up warns about them."""
    receiver.default = Answer(503, b"")
    clock = FakeClock()
    first = _dispatcher(tmp_path, [_hook(receiver, "old"), _hook(receiver, "new")], clock)
    insert_events(tmp_path / "alerts.db", [make_event(1)])
    first.run_once(clock())
    first.stop(1.0)

    with capture_logs() as logs:
        second = _dispatcher(tmp_path, [_hook(receiver, "new")], clock)

    (warning,) = [e for e in logs if e["event"] == "notification_receiver_removed"]
    assert (warning["receiver"], warning["pending"], warning["log_level"]) == ("old", 1, "warning")
    assert list(second.stats()) == ["new"]
    assert [d["receiver"] for d in second.deliveries(state="pending")] == ["old", "new"]
    second.stop(1.0)


def test_relative_links_are_made_absolute_with_external_url(tmp_path: Path, receiver: FakeReceiver) -> None:
    """The engine's relative links go out absolute when external_url is set; absolute ones stay."""
    clock = FakeClock()
    dispatcher = _dispatcher(tmp_path, [_hook(receiver)], clock, external_url="https://ecowatch.example")
    event = dataclasses.replace(
        make_event(1), links={"alert": "/api/v1/alerts?alert_id=a1", "map": "https://maps.example/p/1"}
    )
    insert_events(tmp_path / "alerts.db", [event])

    dispatcher.run_once(clock())

    assert receiver.requests[0].json()["links"] == {
        "alert": "https://ecowatch.example/api/v1/alerts?alert_id=a1",
        "map": "https://maps.example/p/1",
    }
    dispatcher.stop(1.0)
