"""Support for the cluster proof (`test_cluster_proof.py`): the traffic, what it must produce, and
the checks that everything reconciles after a fault.

`traffic()` is 24 river sections in four districts (12 partitions, so every worker of three holds
about four) reporting every 4 hours for four local days, cut into eight half-day waves. Its
pollution event: four sections with a sustained NH3-N spill (class IV, then worse than V from
noon, all the next day, clean the day after: a warning escalated to critical, then resolved),
one section at class IV for two days (escalated by time alone), eight single spikes (a warning,
resolved the same day), the rest clean.

`reference(...)` is what it must produce, computed without the cluster: the same messages through
the single-node processor core (decode, validate) into one in-process `AlertService` (the same
registry file, the default alerts config, nothing notified), in the same per-station order; its
`notification_events` are the transitions, and its readings the (station, parameter, time) points.
A partition's engine sees only its own stations, but no default rule spans stations without a river
network in the registry (incidents) or without daily assessments (regional rules): the transitions
are the same.

`ProofRun` is one run: a three-node cluster, three workers, one receiver (`ClusterRig`), the
waves published over MQTT to a node the test names, and `check_reconciled()`, which waits until
everything settled and asserts, exactly:

- the store holds every published point once: COUNT(*) == published messages × 5 values, and its
  (station, parameter, time) set is the reference's (the primary key forbids a duplicate);
- the stations stream holds every published message (at least once: MQTT QoS 1 resends what a
  dropped connection left unacknowledged), and every partition's current consumer has
  acknowledged all of it (nothing pending, nothing in flight);
- the receiver got the reference's transitions as a multiset of (station, rule, status, severity,
  change), every signature valid, no key twice (or at most once, when a dispatcher was killed between
  a delivery and its ack: the receiver drops that repeat by key);
- the outbox stream holds one message per transition (its dedup by key absorbed every replay), and
  the receiver's consumer acknowledged all of them;
- the running workers dead-lettered nothing.

What does not reconcile, on purpose: the workers' in-process counters (`source.acked`, the
partitions' `messages`, `outbox.published`) die with a killed worker, and a replay after a kill
counts its messages again on the new owner; the stream's and the store's counts are the ones
that survive every fault, so the assertions are on them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import nats
from nats.js.api import ConsumerInfo

from alerts.service import AlertService
from config.registry import Registry, Station
from ingest.app.assessment_source import assessment_config
from ingest.app.daemon import build_processor_core
from ingest.app.settings import load_settings
from ingest.processor import process_batch
from ingest.records import decode_readings, encode_message
from simulators.formats import JsonFormat
from tests.helpers import wait_for
from tests.integration.alert_scenario_support import (
    HOURS,
    LOCAL,
    Receiver,
    Report,
    at,
    local_day,
    readings,
    river_station,
)
from tests.integration.cluster_support import WAIT, ClusterRig
from tests.integration.daemon_process import DaemonProcess
from tests.servers import NatsServer

DISTRICTS: Final = ("Yuzhong", "Jiangbei", "Shapingba", "Banan")
PER_DISTRICT: Final = 6
PARTITIONS: Final = 12
WORKERS: Final = 3
DAYS_AGO: Final = (4, 3, 2, 1)
ITEMS: Final = 5  # values per report (alert_scenario_support.CLEAN)
RECEIVER: Final = "duty"
STATIONS_STREAM: Final = "ecowatch-stations"
OUTBOX_STREAM: Final = "ecowatch-outbox"
# GB 3838 river NH3-N: class III / IV / V limits 1.0 / 1.5 / 2.0 mg/L; the default rule's emergency
# threshold is twice class V (4.0).
CLASS_IV: Final = 1.3
WORSE_THAN_V: Final = 2.6
SPIKE: Final = 3.0

# (station, rule, status, severity, change): one notified transition.
Transition = tuple[str | None, str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class Traffic:
    stations: list[Station]
    waves: list[list[Report]]  # half days, each in (time, station) order

    @property
    def reports(self) -> list[Report]:
        return [r for wave in self.waves for r in wave]


def traffic() -> Traffic:
    """The stations and their four days of reports in eight waves (see the module docstring)."""
    days = [local_day(n) for n in DAYS_AGO]
    stations = [
        river_station(f"{district.lower()}-{n:02d}", district)
        for district in DISTRICTS
        for n in range(1, PER_DISTRICT + 1)
    ]
    plan: dict[str, dict[tuple[int, int], dict[str, tuple[float, str]]]] = {s.id: {} for s in stations}
    by_district = {d: [s for s in stations if s.district == d] for d in DISTRICTS}
    worse = readings(nh3n=WORSE_THAN_V)
    for index, district in enumerate(DISTRICTS):
        # The spill: class IV until noon, worse than V from noon and all the next day, clean after.
        spill, start = by_district[district][0], index % 2
        for hour in HOURS:
            plan[spill.id][(start, hour)] = readings(nh3n=CLASS_IV) if hour < 12 else worse
            plan[spill.id][(start + 1, hour)] = worse
        # Single spikes at two other sections, on different days and hours.
        for offset, spiking in enumerate(by_district[district][1:3]):
            plan[spiking.id][((index + offset * 2) % len(days), (4, 8)[offset])] = readings(nh3n=SPIKE)
    lasting = by_district[DISTRICTS[0]][3]  # class IV for two days: critical by time alone
    for lasting_day in (1, 2):
        for hour in HOURS:
            plan[lasting.id][(lasting_day, hour)] = readings(nh3n=CLASS_IV)
    waves: list[list[Report]] = []
    for d, day in enumerate(days):
        for half in (HOURS[:3], HOURS[3:]):
            waves.append(
                [
                    Report(s, at(day, hour), plan[s.id].get((d, hour), readings()))
                    for hour in half
                    for s in stations
                ]
            )
    return Traffic(stations, waves)


@dataclass(frozen=True, slots=True)
class Expected:
    transitions: Counter[Transition]
    points: frozenset[tuple[str, str, int]]  # (station, parameter, time_ns)
    messages: int


def transition(event: dict[str, Any]) -> Transition:
    station = event.get("station")
    return (
        station["id"] if station else None,
        event["rule"],
        event["status"],
        event["severity"],
        event["annotations"].get("change"),
    )


def messages_of(reports: Sequence[Report]) -> list[tuple[str, bytes]]:
    """The MQTT messages of `reports` as stations send them (what `ClusterRig.publish` sends)."""
    encoder = JsonFormat()
    return [m for r in reports for m in encoder.encode(r.station, r.ts.astimezone(LOCAL), r.values)]


def reference(folder: Path, registry_file: Path, reports: Sequence[Report]) -> Expected:
    """What the reports must produce: decoded and validated by the single-node processor core, then
    evaluated by one in-process `AlertService` with the default alerts config (see the module
    docstring); its notification events and the readings' points."""
    settings = load_settings(None, data_dir=folder, registry=registry_file)
    registry = Registry.load(registry_file)
    core = build_processor_core(settings, registry)
    assessment = assessment_config(settings)
    folder.mkdir(parents=True, exist_ok=True)
    service = AlertService(
        settings.alerts,
        registry,
        folder / "alerts.db",
        assessment_rules=assessment.rules,
        keep_days=assessment.keep_days,
        keep_samples=False,
    )
    points: set[tuple[str, str, int]] = set()
    messages = messages_of(reports)
    try:
        records = [
            (n, encode_message(topic.encode(), payload, time.time_ns()))
            for n, (topic, payload) in enumerate(messages)
        ]
        for encoded, _count, rejected, _outcome in process_batch(core, records, time.time_ns()):
            assert not rejected, f"the reference rejected a report: {rejected}"
            assert encoded is not None
            batch = decode_readings(encoded)
            points.update((r.station_id, r.parameter, r.time_ns) for r in batch)
            service.write(batch)
    finally:
        service.close()
    with closing(sqlite3.connect(folder / "alerts.db")) as db:
        events = [row[0] for row in db.execute("SELECT event FROM notification_events ORDER BY id")]
    return Expected(Counter(transition(json.loads(e)) for e in events), frozenset(points), len(messages))


