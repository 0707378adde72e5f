"""A scenario laid over a run: what its events do to each station at each instant.

`Overlay` turns a validated `Scenario` and the start of a run into per-station answers: the storms
falling on a station (as rain events for its signals), the pollution added to its concentrations,
what its sensors make of the truth (drift, stuck, flags), whether it is silent, how far its clock
is off, and which bad-payload event, if any, applies. It holds no clock: every question carries
the instant, as seconds since the start of the run.

A pollution slug with an `origin` (the network form) reaches each water-quality station below it
after the network's travel time, diluted at confluences and decayed as the tracker's forecast
assumes (simulators/spills.py). One given as a station list or a `river` (the legacy forms) reaches
station k of its path after the travel times of the legs before it (straight-line distance over
`velocity_m_s`, or `travel_time`), its amplitude multiplied by `dilution` per leg. Either way the
slug's length grows by (1 + `spread`) per station passed, and its shape is a plateau with
sine-squared ramps on the first and last 15 % of its length. A `spike` is a sensor's, not the
water's: added to one station's readings, a plateau for its duration, seen nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from config.network import RiverNetwork
from config.parameters import default_catalogue
from config.registry import Station
from simulators.scenario import (
    BadPayloadsEvent,
    ClockSkewEvent,
    DriftEvent,
    FlagEvent,
    PollutionEvent,
    Scenario,
    SilenceEvent,
    SpikeEvent,
    StormEvent,
    StuckEvent,
)
from simulators.signals import DECIMALS, RainEvent
from simulators.spills import spill_arrivals

Readings = dict[str, tuple[float, str]]
# Share of a slug's length spent ramping up, and again ramping down.
_RAMP = 0.15
_EARTH_RADIUS_M = 6_371_000.0
_NORMAL_FLAG = "N"


@dataclass(frozen=True, slots=True)
class SlugPassage:
    """One pollution slug as one station sees it: seconds since the start of the run."""

    arrival_s: float
    length_s: float
    amplitude: float
    deltas: Mapping[str, float]

    def deltas_at(self, since_s: float) -> dict[str, float]:
        x = (since_s - self.arrival_s) / self.length_s
        if not 0.0 <= x < 1.0:
            return {}
        edge = min(x, 1.0 - x) / _RAMP
        shape = math.sin(math.pi / 2 * edge) ** 2 if edge < 1.0 else 1.0
        return {code: delta * self.amplitude * shape for code, delta in self.deltas.items()}


class Overlay:
    """The effects of one scenario on one run, by station and instant."""

    def __init__(
        self,
        scenario: Scenario,
        stations: Mapping[str, Station],
        start_epoch_s: float,
        network: RiverNetwork | None = None,
    ) -> None:
        self._storms: dict[str, list[RainEvent]] = {}
        self._slugs: dict[str, list[SlugPassage]] = {}
        self._sensor: dict[str, list[DriftEvent | StuckEvent | FlagEvent]] = {}
        self._spikes: dict[str, list[SpikeEvent]] = {}
        self._silences: dict[str, list[SilenceEvent]] = {}
        self._skews: dict[str, list[ClockSkewEvent]] = {}
        self._bad: list[BadPayloadsEvent] = []
        self._stuck_values: dict[tuple[int, str], float] = {}
        for event in scenario.events:
            match event:
                case StormEvent():
                    assert event.duration is not None  # the model requires it
                    rain = RainEvent(
                        start_epoch_s + event.at.total_seconds(),
                        event.duration.total_seconds(),
                        event.intensity_mm_h,
                    )
                    for station_id in event.stations:
                        self._storms.setdefault(station_id, []).append(rain)
                case PollutionEvent():
                    for station_id, passage in passages(event, stations, network):
                        self._slugs.setdefault(station_id, []).append(passage)
                case DriftEvent() | StuckEvent() | FlagEvent():
                    self._sensor.setdefault(event.station, []).append(event)
                case SpikeEvent():
                    self._spikes.setdefault(event.station, []).append(event)
                case SilenceEvent():
                    self._silences.setdefault(event.station, []).append(event)
                case ClockSkewEvent():
                    self._skews.setdefault(event.station, []).append(event)
                case BadPayloadsEvent():
                    self._bad.append(event)

    def storms(self, station_id: str) -> list[RainEvent]:
        return self._storms.get(station_id, [])

    def silent(self, station_id: str, since_s: float) -> bool:
        since = timedelta(seconds=since_s)
        return any(e.active(since) for e in self._silences.get(station_id, ()))

    def clock_offset(self, station_id: str, since_s: float) -> timedelta:
        since = timedelta(seconds=since_s)
        return sum((e.offset for e in self._skews.get(station_id, ()) if e.active(since)), timedelta(0))

    def bad_payloads(self, station_id: str, since_s: float) -> BadPayloadsEvent | None:
        since = timedelta(seconds=since_s)
        for event in self._bad:
            if event.active(since) and (event.stations is None or station_id in event.stations):
                return event
        return None

    def pollute(self, station_id: str, since_s: float, values: dict[str, float]) -> None:
        """Add the pollution passing this station now to its true values, in place."""
        for passage in self._slugs.get(station_id, ()):
            for code, delta in passage.deltas_at(since_s).items():
                if code in values:
                    values[code] = _clamp(code, values[code] + delta)

    def measure(
        self, station_id: str, since_s: float, truth: Callable[[float], dict[str, float]]
    ) -> Readings:
        """What the station's sensors report: `truth(since_s)` through drift, stuck and flag events."""
        values = truth(since_s)
        flags = dict.fromkeys(values, _NORMAL_FLAG)
        since = timedelta(seconds=since_s)
        for event in self._sensor.get(station_id, ()):
            if not event.active(since):
                continue
            codes = [c for c in (event.parameters or values) if c in values]
            match event:
                case DriftEvent():
                    hours = (since - event.at).total_seconds() / 3600
                    for code in codes:
                        values[code] = _clamp(code, values[code] + event.rate_per_hour * hours)
                case StuckEvent():
                    for code in codes:
                        values[code] = self._stuck_value(event, code, truth)
                case FlagEvent():
                    for code in codes:
                        flags[code] = event.flag.value
        for spike in self._spikes.get(station_id, ()):
            if spike.active(since):
                for code, delta in spike.deltas.items():
                    if code in values:
                        values[code] = _clamp(code, values[code] + delta)
        return {code: (round(value, DECIMALS.get(code, 3)), flags[code]) for code, value in values.items()}

    def _stuck_value(self, event: StuckEvent, code: str, truth: Callable[[float], dict[str, float]]) -> float:
        key = (id(event), code)
        if key not in self._stuck_values:
            self._stuck_values[key] = truth(event.at.total_seconds())[code]
        return self._stuck_values[key]


