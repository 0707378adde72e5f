"""The outbox in cluster mode: the feed routes a partition's events as the intake does, past a durable
watermark, and the sender delivers one receiver's messages as the single-node outbox would.

The alert database is written by the alert service itself (three stations, two exceedance rules, a
silence on one station); the receivers are real HTTP servers on loopback (`FakeReceiver`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from alerts.events import AlertEvent
from alerts.notify_config import NotifyConfig
from alerts.outbox import intake, schema
from alerts.outbox.cluster import (
    MAX_KEY_CHARS,
    TOPIC_PATTERN,
    ClusterOutboxFeed,
    OutboxItem,
    ReceiverSender,
    receiver_topic,
    stream_key,
)
from alerts.routing import Router
from alerts.silences import Silence, SilenceRequest
from config.registry import Registry
from config.times import to_ns
from tests.alerts.engine_support import T0 as ENGINE_T0
from tests.alerts.engine_support import FakeClock as EngineClock
from tests.alerts.engine_support import make_service, rules_config, water
from tests.alerts.notifiers.fake_receiver import (
    Answer,
    FakeClock,
    FakeReceiver,
    Recorded,
    insert_events,
    make_event,
)
from tests.helpers import station

SECRET: Final = "webhook-secret-of-32-bytes-12345"
WECOM_OK: Final = Answer.json(200, {"errcode": 0, "errmsg": "ok"})
H: Final = timedelta(hours=1)
# NH3-N per hour at st-1 (Yuzhong), st-2 (Jiangbei), st-3 (Nanan, silenced); class II sections.
NH3N: Final = [(1.2, 2.5, 1.2), (0.3, 2.5, 0.3), (0.3, 0.3, 0.3), (0.3, 0.3, 0.3)]
RULES: Final = (
    {"name": "exceedance", "kind": "exceedance", "parameters": ["nh3n"]},
    {
        "name": "do_low",
        "kind": "exceedance",
        "parameters": ["do"],
        "threshold": 4,
        "direction": "below",
        "severity": "critical",
    },
)
# After the last event the service wrote: the sender's clock starts here (within retry.max_age).
SENT_AT: Final = ENGINE_T0 + 5 * H


def _webhook(name: str, url: str = "http://127.0.0.1:9/", **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": f"{url.rstrip('/')}/{name}", "secret": SECRET, **extra}


def _routed_config() -> NotifyConfig:
    """Critical to duty (and on), Yuzhong to city, everything else to archive."""
    return NotifyConfig.model_validate(
        {
            "receivers": [_webhook("city"), _webhook("duty"), _webhook("archive")],
            "routes": [
                {"severities": ["critical"], "receivers": ["duty"], "continue": True},
                {"matchers": ["district=Yuzhong"], "receivers": ["city"]},
            ],
            "default_receivers": ["archive"],
        }
    )


@pytest.fixture
def alert_db(tmp_path: Path) -> Path:
    """An alert database written by the alert service: firing and resolved exceedances at three
    stations (st-3 silenced), a critical low-DO alert at st-2, and one event addressed by name."""
    clock = EngineClock()
    registry = Registry(
        [
            station("st-1", district="Yuzhong", target_class="II"),
            station("st-2", district="Jiangbei", target_class="II"),
            station("st-3", district="Nanan", target_class="II"),
        ]
    )
    service = make_service(tmp_path, registry, rules_config(*RULES), clock)
    request = SilenceRequest.model_validate(
        {"matchers": {"station_id": "st-3"}, "ends_at": ENGINE_T0 + 24 * H, "by": "Li", "reason": "dredging"}
    )
    service.engine.add_silence(Silence.from_request(request, ENGINE_T0))
    for hour, values in enumerate(NH3N):
        clock.now = ENGINE_T0 + hour * H
        for station_id, nh3n in zip(("st-1", "st-2", "st-3"), values, strict=True):
            readings = water(clock.now, station_id=station_id, nh3n=nh3n)
            if station_id == "st-2" and hour == 1:
                readings = [r if r.parameter != "do" else dataclasses.replace(r, value=2.0) for r in readings]
            service.write(readings)
        service.tick(clock.now)
    [(_, first)] = service.store.events(limit=1)
    addressed = dataclasses.replace(first, key=f"{first.alert_id}:99", receivers=("duty", "not-configured"))
    with service.store.transaction():
        service.store.add_event(addressed, to_ns(clock.now))
    service.close()
    return tmp_path / "alerts.db"


def _events(db: Path) -> dict[int, AlertEvent]:
    conn = schema.connect(db)
    try:
        rows = conn.execute("SELECT id, event FROM notification_events ORDER BY id").fetchall()
    finally:
        conn.close()
    return {event_id: AlertEvent.from_json(json.loads(raw)) for event_id, raw in rows}


def _intake_deliveries(db: Path, config: NotifyConfig) -> list[tuple[int, str, str]]:
    """(event, receiver, state) the single-node intake records for the same database and config."""
    conn = schema.connect(db)
    try:
        schema.create(conn)
        router = Router(config.routes, [r.name for r in config.receivers], config.default_receivers)
        intake.route_new(conn, router, frozenset(), to_ns(SENT_AT))
        rows = conn.execute("SELECT event_id, receiver, state FROM deliveries ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(int(e), str(r), str(s)) for e, r, s in rows]


def _all_pending(feed: ClusterOutboxFeed, limit: int = 500) -> list[OutboxItem]:
    """Everything past the watermark, forwarded batch by batch as the partition owner does."""
    items: list[OutboxItem] = []
    while batch := feed.pending(limit):
        items += batch
        feed.forwarded(batch[-1].event_id)
    return items


# --- the feed ---------------------------------------------------------------------------------------
def test_the_database_holds_what_the_routing_tests_need(alert_db: Path) -> None:
    """The service wrote firing and resolved events, a critical one, silenced ones and an addressed one."""
    events = list(_events(alert_db).values())
    assert {e.status for e in events} == {"firing", "resolved"}
    assert any(e.severity == "critical" for e in events)
    assert any(e.silenced for e in events)
    assert any(e.receivers for e in events)
    assert len(events) >= 8


def test_pending_routes_every_event_as_the_single_node_intake_does(alert_db: Path, tmp_path: Path) -> None:
    """The same (event, receiver) pairs, in the same order, as the intake's pending deliveries; the
    pairs it records `skipped` (silenced) are not published."""
    config = _routed_config()
    copy = tmp_path / "single-node.db"
    copy.write_bytes(alert_db.read_bytes())
    deliveries = _intake_deliveries(copy, config)

    feed = ClusterOutboxFeed(config, alert_db)
    items = _all_pending(feed, limit=3)
    feed.close()

    assert [(i.event_id, i.receiver) for i in items] == [(e, r) for e, r, s in deliveries if s == "pending"]
    skipped = {(e, r) for e, r, s in deliveries if s == "skipped"}
    assert skipped
    assert skipped.isdisjoint((i.event_id, i.receiver) for i in items)
    assert {i.receiver for i in items} == {"city", "duty", "archive"}
    events = _events(alert_db)
    addressed = [i.receiver for i in items if events[i.event_id].receivers]
    assert "duty" in addressed  # named by the event, though no route sends a warning there


def test_items_carry_the_stream_key_topic_and_the_event(alert_db: Path) -> None:
    """Each item's key is `<event key>@<topic>`, its topic the receiver's, its payload the event for
    that receiver (and its creation time)."""
    feed = ClusterOutboxFeed(_routed_config(), alert_db)
    items = feed.pending()
    feed.close()
    events = _events(alert_db)

    assert items
    for item in items:
        event = events[item.event_id]
        assert item.topic == receiver_topic(item.receiver) == item.receiver
        assert item.key == f"{event.key}@{item.topic}"
        body = json.loads(item.payload)
        assert body["receiver"] == item.receiver
        assert AlertEvent.from_json(body["event"]) == event
        assert body["created_ns"] > 0
    assert len({i.key for i in items}) == len(items)


def test_the_watermark_survives_a_reopen_and_never_moves_back(alert_db: Path) -> None:
    """Forwarded events are not pending again after a reopen; an older id does not move the mark back."""
    config = _routed_config()
    feed = ClusterOutboxFeed(config, alert_db)
    everything = feed.pending()
    middle = everything[len(everything) // 2].event_id
    feed.forwarded(middle)
    feed.close()

    reopened = ClusterOutboxFeed(config, alert_db)
    assert reopened.watermark() == middle
    assert reopened.pending() == [i for i in everything if i.event_id > middle]
    reopened.forwarded(1)
    assert reopened.watermark() == middle
    reopened.forwarded(everything[-1].event_id)
    reopened.close()

    again = ClusterOutboxFeed(config, alert_db)
    assert again.pending() == []
    again.close()


def test_silenced_events_ahead_are_passed_without_waiting_for_a_forward(tmp_path: Path) -> None:
    """A run of silenced events ahead of the first to publish moves the watermark by itself, so a
    batch of nothing but silenced events does not stall the feed."""
    db = tmp_path / "alerts.db"
    insert_events(db, [make_event(n, silenced=True) for n in range(1, 6)])
    insert_events(db, [make_event(6), make_event(7)])
    config = NotifyConfig.model_validate({"receivers": [_webhook("hook")]})
    feed = ClusterOutboxFeed(config, db)

    items = feed.pending(limit=2)  # the first two batches hold only silenced events

    assert [(i.event_id, i.receiver) for i in items] == [(6, "hook")]
    assert feed.watermark() == 5
    feed.forwarded(6)
    assert [i.event_id for i in feed.pending()] == [7]
    feed.forwarded(7)
    insert_events(db, [make_event(8, silenced=True)])
    assert feed.pending() == []
    assert feed.watermark() == 8
    feed.close()


def test_an_unreadable_event_is_logged_once_and_passed(tmp_path: Path) -> None:
    """An event row that is not an AlertEvent is logged at error level, once, and publishes nothing."""
    db = tmp_path / "alerts.db"
    insert_events(db, [make_event(1)])
    conn = schema.connect(db)
    conn.execute("INSERT INTO notification_events (key, created_ns, event) VALUES ('bad:1', 1, '{}')")
    conn.close()
    feed = ClusterOutboxFeed(NotifyConfig.model_validate({"receivers": [_webhook("hook")]}), db)

    with capture_logs() as logs:
        assert [i.event_id for i in feed.pending()] == [1]
        assert [i.event_id for i in feed.pending()] == [1]  # not forwarded yet: the same again
        feed.forwarded(1)
        assert feed.pending() == []
    assert [e["log_level"] for e in logs if e["event"] == "notification_event_unreadable"] == ["error"]
    assert feed.watermark() == 2
    feed.close()


# --- topics and keys --------------------------------------------------------------------------------
@given(st.text(max_size=80))
def test_receiver_topic_is_a_valid_token_and_deterministic(name: str) -> None:
    """Any name gives a stream token, the same every time; a name that is one already is kept."""
    topic = receiver_topic(name)
    assert TOPIC_PATTERN.fullmatch(topic)
    assert receiver_topic(name) == topic
    if TOPIC_PATTERN.fullmatch(name) and not name.startswith("r-"):
        assert topic == name


@given(st.text(max_size=80), st.text(max_size=80))
def test_distinct_names_get_distinct_topics(first: str, second: str) -> None:
    """Two different names never share a topic (120 bits of hash, and no name takes a hash's form)."""
    assume(first != second)
    assert receiver_topic(first) != receiver_topic(second)


def test_receiver_topic_examples() -> None:
    """Valid names stay; Chinese, long and hash-shaped names are hashed."""
    assert receiver_topic("duty-room_2") == "duty-room_2"
    hashed = receiver_topic("嘉陵江河长办")
    assert hashed.startswith("r-")
    assert len(hashed) == 32
    assert receiver_topic("x" * 33).startswith("r-")
    assert receiver_topic(hashed) != hashed


def test_a_key_too_long_for_the_stream_is_hashed() -> None:
    """`<event key>@<topic>` when it is a valid stream id, else a hash of the event key with the topic."""
    assert stream_key("a1:3", "duty") == "a1:3@duty"
    for event_key in ("k" * 300, "事件:1", "a\n1"):
        key = stream_key(event_key, "duty")
        assert len(key) <= MAX_KEY_CHARS
        assert key.isascii()
        assert key.isprintable()
        assert key.endswith("@duty")
        assert key == stream_key(event_key, "duty")


# --- the sender -------------------------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    """A running receiver that accepts everything until told otherwise."""
    server = FakeReceiver().start()
    yield server
    server.stop()


def _items_for(db: Path, config: NotifyConfig, name: str) -> list[OutboxItem]:
    feed = ClusterOutboxFeed(config, db)
    items = [i for i in feed.pending() if i.receiver == name]
    feed.close()
    return items


def _sender(config: NotifyConfig, name: str, clock: FakeClock, **kwargs: Any) -> ReceiverSender:
    return ReceiverSender(config, name, clock=clock, **kwargs)


def _verifies(request: Recorded) -> bool:
    """Standard Webhooks verification, written from the spec: HMAC-SHA256 of "id.timestamp.body"."""
    content = f"{request.header('webhook-id')}.{request.header('webhook-timestamp')}.".encode() + request.body
    expected = base64.b64encode(hmac.new(SECRET.encode(), content, hashlib.sha256).digest()).decode()
    signature = request.header("webhook-signature") or ""
    return hmac.compare_digest(signature, f"v1,{expected}")


def test_each_key_is_delivered_once_signed_with_the_event_key(alert_db: Path, receiver: FakeReceiver) -> None:
    """Every message goes out once, as the webhook's documented body, signed, with the event's key as
    webhook-id; the same message again (its ack lost) is answered True without a request."""
    config = NotifyConfig.model_validate({"receivers": [_webhook("hook", receiver.url)]})
    items = _items_for(alert_db, config, "hook")
    sender = _sender(config, "hook", FakeClock(SENT_AT))

    assert all(sender.deliver(i.key, i.payload) for i in items)
    assert sender.deliver(items[0].key, items[0].payload)

    events = _events(alert_db)
    assert [r.header("webhook-id") for r in receiver.requests] == [events[i.event_id].key for i in items]
    assert all(_verifies(r) for r in receiver.requests)
    assert [r.json()["key"] for r in receiver.requests] == [events[i.event_id].key for i in items]
    assert sender.stats() == {
        "delivered": len(items),
        "retried": 0,
        "refused": 0,
        "parts_sent": len(items),
        "deferred": 0,
        "repeated": 1,
    }
    sender.close()


def test_a_message_without_its_stream_id_is_known_by_its_content(
    alert_db: Path, receiver: FakeReceiver
) -> None:
    """An empty key (no Nats-Msg-Id) does not make different messages one: each is sent, and a
    repeat of the same payload is not."""
    config = NotifyConfig.model_validate({"receivers": [_webhook("hook", receiver.url)]})
    first, second = _items_for(alert_db, config, "hook")[:2]
    sender = _sender(config, "hook", FakeClock(SENT_AT))

    assert sender.deliver("", first.payload)
    assert sender.deliver("", second.payload)
    assert sender.deliver("", first.payload)

    assert len(receiver.requests) == 2
    assert sender.stats()["repeated"] == 1
    sender.close()


def test_a_retryable_failure_holds_the_receiver_and_the_retry_sends_the_same_key(
    alert_db: Path, receiver: FakeReceiver
) -> None:
    """503: False, and False without a request while the backoff runs; then True, the same webhook-id."""
    receiver.script(Answer(503, b"maintenance"))
    config = NotifyConfig.model_validate({"receivers": [_webhook("hook", receiver.url)]})
    item = _items_for(alert_db, config, "hook")[0]
    clock = FakeClock(SENT_AT)
    sender = _sender(config, "hook", clock, max_wait=0.0)

    with capture_logs() as logs:
        assert not sender.deliver(item.key, item.payload)
        assert not sender.deliver(item.key, item.payload)  # held: not even tried
        assert len(receiver.requests) == 1
        clock.advance(600)  # past any backoff (max_delay 5 min)
        assert sender.deliver(item.key, item.payload)

    assert [r.answer.status for r in receiver.requests] == [503, 200]
    assert len({r.header("webhook-id") for r in receiver.requests}) == 1
    assert [e["event"] for e in logs if e["log_level"] in ("warning", "info")] == [
        "receiver_failing",
        "receiver_recovered",
    ]
    stats = sender.stats()
    assert (stats["retried"], stats["deferred"], stats["delivered"], stats["refused"]) == (1, 1, 1, 0)
    sender.close()


def test_a_retry_resends_only_the_parts_not_yet_accepted(alert_db: Path, receiver: FakeReceiver) -> None:
    """A message split into parts: part 2 answered 503 → False; the retry sends part 2 and the rest
    under their `#i/n` keys, never part 1 again; the message is in Chinese, as single-node sends it."""
    receiver.default = WECOM_OK
    receiver.script(WECOM_OK, Answer(503, b"busy"))
    long_text = "### 【{headline}】{summary}\n" + "\n".join(
        ["- {place}：{values}，水质类别 {water_class}"] * 150
    )
    wecom = {
        "type": "wecom",
        "name": "basin",
        "webhook_key": "robot-key",
        "base_url": f"{receiver.url}/cgi-bin/webhook/send",
        "template": {"text": long_text},
    }
    config = NotifyConfig.model_validate({"receivers": [wecom]})
    item = _items_for(alert_db, config, "basin")[0]
    event_key = _events(alert_db)[item.event_id].key
    clock = FakeClock(SENT_AT)
    sender = _sender(config, "basin", clock)

    assert not sender.deliver(item.key, item.payload)
    clock.advance(600)
    assert sender.deliver(item.key, item.payload)

    keys = [r.header("Idempotency-Key") or "" for r in receiver.requests]
    parts = int(keys[0].rsplit("/", 1)[1])
    assert parts >= 3
    assert keys == [f"{event_key}#{n}/{parts}" for n in (1, 2, *range(2, parts + 1))]
    assert "水质类别" in receiver.requests[0].json()["markdown"]["content"]
    assert sender.stats()["parts_sent"] == parts
    sender.close()


def test_a_permanent_refusal_is_logged_counted_and_lets_the_next_go(
    alert_db: Path, receiver: FakeReceiver
) -> None:
    """400: True (it will never succeed), logged at error level, counted refused; the next is delivered,
    and the refused one coming back is not sent again."""
    receiver.script(Answer(400, b"schema mismatch"))
    config = NotifyConfig.model_validate({"receivers": [_webhook("hook", receiver.url)]})
    first, second = _items_for(alert_db, config, "hook")[:2]
    sender = _sender(config, "hook", FakeClock(SENT_AT))

    with capture_logs() as logs:
        assert sender.deliver(first.key, first.payload)
    assert sender.deliver(second.key, second.payload)
    assert sender.deliver(first.key, first.payload)

    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert (failed["log_level"], failed["final"], failed["reason"]) == ("error", True, "rejected")
    assert [r.answer.status for r in receiver.requests] == [400, 200]
    stats = sender.stats()
    assert (stats["refused"], stats["delivered"], stats["repeated"]) == (1, 1, 1)
    sender.close()


def test_the_retry_budget_ends_in_a_refusal(alert_db: Path, receiver: FakeReceiver) -> None:
    """With retry.max_attempts 2, the second 503 gives the message up (True), logged as not final."""
    receiver.default = Answer(503, b"down")
    config = NotifyConfig.model_validate(
        {"receivers": [_webhook("hook", receiver.url)], "retry": {"max_attempts": 2}}
    )
    item = _items_for(alert_db, config, "hook")[0]
    clock = FakeClock(SENT_AT)
    sender = _sender(config, "hook", clock)

    with capture_logs() as logs:
        assert not sender.deliver(item.key, item.payload)
        clock.advance(600)
        assert sender.deliver(item.key, item.payload)

    assert len(receiver.requests) == 2
    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert (failed["final"], failed["attempts"]) == (False, 2)
    assert sender.stats()["refused"] == 1
    sender.close()


def test_the_rate_limit_defers_what_has_no_room(alert_db: Path, receiver: FakeReceiver) -> None:
    """2 a minute, nothing waited out: the third message is False without a request until the first
    two have left the window."""
    config = NotifyConfig.model_validate(
        {"receivers": [_webhook("hook", receiver.url, rate_limit={"messages": 2, "per": "PT1M"})]}
    )
    items = _items_for(alert_db, config, "hook")[:3]
    clock = FakeClock(SENT_AT)
    sender = _sender(config, "hook", clock, max_wait=0.0)

    assert sender.deliver(items[0].key, items[0].payload)
    assert sender.deliver(items[1].key, items[1].payload)
    assert not sender.deliver(items[2].key, items[2].payload)
    clock.advance(59.9)
    assert not sender.deliver(items[2].key, items[2].payload)
    assert len(receiver.requests) == 2
    clock.advance(0.2)
    assert sender.deliver(items[2].key, items[2].payload)

    assert len(receiver.requests) == 3
    assert sender.stats()["deferred"] == 2
    sender.close()


def test_a_short_wait_for_the_window_is_slept_out(alert_db: Path, receiver: FakeReceiver) -> None:
    """1 per 10 s with max_wait 30: every message goes, each after sleeping until the window has room,
    and no 10 s span holds two requests."""
    config = NotifyConfig.model_validate(
        {"receivers": [_webhook("hook", receiver.url, rate_limit={"messages": 1, "per": "PT10S"})]}
    )
    items = _items_for(alert_db, config, "hook")
    clock = FakeClock(SENT_AT)
    sent_at: list[float] = []
    sleeps: list[float] = []

    def note_time(_request: Recorded) -> Answer | None:
        sent_at.append(clock().timestamp())
        return None  # the default answer

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    receiver.responder = note_time
    sender = _sender(config, "hook", clock, sleep=sleep, max_wait=30.0)

    assert all(sender.deliver(i.key, i.payload) for i in items)

    assert len(sent_at) == len(items) >= 3
    assert all(later - earlier > 10 for earlier, later in itertools.pairwise(sent_at))
    assert len(sleeps) == len(items) - 1
    assert sender.stats()["deferred"] == 0
    sender.close()


def test_alertmanager_gets_the_event_once(alert_db: Path, receiver: FakeReceiver) -> None:
    """An Alertmanager receiver gets the event's alert posted once, ending 4 resend intervals later;
    nothing re-sends it."""
    manager = {"type": "alertmanager", "name": "am", "url": receiver.url, "resend_interval": "PT1M"}
    config = NotifyConfig.model_validate({"receivers": [manager]})
    events = _events(alert_db)
    item = next(i for i in _items_for(alert_db, config, "am") if events[i.event_id].status == "firing")
    sender = _sender(config, "am", FakeClock(SENT_AT))

    assert sender.deliver(item.key, item.payload)

    (request,) = receiver.requests
    assert request.path == "/api/v2/alerts"
    (alert,) = request.json()
    assert alert["annotations"]["notification_key"] == events[item.event_id].key
    assert alert["endsAt"] == (SENT_AT + timedelta(minutes=4)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    sender.close()


def test_a_message_for_another_receiver_or_unreadable_is_refused_unsent(
    alert_db: Path, receiver: FakeReceiver
) -> None:
    """A payload addressed to another receiver, or not JSON, is logged at error level and answered
    True (it can never be delivered here) without a request."""
    config = NotifyConfig.model_validate(
        {"receivers": [_webhook("hook", receiver.url), _webhook("city", receiver.url)]}
    )
    other = _items_for(alert_db, config, "city")[0]
    sender = _sender(config, "hook", FakeClock(SENT_AT))

    with capture_logs() as logs:
        assert sender.deliver(other.key, other.payload)
        assert sender.deliver("garbage@hook", b"\xff not json")

    assert receiver.requests == []
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "notification_misrouted",
        "notification_unreadable",
    ]
    assert sender.stats()["refused"] == 2
    sender.close()


def test_an_unknown_receiver_is_a_configuration_error() -> None:
    """A sender for a receiver the configuration does not have fails at once."""
    with pytest.raises(ValueError, match="no receiver named 'nope'"):
        ReceiverSender(NotifyConfig.model_validate({"receivers": [_webhook("hook")]}), "nope")