# -- JetStream, read from a node ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamCounts:
    messages: int
    consumers: dict[str, ConsumerInfo]


def stream_counts(urls: Sequence[str], stream: str) -> StreamCounts:
    """The stream's message count and its consumers (by name), as the cluster answers now."""

    async def read() -> StreamCounts:
        nc = await nats.connect(servers=list(urls), connect_timeout=5, max_reconnect_attempts=2)
        try:
            js = nc.jetstream(timeout=10)
            info = await js.stream_info(stream)
            consumers = await js.consumers_info(stream)
            assert info.state.messages is not None
            return StreamCounts(info.state.messages, {c.name: c for c in consumers})
        finally:
            await nc.close()

    return asyncio.run(read())


def drained(consumer: ConsumerInfo) -> bool:
    """Nothing left to deliver and nothing delivered but unacknowledged."""
    return consumer.num_pending == 0 and consumer.num_ack_pending == 0


def current_partition_consumers(consumers: dict[str, ConsumerInfo]) -> dict[int, ConsumerInfo]:
    """Each partition's consumer of the highest epoch (`part-<p>-e<epoch>`, ingest.cluster.source)."""
    best: dict[int, tuple[int, ConsumerInfo]] = {}
    for name, info in consumers.items():
        if not name.startswith("part-"):
            continue
        partition, epoch = (int(x) for x in name.removeprefix("part-").split("-e"))
        if partition not in best or best[partition][0] < epoch:
            best[partition] = (epoch, info)
    return {p: info for p, (_e, info) in best.items()}


