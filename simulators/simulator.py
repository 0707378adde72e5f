"""The simulator: stations' signals plus a scenario, turned into the messages stations would send.

`Simulator.iter_messages(start, end)` yields every message of the period in the order stations
would send them: each station reports at the multiples of its interval (as data loggers report on
the clock), stations that report at the same instant in registry order. The stream is a pure
function of (stations, scenario, seed, format, start, end): the same arguments give the same bytes.
Out-of-order payloads are the exception to time order, by design: one is held back and sent after
the station's next message on the same topic. `run_backfill` and `run_realtime` drive a publisher
from this stream (see `simulators.runner`).

Pollution events with an `origin` follow the registry's river network (simulators/spills.py):
given a `Registry`, the simulator takes its `network`; given bare stations, pass `network=`.

Usage:
    simulator = Simulator(Registry.load(path), load_scenario(demo), seed=1)
    for message in simulator.iter_messages(start, start + timedelta(hours=1)):
        print(message.topic, message.payload)
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from config.network import RiverNetwork
from config.parameters import default_catalogue
from config.registry import Registry, Station
from simulators import noise, runner
from simulators.effects import Overlay, Readings, passages
from simulators.formats import Format, make_format
from simulators.publish import Publisher
from simulators.runner import RunSummary
from simulators.scenario import BadPayloadsEvent, PollutionEvent, Scenario
from simulators.signals import DEFAULT_ZONE, StationSignals

# Counter channels of the per-message draws, so each decision has its own independent number.
_DRAW_SPOIL, _DRAW_KIND, _DRAW_VARIANT = 0, 1, 2


class SimMessage(NamedTuple):
    """One message to publish; `anomaly` names the bad-payload kind it carries, if any."""

    topic: str
    payload: bytes
    sim_time: datetime
    station_id: str
    anomaly: str | None = None


class Simulator:
    """Messages of a set of stations under a scenario; see the module docstring."""

    def __init__(
        self,
        stations: Iterable[Station] | Mapping[str, Station],
        scenario: Scenario | None = None,
        *,
        seed: int = 0,
        format: str = "json",
        report_interval: timedelta | None = None,
        network: RiverNetwork | None = None,
    ) -> None:
        self.scenario = scenario or Scenario.quiet()
        if network is None and isinstance(stations, Registry):
            network = stations.network
        self.network = network
        self.seed = seed
        self.format: Format = make_format(format)
        known = {s.id: s for s in (stations.values() if isinstance(stations, Mapping) else stations)}
        _check_names(self.scenario, known)
        for event in self.scenario.events:
            if isinstance(event, PollutionEvent) and event.origin is not None:
                passages(event, known, self.network)  # an origin off the network fails here, not mid-run
        chosen = self.scenario.stations
        self.stations: tuple[Station, ...] = (
            tuple(known[i] for i in chosen) if chosen else tuple(known.values())
        )
        self._all_stations = known
        self.intervals: dict[str, float] = {
            s.id: self._interval_of(s, report_interval) for s in self.stations
        }
        self._zones = {s.id: ZoneInfo(s.timezone or DEFAULT_ZONE) for s in self.stations}
        self._keys = {s.id: noise.key_of("transport", seed, s.id) for s in self.stations}

    def _interval_of(self, station: Station, override: timedelta | None) -> float:
        interval = (
            override
            or self.scenario.report_intervals.get(station.id)
            or self.scenario.report_interval
            or timedelta(seconds=station.report_interval_s)
        )
        return interval.total_seconds()

    def registry_stations(self) -> list[Station]:
        """The simulated stations with their simulated intervals: the registry the daemon should load.

        With it the daemon's silent-station rule expects reports as often as they come.
        """
        return [
            s.model_copy(update={"report_interval_s": max(1, math.ceil(self.intervals[s.id]))})
            for s in self.stations
        ]

    def report_count(self, start: datetime, end: datetime) -> int:
        """How many reports the stations make in [start, end), silences and faults aside."""
        t0, t1 = start.timestamp(), end.timestamp()
        return sum(max(0, math.ceil(t1 / iv) - math.ceil(t0 / iv)) for iv in self.intervals.values())

    def run_backfill(
        self,
        publisher: Publisher,
        start: datetime,
        end: datetime,
        *,
        stop: threading.Event | None = None,
        progress: bool | None = None,
    ) -> RunSummary:
        """Send every message of [start, end) as fast as the publisher takes them, unless `stop` is set."""
        return runner.run_backfill(self, publisher, start, end, stop=stop, progress=progress)

    def run_realtime(
        self,
        publisher: Publisher,
        stop: threading.Event,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        duration: timedelta | None = None,
        progress: bool | None = None,
    ) -> RunSummary:
        """Send messages paced to their simulated time at `speed` until `duration` passes or `stop` is set."""
        return runner.run_realtime(
            self, publisher, stop, speed=speed, start=start, duration=duration, progress=progress
        )

    def iter_messages(self, start: datetime, end: datetime | None = None) -> Iterator[SimMessage]:
        """Every message of [start, end) (forever without `end`); scenario times count from `start`."""
        origin = start.timestamp()
        stop = math.inf if end is None else end.timestamp()
        overlay = Overlay(self.scenario, self._all_stations, origin, self.network)
        signals = {
            s.id: StationSignals(
                s, self.seed, storms=overlay.storms(s.id), rain_window_s=self.intervals[s.id]
            )
            for s in self.stations
        }
        queue = [
            (math.ceil(origin / self.intervals[s.id]) * self.intervals[s.id], i)
            for i, s in enumerate(self.stations)
        ]
        heapq.heapify(queue)
        held: dict[str, SimMessage] = {}
        while queue and queue[0][0] < stop:
            at, index = heapq.heappop(queue)
            station = self.stations[index]
            heapq.heappush(queue, (at + self.intervals[station.id], index))
            since = at - origin
            if overlay.silent(station.id, since):
                continue
            readings = overlay.measure(station.id, since, _Truth(signals[station.id], overlay, origin))
            yield from self._messages(station, at, since, readings, overlay=overlay, held=held)
        # Held back for a next message that never came: sent last, and so in order after all.
        yield from (message._replace(anomaly=None) for message in held.values())

    def _messages(
        self,
        station: Station,
        at: float,
        since: float,
        readings: Readings,
        *,
        overlay: Overlay,
        held: dict[str, SimMessage],
    ) -> Iterator[SimMessage]:
        sim_time = datetime.fromtimestamp(at, UTC)
        sent_ts = (sim_time + overlay.clock_offset(station.id, since)).astimezone(self._zones[station.id])
        spoil = overlay.bad_payloads(station.id, since)
        for number, (topic, payload) in enumerate(self.format.encode(station, sent_ts, readings)):
            message = SimMessage(topic, payload, sim_time, station.id)
            key = noise.mix(self._keys[station.id], int(at * 1000) * 16 + number)
            kind = _spoil_kind(spoil, key)
            if kind == "out_of_order" and topic not in held:
                held[topic] = message._replace(anomaly=kind)
                continue
            if kind == "malformed":
                message = message._replace(payload=_malform(payload, key), anomaly=kind)
            elif kind == "oversized" and spoil is not None:
                message = message._replace(
                    payload=self.format.oversize(payload, spoil.oversized_bytes), anomaly=kind
                )
            yield message
            if kind == "duplicate":
                yield message._replace(anomaly=kind)
            late = held.pop(topic, None)
            if late is not None:
                yield late


class _Truth:
    """The true values of a station, seconds since the start of the run: signals plus pollution."""

    __slots__ = ("_origin", "_overlay", "_signals")

    def __init__(self, signals: StationSignals, overlay: Overlay, origin: float) -> None:
        self._signals, self._overlay, self._origin = signals, overlay, origin

    def __call__(self, since: float) -> dict[str, float]:
        values = self._signals.sample(datetime.fromtimestamp(self._origin + since, UTC))
        self._overlay.pollute(self._signals.station.id, since, values)
        return values


def _spoil_kind(spoil: BadPayloadsEvent | None, key: int) -> str | None:
    if spoil is None or noise.uniform(key, _DRAW_SPOIL) >= spoil.rate:
        return None
    return spoil.kinds[int(noise.uniform(key, _DRAW_KIND) * len(spoil.kinds))]


def _malform(payload: bytes, key: int) -> bytes:
    """Half the payload (a cut-off transmission) or bytes that are no text at all."""
    if noise.uniform(key, _DRAW_VARIANT) < 0.5:
        return payload[: len(payload) // 2]
    return bytes(0x80 | (noise.mix(key, 100 + i) & 0x7F) for i in range(32))


def _check_names(scenario: Scenario, known: Mapping[str, Station]) -> None:
    unknown = sorted(scenario.station_ids() - set(known))
    if unknown:
        raise ValueError(
            f"scenario {scenario.name!r} names stations not in the registry: {', '.join(unknown)}"
        )
    catalogue = default_catalogue()
    codes: set[str] = set()
    for event in scenario.events:
        codes.update(getattr(event, "deltas", None) or ())
        codes.update(getattr(event, "parameters", None) or ())
    codes.update(e.parameter for e in scenario.expect if e.parameter is not None)
    codes.update(i.item for i in scenario.expect_incidents or ())
    bad = sorted(codes - set(catalogue))
    if bad:
        raise ValueError(f"scenario {scenario.name!r} names unknown parameters: {', '.join(bad)}")