def river_path(event: PollutionEvent, stations: Iterable[Station]) -> list[Station]:
    """The stations a slug passes, in downstream order."""
    by_id = {s.id: s for s in stations}
    if event.stations is not None:
        return [by_id[i] for i in event.stations]
    on_river = [
        s for s in by_id.values() if s.river == event.river and s.water_body == "river" and "water" in s.kinds
    ]
    axis: dict[str, Callable[[Station], float]] = {
        "east": lambda s: s.lon,
        "west": lambda s: -s.lon,
        "north": lambda s: s.lat,
        "south": lambda s: -s.lat,
    }
    return sorted(on_river, key=axis[event.flows])


def passages(
    event: PollutionEvent, stations: Mapping[str, Station], network: RiverNetwork | None
) -> list[tuple[str, SlugPassage]]:
    """Each station the slug passes, with the slug as it sees it there, in downstream order."""
    assert event.duration is not None  # the model requires it
    start, duration = event.at.total_seconds(), event.duration.total_seconds()
    if event.origin is not None:
        if network is None:
            raise ValueError("a pollution event with an origin needs a registry with a network: section")
        return [
            (
                a.station_id,
                SlugPassage(start + a.travel_time_s, duration * (1.0 + event.spread) ** k, 1.0, a.deltas),
            )
            for k, a in enumerate(spill_arrivals(event, network))
        ]
    path = river_path(event, stations.values())
    arrival = start
    out: list[tuple[str, SlugPassage]] = []
    for k, station in enumerate(path):
        if k > 0:
            if event.travel_time is not None:
                arrival += event.travel_time.total_seconds()
            else:
                arrival += haversine_m(path[k - 1], station) / event.velocity_m_s
        length = duration * (1.0 + event.spread) ** k
        out.append((station.id, SlugPassage(arrival, length, event.dilution**k, event.deltas)))
    return out


def haversine_m(a: Station, b: Station) -> float:
    """Great-circle distance between two stations, m."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _clamp(code: str, value: float) -> float:
    parameter = default_catalogue().get(code)
    return max(parameter.min, min(parameter.max, value)) if parameter is not None else value
