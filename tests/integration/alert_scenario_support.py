"""Support for the alert scenarios (`test_alert_scenarios.py`): the daemon with a broker, the readings
of stations' local days, and webhook receivers that count what operators would receive.

A `ScenarioDaemon` is the real daemon (`ingest.app.daemon.Daemon`) on a small registry written in
the test's directory, subscribed to a real Mosquitto, notifying real HTTP `Receiver`s. Reports go
through the broker in the ecowatch JSON format (`simulators.formats.JsonFormat`), and `publish`
returns once the daemon has logged, stored and evaluated every one of them. Times are local days of
the assessment's zone (Asia/Shanghai) counted back from today, so every report is in the past
whatever the date, and the days are the days the method judges.

`settle` waits until the outbox has delivered every notification event the engine wrote: only
then can a test count notifications exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from zoneinfo import ZoneInfo

from config.registry import Station
from ingest.app.daemon import Daemon
from ingest.app.settings import load_settings
from simulators.formats import JsonFormat
from simulators.load import write_registry
from simulators.publish import MqttOptions, MqttPublisher
from tests.helpers import station, wait_for

# The zone of the daily values (the scheduler's and the assessment rules' default).
LOCAL: Final = ZoneInfo("Asia/Shanghai")
# A 4-hourly automatic station's reports of a local day.
HOURS: Final = (0, 4, 8, 12, 16, 20)
# Class II water, within every target of class III: pH, DO, CODMn, NH3-N, TP (GB 3838 Table 1).
CLEAN: Final[Mapping[str, float]] = {"ph": 7.6, "do": 7.2, "codmn": 3.0, "nh3n": 0.3, "tp": 0.08}
# Seconds any stage may take on a busy CI machine (2 cores shared); a pass takes a few.
WAIT: Final = 60.0

Values = Mapping[str, tuple[float, str]]


def readings(flag: str = "N", **changes: float | tuple[float, str]) -> dict[str, tuple[float, str]]:
    """The clean report, all items flagged `flag`, with `changes` (a value, or a value and its flag)."""
    out = {code: (value, flag) for code, value in CLEAN.items()}
    for code, change in changes.items():
        out[code] = change if isinstance(change, tuple) else (change, flag)
    return out


def local_day(days_ago: int) -> date:
    """The local date `days_ago` days before today's, on the wall clock."""
    return datetime.now(LOCAL).date() - timedelta(days=days_ago)


def at(day: date, hour: int) -> datetime:
    """The local time `hour`:00 of `day`, aware."""
    return datetime.combine(day, time(hour), tzinfo=LOCAL)


def river_station(station_id: str, district: str, **overrides: object) -> Station:
    """A 4-hourly water-quality station on a river, target class III."""
    return station(
        station_id,
        district=district,
        kinds=("water",),
        report_interval_s=4 * 3600,
        **overrides,
    )


@dataclass(frozen=True, slots=True)
class Report:
    station: Station
    ts: datetime
    values: Values


def day_of_reports(station: Station, day: date, by_hour: Mapping[int, Values] | None = None) -> list[Report]:
    """The station's six reports of `day`: clean, except the hours `by_hour` gives."""
    by_hour = by_hour or {}
    return [Report(station, at(day, hour), by_hour.get(hour, readings())) for hour in HOURS]