# -- one run ---------------------------------------------------------------------------------------


class Publisher:
    """Publishes waves on a thread of its own (while the test injects a fault); `join` re-raises."""

    def __init__(self, run: ProofRun, waves: Sequence[int], node: int) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._publish, args=(run, waves, node), daemon=True)
        self._thread.start()

    def _publish(self, run: ProofRun, waves: Sequence[int], node: int) -> None:
        try:
            run.publish(*waves, node=node)
        except BaseException as exc:  # re-raised by join, on the test's thread
            self._error = exc

    def join(self, timeout: float = WAIT) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stations' publisher did not finish"
        if self._error is not None:
            raise self._error


class ProofRun:
    """Three NATS nodes, three workers, one receiver and the traffic (see the module docstring)."""

    def __init__(self, tmp_path: Path) -> None:
        self.traffic = traffic()
        self.receiver = Receiver(RECEIVER)
        self.rig = ClusterRig(
            tmp_path, self.traffic.stations, [self.receiver], nodes=3, workers=WORKERS, partitions=PARTITIONS
        )
        self.expected = reference(tmp_path / "reference", self.rig.registry, self.traffic.reports)
        self.sent_waves: list[int] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def __enter__(self) -> Self:
        self.rig.__enter__()
        try:
            self.wait_balanced()
        except BaseException:
            self.rig.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rig.__exit__(exc_type, exc, tb)

    def note(self, what: str) -> None:
        """A line of the run's story (pytest shows it with a failure, or with -s)."""
        print(f"[{time.monotonic() - self._started:6.1f} s] {what}, {self.rig.stored()} readings stored")

    # -- traffic ---------------------------------------------------------------------------------

    @property
    def waves(self) -> int:
        return len(self.traffic.waves)

    def publish(self, *waves: int, node: int) -> None:
        """Publish `waves` (0-based) in order over one MQTT connection to `node`'s listener, as a
        station keeps its connection; returns once every report is acknowledged."""
        self.rig.publish([r for wave in waves for r in self.traffic.waves[wave]], node=node)
        with self._lock:
            self.sent_waves.extend(waves)

    def publish_in_background(self, waves: Sequence[int], *, node: int) -> Publisher:
        return Publisher(self, waves, node)

    def published_readings(self) -> int:
        with self._lock:
            return sum(len(messages_of(self.traffic.waves[w])) for w in self.sent_waves) * ITEMS

    def wait_flowing(self, above: int) -> None:
        """Wait until the store holds more than `above` readings: the workers are storing a wave."""
        wait_for(
            lambda: self.rig.stored() > above,
            f"more than {above} readings stored",
            WAIT,
            detail=self.rig.explain,
        )

    # -- workers ---------------------------------------------------------------------------------

    def running(self) -> list[DaemonProcess]:
        return [w for w in self.rig.workers if w.running]

    def owned(self) -> dict[str, list[int]]:
        return {w.folder.name: sorted(int(p) for p in w.stats()["owned"]) for w in self.running()}

    def wait_balanced(self) -> dict[str, list[int]]:
        """Wait until the running workers own every partition once, evenly (ceil or floor each)."""
        running = len(self.running())
        low, high = PARTITIONS // running, -(-PARTITIONS // running)
        seen: list[dict[str, list[int]]] = []

        def balanced() -> bool:
            owned = self.owned()
            seen[:] = [owned]
            flat = sorted(p for parts in owned.values() for p in parts)
            return flat == list(range(PARTITIONS)) and all(low <= len(p) <= high for p in owned.values())

        wait_for(
            balanced, f"{running} workers to share the {PARTITIONS} partitions", WAIT, detail=lambda: seen
        )
        return seen[0]

    def dispatcher(self) -> DaemonProcess:
        """The running worker that holds the receiver's dispatch lease (waits for one)."""

        def find() -> DaemonProcess | None:
            for worker in self.running():
                if worker.stats()["dispatch"][RECEIVER]["dispatching"]:
                    return worker
            return None

        found: DaemonProcess = wait_for(find, "a worker dispatching to the receiver", WAIT)
        return found

    def intake_holder(self) -> DaemonProcess:
        """The running worker that holds the intake lease (waits for one)."""

        def find() -> DaemonProcess | None:
            return next((w for w in self.running() if w.stats()["intake"]["intaking"]), None)

        found: DaemonProcess = wait_for(find, "a worker holding the intake", WAIT)
        return found

    # -- nodes -----------------------------------------------------------------------------------

    @property
    def nodes(self) -> list[NatsServer]:
        return self.rig.nodes

    def leader_of(self, stream: str) -> int:
        """The index of the node that leads `stream` now."""
        assert self.rig.cluster is not None
        leader = self.rig.cluster.stream_leader(stream)
        return self.nodes.index(leader)

    # -- the checks --------------------------------------------------------------------------------

    def received(self) -> Counter[Transition]:
        return Counter(transition(e) for e in self.receiver.all())

    def check_reconciled(self, *, repeats: int = 0) -> None:
        """Wait until everything settled, then assert what the module docstring lists, exactly.

        `repeats`: how many deliveries of a key the receiver already had may come again (it drops
        them by key, so each transition is still notified once). A dispatcher killed between a
        delivery and its ack leaves that one message to be delivered again after `ack_wait`
        (ingest.cluster.outbox: one message in flight per receiver): at most 1 then, else 0.
        """
        expected = self.expected
        assert sorted(self.sent_waves) == list(range(self.waves)), self.sent_waves
        assert self.published_readings() == expected.messages * ITEMS
        self.rig.wait_stored(expected.messages * ITEMS)
        wait_for(
            lambda: self.received() == expected.transitions,
            "the reference's transitions at the receiver",
            WAIT,
            detail=self._transitions_diff,
        )
        urls = self.rig.urls
        outbox: list[StreamCounts] = []

        def outbox_drained() -> bool:
            outbox[:] = [stream_counts(urls, OUTBOX_STREAM)]
            consumer = outbox[0].consumers.get(f"outbox-{RECEIVER}")
            return consumer is not None and drained(consumer)

        wait_for(
            outbox_drained, "the receiver's outbox consumer to ack everything", WAIT, detail=lambda: outbox
        )
        stations: list[StreamCounts] = []

        def stations_drained() -> bool:
            stations[:] = [stream_counts(urls, STATIONS_STREAM)]
            current = current_partition_consumers(stations[0].consumers)
            return sorted(current) == list(range(PARTITIONS)) and all(map(drained, current.values()))

        wait_for(
            stations_drained, "every partition's consumer to ack everything", WAIT, detail=lambda: stations
        )

        # The store: every published point once, nothing else.
        assert self.rig.stored() == expected.messages * ITEMS
        assert self.stored_points() == expected.points
        # The stations stream: every published message (a QoS 1 PUBLISH resent after a reconnect
        # may be stored twice: the store above shows it counted once).
        assert stations[0].messages >= expected.messages
        # The receiver: every transition once, signed; the outbox: one message per transition.
        assert self.received() == expected.transitions
        assert self.receiver.bad_signatures == 0
        assert self.receiver.repeats <= repeats, f"{self.receiver.repeats} keys delivered again"
        if self.receiver.repeats:
            self.note(f"{self.receiver.repeats} key(s) delivered again, dropped by the receiver")
        assert len(self.receiver.events) == sum(expected.transitions.values())
        assert outbox[0].messages == len(self.receiver.events)
        for worker in self.running():
            assert worker.stats()["deadletters"] == {}, worker.folder.name

    def stored_points(self) -> frozenset[tuple[str, str, int]]:
        with closing(sqlite3.connect(f"file:{self.rig.store}?mode=ro", uri=True, timeout=10)) as db:
            rows = db.execute("SELECT station_id, parameter, time_ns FROM readings").fetchall()
        return frozenset((str(s), str(p), int(t)) for s, p, t in rows)

    def _transitions_diff(self) -> str:
        got, want = self.received(), self.expected.transitions
        lines = [
            f"missing {sorted((want - got).items(), key=str)}",
            f"extra {sorted((got - want).items(), key=str)}",
            f"repeats {self.receiver.repeats}, deliveries {self.receiver.deliveries}",
        ]
        for worker in self.running():
            try:
                stats = worker.stats()
            except Exception as exc:  # a worker that stopped answering
                lines.append(f"{worker.folder.name}: {exc!r}")
                continue
            lines.append(
                f"{worker.folder.name}: outbox {stats['outbox']} dispatch {stats['dispatch']} "
                f"senders {stats['senders']}"
            )
        try:
            outbox = stream_counts(self.rig.urls, OUTBOX_STREAM)
            lines.append(f"outbox stream: {outbox.messages} messages, consumers {outbox.consumers}")
        except Exception as exc:  # the cluster may be what is wrong
            lines.append(f"outbox stream: {exc!r}")
        return "\n".join(lines) + "\n" + self.rig.explain()
