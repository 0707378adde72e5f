"""`ecowatch alerts test-notify <receiver>`: send a sample notification to one receiver, report the outcome.

    ecowatch alerts test-notify duty-room --config /etc/ecowatch/ecowatch.yaml
    test-notify: duty-room (dingtalk) accepted test-notify-5f1c2a9e0b7d in 184 ms

Reads the `notify` section of the configuration file (`--config`, else $ECOWATCH_CONFIG), builds
that receiver's notifier and sends it one sample firing event (rule `test_notify`, severity
`info`, a made-up station and values), once and directly: no outbox, no retries, nothing
stored. Each run uses a new idempotency key, so receivers do not drop a repeated test.
Alertmanager keeps the sample alert until its endsAt (four resend intervals) passes.

Exit 0 when the receiver accepted it; 1 when it refused it or could not be reached (with the
reason, the detail and whether the outbox would retry it, never a secret), or when the
configuration or the receiver name is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from alerts.events import AlertEvent, StationInfo
from alerts.notifiers import DeliveryError, Notification, make_notifier
from alerts.notify_config import NotifyConfig
from config.loader import ConfigError, describe, read_yaml

PROG = "test-notify"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `test-notify` to the subparsers of the `alerts` command; its handler is `run` (`func`)."""
    default = os.environ.get("ECOWATCH_CONFIG")
    parser = subparsers.add_parser(
        PROG,
        help="send a sample notification to one receiver and report the outcome",
        description="Send one sample firing event to a configured receiver, directly (no outbox, no "
        "retries), and report whether it accepted it. Exit 0 if it did, 1 otherwise.",
    )
    parser.add_argument("receiver", help="the receiver's name in the `notify.receivers` section")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(default) if default else None,
        metavar="FILE",
        help="YAML configuration file (default: $ECOWATCH_CONFIG)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send the sample to `args.receiver`; 0 if accepted, else 1 with the reason on stderr."""
    config = _load(args.config)
    if config is None:
        return 1
    try:
        receiver = config.receiver(args.receiver)
    except KeyError:
        names = ", ".join(r.name for r in config.receivers) or "none configured"
        return _fail(f"no receiver named {args.receiver!r} (receivers: {names})")
    notifier = make_notifier(receiver)
    now = datetime.now(UTC)
    notification = Notification((sample_event(now),), now)
    started = time.perf_counter()
    try:
        notifier.send(notification)
    except DeliveryError as exc:
        verdict = "the outbox would retry it" if exc.retryable else "final: the outbox would not retry it"
        return _fail(
            f"{receiver.name} ({receiver.type}) did not accept it: {exc.reason}: {exc.detail} ({verdict})"
        )
    finally:
        notifier.close()
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"{PROG}: {receiver.name} ({receiver.type}) accepted {notification.key} in {elapsed_ms:.0f} ms")
    return 0


def sample_event(now: datetime) -> AlertEvent:
    """A firing event that reads as a test wherever it lands."""
    key = f"test-notify-{uuid.uuid4().hex[:12]}"
    station = StationInfo(
        id="test-station",
        name="Test station (ecowatch test-notify)",
        district="Test district",
        basin="Test basin",
        river="Test river",
        water_body="river",
        target_class="III",
    )
    return AlertEvent(
        key=key,
        alert_id="test-notify",
        rule="test_notify",
        kind="test",
        status="firing",
        severity="info",
        labels={"rule": "test_notify", "station_id": station.id},
        annotations={"summary": "Test notification from ecowatch: no action needed"},
        starts_at=now,
        event_at=now,
        station=station,
        parameter="nh3n",
        water_class="V",
        target_class="III",
        primary_pollutants=("nh3n",),
        values={"nh3n": 1.8, "do": 4.2},
    )


def _load(path: Path | None) -> NotifyConfig | None:
    if path is None:
        _fail("no configuration: give --config FILE or set ECOWATCH_CONFIG")
        return None
    try:
        section = read_yaml(path).get("notify") or {}
        return NotifyConfig.model_validate(section)
    except ConfigError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(f"invalid notify section\n{describe(exc, f'{path}: notify.')}")
    return None


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1