class Receiver:
    """A webhook receiver: checks the Standard Webhooks signature and keeps events by idempotency key."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = hashlib.sha256(f"scenario-secret-{name}".encode()).digest()
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries = 0
        self.repeats = 0
        self.bad_signatures = 0
        self.cut_short = 0  # requests whose sender died before the whole body came
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a killed worker): nothing was delivered, and
                    # its signature cannot be checked on half a body.
                    with receiver._lock:
                        receiver.cut_short += 1
                    self.close_connection = True
                    return
                signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode() + body
                expected = base64.b64encode(hmac.new(receiver._key, signed, hashlib.sha256).digest())
                signatures = [s.split(",", 1)[1].encode() for s in self.headers["webhook-signature"].split()]
                if expected not in signatures:
                    with receiver._lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                document = json.loads(body)
                with receiver._lock:
                    receiver.deliveries += 1
                    for event in document.get("events", [document]):
                        if event["key"] in receiver.events:
                            receiver.repeats += 1
                        receiver.events[event["key"]] = event
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def config(self) -> dict[str, Any]:
        """The daemon's `notify.receivers` entry for this receiver."""
        secret = f"whsec_{base64.b64encode(self._key).decode()}"
        return {"type": "webhook", "name": self.name, "url": self.url, "secret": secret}

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events.values())

    def notices(self, status: str, **labels: str) -> list[dict[str, Any]]:
        """`status` events that tell of an alert (not reminders, not severity changes), by label."""
        return [
            e
            for e in self.of(**labels)
            if e["status"] == status and not e["reminder"] and "change" not in e["annotations"]
        ]

    def changes(self, change: str, **labels: str) -> list[dict[str, Any]]:
        """Severity transitions (`escalated`, `deescalated`) of firing alerts, by label."""
        return [e for e in self.of(**labels) if e["annotations"].get("change") == change]

    def of(self, **labels: str) -> list[dict[str, Any]]:
        """Events whose labels (with `rule`, `kind`, `status`) have these values."""
        return [
            e
            for e in self.all()
            if all(
                {**e["labels"], "rule": e["rule"], "kind": e["kind"]}.get(k) == v for k, v in labels.items()
            )
        ]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScenarioDaemon:
    """The daemon on `stations`, notifying `receivers` (see the module docstring)."""

    def __init__(
        self,
        tmp_path: Path,
        broker_port: int,
        stations: Sequence[Station],
        receivers: Sequence[Receiver],
        *,
        notify: Mapping[str, Any] | None = None,
        catch_up_days: int = 7,
    ) -> None:
        self.stations = list(stations)
        self.receivers = list(receivers)
        self._broker_port = broker_port
        self._published = 0
        registry_file = tmp_path / "stations.yaml"
        write_registry(self.stations, registry_file, note="alert scenarios")
        # The daily assessment's cron slot half a day away: the scenario decides when days are
        # assessed (`assess`), not the clock; the scheduler still runs its start-up assessment.
        assessment_at = (datetime.now(LOCAL) + timedelta(hours=12)).time().replace(second=0, microsecond=0)
        self.settings = load_settings(
            None,
            data_dir=tmp_path / "data",
            registry=registry_file,
            mqtt={"port": broker_port, "client_id": "alert-scenario-daemon"},
            http={"port": 0},
            alerts={
                "scheduler": {
                    "daily_assessment_at": assessment_at.isoformat(),
                    "catch_up_days": catch_up_days,
                }
            },
            notify={
                "receivers": [r.config() for r in self.receivers],
                "poll_interval": "PT0.2S",
                **(notify or {}),
            },
        )
        self.daemon = Daemon(self.settings)

    def __enter__(self) -> Self:
        daemon = self.daemon
        daemon.start()
        try:
            assert daemon.source.wait_connected(10)
            # The start-up assessment finds nothing yet; a late one could assess half-stored days.
            wait_for(
                lambda: daemon.alerts.scheduler.runs["daily_assessment"] >= 1,
                "the start-up daily assessment",
                timeout=WAIT,
            )
        except BaseException:
            daemon.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.daemon.stop()

    def publish(self, reports: Iterable[Report]) -> int:
        """Publish reports in their order and wait until the daemon stored and evaluated them all."""
        encoder = JsonFormat()
        messages = [
            message
            for r in reports
            for message in encoder.encode(r.station, r.ts.astimezone(LOCAL), r.values)
        ]
        options = MqttOptions(port=self._broker_port, client_id="alert-scenario-stations")
        with MqttPublisher(options) as publisher:
            for topic, payload in messages:
                publisher.publish(topic, payload)
            assert publisher.flush(30)
        self._published += len(messages)
        daemon = self.daemon

        def caught_up() -> bool:
            stats = daemon.stats()
            logged = stats["logs"]["readings_logged"]
            return (
                stats["logs"]["raw_processed"] >= self._published
                and stats["alerts"]["committed"] == logged
                and all(s["committed"] == logged for s in stats["sinks"].values())
            )

        wait_for(
            caught_up, "the daemon to log, store and evaluate every report", timeout=WAIT, detail=daemon.stats
        )
        rejected = daemon.stats()["deadletters"]
        assert not rejected, f"reports were rejected: {rejected}"
        return len(messages)

    def assess(self) -> list[str]:
        """The daily assessment of every due day, then the regional rules (the scheduler's job)."""
        return self.daemon.alerts.assess(datetime.now(UTC))

    def settle(self) -> None:
        """A tick, then wait until every notification event written is delivered to a receiver."""
        self.daemon.alerts.tick(datetime.now(UTC))
        db = self.settings.data_dir / "alerts.db"

        def written() -> int:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                (count,) = conn.execute("SELECT COUNT(*) FROM notification_events").fetchone()
            return int(count)

        def delivered() -> bool:
            stats = self.daemon.dispatcher.stats()
            done = sum(int(s["delivered"]) for s in stats.values())
            pending = sum(int(s["pending"]) + int(s["failed"]) for s in stats.values())
            received = sum(len(r.events) for r in self.receivers)
            return pending == 0 and done == received == written()

        wait_for(
            delivered, "every notification at its receiver", timeout=WAIT, detail=self.daemon.dispatcher.stats
        )
        for receiver in self.receivers:
            assert receiver.bad_signatures == 0, receiver.name
            assert receiver.repeats == 0, receiver.name
            assert receiver.deliveries == len(receiver.events), receiver.name
