"""The demo's story: a spill followed down the Yangtze, played as recent history, and who heard of it.

`ecowatch demo` (ingest/app/demo.py) tells one incident from the spill to the signed webhook in
about a minute. River travel takes hours (丰收坝 to 寸滩 is ~6 h at the network's reach speeds) and
the incident tracker joins a downstream exceedance only when it arrives within the network's
travel-time window, so the story cannot play in real time. It plays as recent history at high
speed: the scenario `simulators/scenarios/demo-incident.yaml` (its stations only, a spill in the
network form) over its `length`, ending at the moment the story starts, is published `length /
seconds` times faster than real time with its own timestamps, all in the past (validation takes
the past up to `max_past_age` and refuses the future); then its stations go on reporting in real
time. Nothing else publishes for those stations, so each one's reports arrive in time order (the
alert engine takes a station's reading only when it is newer than the station's newest).

At the default pace (12.5 h in 60 s), seconds after the story starts:
    ~2 s   the spill enters the Yangtze at km 200 (story time 0:30);
    ~26 s  丰收坝 exceeds: a water alert, and the incident opens with its origin reach and ETAs;
    ~54 s  寸滩 exceeds: the incident is confirmed; its thread's webhooks reach the receivers.

`DemoReceiver` is the receiving end: one local HTTP server that plays every receiver the river
network names (river chiefs, duty rooms, intake operators), each a `notify.receivers` webhook
with its own secret at `/hook/<name>`, checking each delivery's Standard Webhooks signature as a
real receiver would. `story_lines` is the demo summary's account of the incidents and webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from zoneinfo import ZoneInfo

from config.registry import Registry, Station
from config.standards import default_standard
from simulators.publish import Publisher
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario
from simulators.simulator import Simulator

STORY_SCENARIO: Final = SCENARIO_DIR / "demo-incident.yaml"
# Wall seconds the story's history takes to play: the issue asks for the whole story in two minutes.
STORY_SECONDS: Final = 60.0
# Standard Webhooks: refuse a timestamp further than this from the receiver's clock (replays).
SIGNATURE_TOLERANCE_S: Final = 300.0
LOCAL: Final = ZoneInfo("Asia/Shanghai")  # the duty rooms' clock, as in the notifications
_HOOK_PREFIX: Final = "/hook/"


class Story:
    """The story scenario's stations over the `length` before `play` starts, then in real time."""

    def __init__(self, registry: Registry, scenario: Scenario, *, seed: int = 2026) -> None:
        if scenario.length is None:
            raise ValueError(f"story scenario {scenario.name!r} needs a length (the history it plays)")
        self.scenario = scenario
        self.length = scenario.length
        self.simulator = Simulator(registry, scenario, seed=seed)

    @classmethod
    def load(cls, registry: Registry, path: Path = STORY_SCENARIO, *, seed: int = 2026) -> Story:
        return cls(registry, load_scenario(path), seed=seed)

    @property
    def station_ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.simulator.stations)

    def registry_stations(self) -> list[Station]:
        """The story's stations with the story's report interval (the registry the daemon loads)."""
        return self.simulator.registry_stations()

    def play(
        self,
        publisher: Publisher,
        stop: threading.Event,
        *,
        seconds: float = STORY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> int:
        """Publish the history in `seconds`, then go on in real time until `stop`; messages sent.

        A message is due at its place in the accelerated history or at its own time, whichever is
        later, so none carries a time from the future.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        begin = clock()
        start_s = begin - self.length.total_seconds()
        speed = self.length.total_seconds() / seconds
        sent = 0
        for message in self.simulator.iter_messages(datetime.fromtimestamp(start_s, UTC)):
            at = message.sim_time.timestamp()
            delay = max(begin + (at - start_s) / speed, at) - clock()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                break
            publisher.publish(message.topic, message.payload)
            sent += 1
        return sent


# --- the receiving end ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Received:
    """One notification event as a receiver got it."""

    receiver: str
    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """What the demo's receiver got so far."""

    deliveries: int  # signed POSTs accepted
    events: int  # distinct (receiver, idempotency key) pairs
    repeats: int  # events received again (the outbox retried after a lost answer)
    bad_signatures: int
    receivers: frozenset[str]  # the names that got something
    last: Received | None


class DemoReceiver:
    """Webhook receivers on 127.0.0.1, one path and secret per name, checking every signature."""

    def __init__(self, names: Iterable[str], *, clock: Callable[[], float] = time.time) -> None:
        self._keys = {name: secrets.token_bytes(32) for name in sorted(set(names))}
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], Received] = {}
        self._deliveries = self._repeats = self._bad = 0
        self._last: Received | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(receiver._accept(self.path, headers, self._body()))
                self.end_headers()

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the demo's summary tells what arrived

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="demo-receiver", daemon=True
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{_HOOK_PREFIX}{name}"

    def configs(self) -> list[dict[str, Any]]:
        """The `notify.receivers` entries: one webhook per name, each signing with its own secret."""
        return [
            {
                "type": "webhook",
                "name": name,
                "url": self.url(name),
                "secret": f"whsec_{base64.b64encode(key).decode()}",
            }
            for name, key in self._keys.items()
        ]

    def stats(self) -> ReceiverStats:
        with self._lock:
            return ReceiverStats(
                self._deliveries,
                len(self._events),
                self._repeats,
                self._bad,
                frozenset(name for name, _ in self._events),
                self._last,
            )

    def events(self, name: str | None = None) -> list[Received]:
        """Events received (by `name`), in arrival order."""
        with self._lock:
            return [r for r in self._events.values() if name is None or r.receiver == name]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _accept(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        """The HTTP status for one delivery (`headers` lower-case): 204 taken, 401 a bad signature,
        404 no such receiver."""
        name = path.removeprefix(_HOOK_PREFIX) if path.startswith(_HOOK_PREFIX) else ""
        key = self._keys.get(name)
        if key is None:
            return 404
        if not _signature_ok(key, headers, body, self._clock()):
            with self._lock:
                self._bad += 1
            return 401
        document = json.loads(body)
        with self._lock:
            self._deliveries += 1
            for event in document.get("events", [document]):
                received = Received(name, event)
                if (name, event["key"]) in self._events:
                    self._repeats += 1
                self._events[(name, event["key"])] = received
                self._last = received
        return 204


def _signature_ok(key: bytes, headers: Mapping[str, str], body: bytes, now_s: float) -> bool:
    """The Standard Webhooks check: HMAC-SHA256 of `id.timestamp.body`, a timestamp near now."""
    message_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not message_id or not timestamp or not timestamp.isdigit():
        return False
    if abs(now_s - int(timestamp)) > SIGNATURE_TOLERANCE_S:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    offered = [s.split(",", 1)[-1].encode() for s in (headers.get("webhook-signature") or "").split()]
    return any(hmac.compare_digest(expected, s) for s in offered)


# --- the summary ----------------------------------------------------------------------------------
def story_lines(
    incidents: Sequence[Mapping[str, Any]],
    registry: Registry,
    received: ReceiverStats,
    now: datetime,
) -> list[str]:
    """The incidents (item, status, origin reach, stations seen, next ETA) and the webhooks."""
    names = _Names(registry)
    lines = [_incident_line(i, names, now) for i in incidents]
    if received.deliveries or received.bad_signatures:
        check = (
            "signatures OK"
            if not received.bad_signatures
            else f"{received.bad_signatures} with a BAD signature refused"
        )
        lines.append(
            f"  webhooks  {received.events} received by {len(received.receivers)} of the network's"
            f" receivers ({received.deliveries} deliveries, {check})"
        )
        if received.last is not None:
            event = received.last.event
            change = event.get("annotations", {}).get("change", event.get("status", ""))
            summary = str(event.get("annotations", {}).get("summary", ""))
            lines.append(f"            last to {received.last.receiver} [{change}] {_clip(summary, 90)}")
    return lines


class _Names:
    """Display names of stations and network points."""

    def __init__(self, registry: Registry) -> None:
        self._names = {s.id: s.name for s in registry.values()}
        if registry.network is not None:
            self._names.update((p.id, p.name) for p in registry.network.spec.points)
        self._items = {code: item.name_zh for code, item in default_standard().items.items()}

    def __call__(self, point_id: str) -> str:
        return self._names.get(point_id, point_id)

    def item(self, code: str) -> str:
        return self._items.get(code, code)


def _incident_line(incident: Mapping[str, Any], names: _Names, now: datetime) -> str:
    stations = incident["stations"]
    seen = " → ".join(f"{names(s['station_id'])} {_local(s['first_exceeded_at'])}" for s in stations)
    origin = incident.get("origin")
    reach = ""
    if origin is not None:
        upper = "/".join(names(b["station_id"]) for b in origin["upstream"]) or "the river's top"
        reach = f" · origin {origin['river']} between {upper} and {names(origin['downstream'])}"
    status = incident["status"]
    if status == "confirmed":
        status = f"confirmed at {len(stations)} sections"
    elif incident.get("not_seen_downstream"):
        status = f"{status}, not seen at {names(incident['not_seen_downstream'])} (a sensor?)"
    ahead = [
        f"{names(f['point_id'])} {_local(f['eta'])}{_in(f['eta'], now)}" for f in _next_arrivals(incident)
    ]
    eta = f" · ETA {', '.join(ahead)}" if ahead else ""
    item = incident["item"]
    return f"  incident  {names.item(item)} ({item}) {status}{reach} · seen at {seen}{eta}"


def _next_arrivals(incident: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The forecast's next section and next intake below the incident's front."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for point in incident.get("forecast", ()):
        if point["kind"] in ("station", "intake"):
            chosen.setdefault(point["kind"], point)
    return sorted(chosen.values(), key=lambda p: str(p["eta"]))


def _in(eta: str, now: datetime) -> str:
    hours = (_time(eta) - now) / timedelta(hours=1)
    return f" (in {hours:.1f} h)" if hours > 0 else ""


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _local(text: str) -> str:
    return _time(text).astimezone(LOCAL).strftime("%m-%d %H:%M")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
