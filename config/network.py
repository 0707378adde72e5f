"""The river network: rivers and confluences, positions along them, travel times, who must act.

The `network:` section of a station registry (config/registry.py) describes how water moves
between the monitoring points, so that an exceedance at one section can be followed up- and
downstream (alerts/incidents). A registry without it stays valid; nothing is tracked then.

- **Rivers** have a `length_km` and chainage (km) from 0 at their modelled top, increasing
  downstream. A river that flows into another `joins` it at `at_km` of the receiving river, with
  `flow_share`, the tributary's share of the flow just below the confluence (Q_trib / (Q_trib +
  Q_main), mean flows): the dilution of a plume crossing it. A plume on the tributary is
  multiplied by `flow_share`, one on the receiving river passing the mouth by `1 - flow_share`;
  without it no dilution is assumed (an over-estimate, the safe side for a warning). Rivers with
  no `joins` are outlets (several basins may leave the network). The confluences form a tree;
  a cycle, a confluence to an unknown river or past the receiving river's end fails the load.
- **Positions.** A station is on the network when it has `chainage_km` (a field of the station,
  beside its `river`, so the two cannot disagree) and its river is one of `rivers`; stations
  without one are not tracked. A station at a confluence's chainage is taken to be just below it:
  it sees the tributary's water. `points:` are the other places that matter: drinking-water
  intakes (取水口, `kind: intake`, `receivers` their operators), cross-boundary sections
  (入境/出境, `kind: boundary` with `upstream_district` and `downstream_district`), others. Point
  ids share one namespace with station ids.
- **Travel speed** at a place is, first found: a configured reach of the river (`speeds:`, a
  speed or a travel time over `from_km`..`to_km`, e.g. from a tracer study); the velocity the
  station at the top of that span (the nearest station upstream on the same river) reports, when
  a velocity source is given (`RiverNetwork.with_velocity`) and the reading is plausible; the
  river's `speed_km_h`; the network's `default_speed_km_h` (3.6 km/h = 1 m/s, the order of a
  medium river's mean velocity and the simulator's default slug speed).
- **Who must act**: `duties:` give a reach of a river to a district and its river chief (河长,
  a display name) with the notification receivers to tell (names of `notify.receivers`, never
  secrets); `district_receivers:` each district's duty room. `RiverNetwork.responsible` answers
  for a reach or a district, `responsible_downstream` for everything below a point. Receiver
  names cannot be checked here (config imports nothing of the notifier's): the daemon checks
  `receiver_names()` against its `notify.receivers`.

A registry with a network (stations carry `chainage_km`), in short:

    network:
      rivers:
        - {name: 长江, length_km: 820, speed_km_h: 5.4}
        - {name: 嘉陵江, length_km: 153, joins: {river: 长江, at_km: 250, flow_share: 0.2}}
      points:
        - {id: intake-jl-1, name: 嘉陵江 取水口, kind: intake, river: 嘉陵江, chainage_km: 130,
           receivers: [intake-operator]}
      duties:
        - {river: 长江, from_km: 240, to_km: 290, district: 江北区, river_chief: 江北区长江河长,
           receivers: [chief-jiangbei-cj]}
      district_receivers: {江北区: [duty-jiangbei]}
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Final, Literal, Protocol

from pydantic import Field, StringConstraints, model_validator

from config.types import StrictModel

# 1 m/s: the order of a medium river's mean velocity at normal flow, and the simulator's default.
DEFAULT_SPEED_KM_H: Final = 3.6
# A velocity reading outside this band (m/s) is a sensor fault or slack water, not a travel speed.
PLAUSIBLE_VELOCITY_M_S: Final = (0.02, 6.0)
# Same set as station ids (config/registry.py), which share the namespace of points.
POINT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
# Same as alerts.routing.RECEIVER_NAME_PATTERN (config cannot import alerts).
RECEIVER_PATTERN: Final = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
ReceiverName = Annotated[str, StringConstraints(pattern=RECEIVER_PATTERN)]
_SECONDS_PER_HOUR: Final = 3600.0

PointKind = Literal["station", "intake", "boundary", "other"]
# station id -> velocity in m/s from its latest valid reading, or None.
VelocitySource = Callable[[str], float | None]


class NetworkError(ValueError):
    """A network that does not fit its stations; the message names the fix."""


class StationLike(Protocol):
    """What the network reads of a station (config.registry.Station)."""

    @property
    def id(self) -> str: ...
    @property
    def river(self) -> str: ...
    @property
    def district(self) -> str: ...
    @property
    def kinds(self) -> tuple[str, ...]: ...
    @property
    def chainage_km(self) -> float | None: ...
    @property
    def report_interval_s(self) -> int: ...


# --- the section as configured --------------------------------------------------------------------
class Confluence(StrictModel):
    """Where a river flows into another."""

    river: str = Field(min_length=1, description="The receiving river.")
    at_km: float = Field(ge=0, description="Chainage of the mouth on the receiving river, km.")
    flow_share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Tributary's share of the flow below the confluence (mean flows); none: no dilution.",
    )


class SpeedReach(StrictModel):
    """A reach of a river with a known speed or travel time."""

    from_km: float = Field(ge=0, description="Top of the reach, km.")
    to_km: float = Field(gt=0, description="Bottom of the reach, km.")
    speed_km_h: float | None = Field(None, gt=0, description="Mean travel speed, km/h.")
    travel_time: timedelta | None = Field(None, description="Travel time over the whole reach.")

    @model_validator(mode="after")
    def _one_speed(self) -> SpeedReach:
        if self.to_km <= self.from_km:
            raise ValueError(f"to_km ({self.to_km}) must be below from_km ({self.from_km})")
        if (self.speed_km_h is None) == (self.travel_time is None):
            raise ValueError("give exactly one of speed_km_h and travel_time")
        if self.travel_time is not None and self.travel_time <= timedelta(0):
            raise ValueError("travel_time must be positive")
        return self

    @property
    def speed(self) -> float:
        """km/h."""
        if self.speed_km_h is not None:
            return self.speed_km_h
        assert self.travel_time is not None
        return (self.to_km - self.from_km) / (self.travel_time.total_seconds() / _SECONDS_PER_HOUR)


class River(StrictModel):
    """One river of the network."""

    name: str = Field(min_length=1, max_length=64, description="As in the stations' `river`.")
    length_km: float = Field(gt=0, description="Modelled length: chainage of its end (mouth or exit), km.")
    joins: Confluence | None = Field(None, description="Where it flows into another river; none: an outlet.")
    speed_km_h: float | None = Field(None, gt=0, description="Mean travel speed where no reach says.")
    speeds: tuple[SpeedReach, ...] = Field((), description="Reaches with a known speed or travel time.")

    @model_validator(mode="after")
    def _reaches_fit(self) -> River:
        reaches = sorted(self.speeds, key=lambda r: r.from_km)
        for reach in reaches:
            if reach.to_km > self.length_km:
                raise ValueError(
                    f"{self.name}: speed reach to_km {reach.to_km} is past the river's end "
                    f"(length_km {self.length_km})"
                )
        for upper, lower in itertools.pairwise(reaches):
            if lower.from_km < upper.to_km:
                raise ValueError(f"{self.name}: speed reaches overlap at km {lower.from_km}")
        return self


class Point(StrictModel):
    """A place on a river that is not a station: an intake, a boundary section, another."""

    id: str = Field(pattern=POINT_ID_PATTERN, description="Unique among points and stations.")
    name: str = Field(min_length=1, max_length=128, description="Display name.")
    kind: Literal["intake", "boundary", "other"] = Field(description="What is there.")
    river: str = Field(min_length=1, description="The river it is on.")
    chainage_km: float = Field(ge=0, description="Position along the river, km.")
    district: str | None = Field(None, description="District it lies in.")
    upstream_district: str | None = Field(None, description="Boundary: the district (or province) above.")
    downstream_district: str | None = Field(None, description="Boundary: the district below.")
    receivers: tuple[ReceiverName, ...] = Field(
        (), description="Who to tell when a plume heads here (operators)."
    )

    @model_validator(mode="after")
    def _boundary_sides(self) -> Point:
        if self.kind == "boundary" and (self.upstream_district is None or self.downstream_district is None):
            raise ValueError(f"boundary {self.id}: give upstream_district and downstream_district")
        return self


class Duty(StrictModel):
    """A reach of a river, the district in charge, its river chief and who to tell."""

    river: str = Field(min_length=1, description="The river.")
    from_km: float = Field(ge=0, description="Top of the reach, km.")
    to_km: float = Field(gt=0, description="Bottom of the reach, km.")
    district: str = Field(min_length=1, description="District in charge.")
    river_chief: str | None = Field(None, description="The river chief's title (河长), for messages.")
    receivers: tuple[ReceiverName, ...] = Field((), description="Receiver names (notify.receivers[].name).")


class NetworkSpec(StrictModel):
    """The `network:` section of a registry file."""

    note: str | None = Field(None, description="Provenance, e.g. illustrative.")
    default_speed_km_h: float = Field(
        DEFAULT_SPEED_KM_H, gt=0, description="Speed where nothing else says (1 m/s)."
    )
    rivers: tuple[River, ...] = Field(min_length=1, description="Rivers and their confluences.")
    points: tuple[Point, ...] = Field((), description="Intakes, boundary sections and other points.")
    duties: tuple[Duty, ...] = Field((), description="Who is in charge of which reach.")
    district_receivers: dict[str, tuple[ReceiverName, ...]] = Field(
        default_factory=dict, description="Each district's duty room(s), by receiver name."
    )

    @model_validator(mode="after")
    def _topology(self) -> NetworkSpec:
        rivers: dict[str, River] = {}
        for river in self.rivers:
            if river.name in rivers:
                raise ValueError(f"river {river.name!r} is listed twice: merge the two entries")
            rivers[river.name] = river
        _check_confluences(rivers)
        seen: set[str] = set()
        for point in self.points:
            if point.id in seen:
                raise ValueError(f"duplicate point id {point.id!r}")
            seen.add(point.id)
            _check_on(rivers, point.river, point.chainage_km, f"point {point.id}")
        for index, duty in enumerate(self.duties):
            if duty.to_km <= duty.from_km:
                raise ValueError(f"duties.{index}: to_km must be below from_km")
            _check_on(rivers, duty.river, duty.to_km, f"duties.{index} ({duty.district})")
        return self


def _check_confluences(rivers: Mapping[str, River]) -> None:
    for river in rivers.values():
        if river.joins is None:
            continue
        target = rivers.get(river.joins.river)
        if target is None:
            raise ValueError(
                f"{river.name} joins unknown river {river.joins.river!r}: add it to network.rivers"
            )
        if river.joins.at_km > target.length_km:
            raise ValueError(
                f"{river.name} joins {target.name} at km {river.joins.at_km}, past its end "
                f"(length_km {target.length_km}): fix at_km or the length"
            )
    for river in rivers.values():
        chain = [river.name]
        current = river
        while current.joins is not None:
            current = rivers[current.joins.river]
            chain.append(current.name)
            if current.name in chain[:-1]:
                raise ValueError(
                    f"confluences form a cycle: {' → '.join(chain)}; every river must flow to an "
                    "outlet (a river without joins)"
                )


def _check_on(rivers: Mapping[str, River], name: str, km: float, what: str) -> None:
    river = rivers.get(name)
    if river is None:
        raise ValueError(f"{what} is on unknown river {name!r}: add it to network.rivers")
    if km > river.length_km:
        raise ValueError(
            f"{what} at km {km} is past the end of {name} (length_km {river.length_km}): "
            "lower its chainage_km or raise the river's length_km"
        )


# --- values the model answers with ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Position:
    """Where a station or point is."""

    point_id: str
    kind: PointKind
    river: str
    chainage_km: float


@dataclass(frozen=True, slots=True)
class Hop:
    """A point seen from another along the flow: how far, how long, how diluted."""

    point_id: str
    kind: PointKind
    river: str
    chainage_km: float
    distance_km: float
    travel_time_s: float
    dilution: float  # product of the confluence factors crossed, 1 where none is known


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of one river, from_km above to_km."""

    river: str
    from_km: float
    to_km: float


@dataclass(frozen=True, slots=True)
class Reach:
    """What drains to a station since the nearest stations upstream (on every branch)."""

    downstream: str
    upstream: tuple[str, ...]  # the bounding stations; empty when the reach starts at a river's top
    segments: tuple[Segment, ...]  # the downstream station's river first

    @property
    def river(self) -> str:
        return self.segments[0].river


@dataclass(frozen=True, slots=True)
class Responsibility:
    """Who must act: districts, river chiefs (titles) and receiver names, each in flow order."""

    districts: tuple[str, ...] = ()
    river_chiefs: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Leg:
    river: str
    from_km: float
    to_km: float


# --- the model ------------------------------------------------------------------------------------
class RiverNetwork:
    """The network of a registry, with its stations placed; immutable, cheap to query."""

    def __init__(
        self, spec: NetworkSpec, stations: Iterable[StationLike], velocity: VelocitySource | None = None
    ) -> None:
        self.spec = spec
        self._velocity = velocity
        self._rivers = {r.name: r for r in spec.rivers}
        self._positions: dict[str, Position] = {}
        self._districts: dict[str, str] = {}
        self._intervals: dict[str, int] = {}
        self._monitoring: set[str] = set()
        for station in stations:
            if station.chainage_km is None:
                continue
            river = self._rivers.get(station.river)
            if river is None:
                raise NetworkError(
                    f"network: station {station.id} has chainage_km but its river {station.river!r} is not "
                    "in network.rivers: add the river or remove the station's chainage_km"
                )
            if station.chainage_km > river.length_km:
                raise NetworkError(
                    f"network: station {station.id} at km {station.chainage_km} is past the end of "
                    f"{river.name} (length_km {river.length_km}): lower its chainage_km or raise the "
                    "river's length_km"
                )
            self._positions[station.id] = Position(station.id, "station", station.river, station.chainage_km)
            self._districts[station.id] = station.district
            self._intervals[station.id] = station.report_interval_s
            if "water" in station.kinds:
                self._monitoring.add(station.id)
        for point in spec.points:
            if point.id in self._positions:
                raise NetworkError(f"network: point id {point.id!r} is also a station id: rename the point")
            self._positions[point.id] = Position(point.id, point.kind, point.river, point.chainage_km)
        self._points = {p.id: p for p in spec.points}
        self._on_river: dict[str, list[Position]] = {name: [] for name in self._rivers}
        for position in self._positions.values():
            self._on_river[position.river].append(position)
        for positions in self._on_river.values():
            positions.sort(key=lambda p: (p.chainage_km, p.point_id))
        self._tributaries: dict[str, list[River]] = {name: [] for name in self._rivers}
        for river in spec.rivers:
            if river.joins is not None:
                self._tributaries[river.joins.river].append(river)
        for tributaries in self._tributaries.values():
            tributaries.sort(key=lambda r: (r.joins.at_km if r.joins else 0.0, r.name))
        # Speed changes only at reach ends and stations (whose velocity may apply below them).
        self._stations_km = {
            name: [(p.chainage_km, p.point_id) for p in on if p.kind == "station"]
            for name, on in self._on_river.items()
        }
        self._breaks = {
            name: sorted(
                {km for km, _ in self._stations_km[name]}
                | {e for s in river.speeds for e in (s.from_km, s.to_km)}
            )
            for name, river in self._rivers.items()
        }

    def with_velocity(self, velocity: VelocitySource | None) -> RiverNetwork:
        """The same network reading station velocities (m/s) from `velocity` where no reach is set."""
        clone = copy.copy(self)
        clone._velocity = velocity
        return clone

    # --- places -----------------------------------------------------------------------------------
    def __contains__(self, point_id: object) -> bool:
        return point_id in self._positions

    def position(self, point_id: str) -> Position:
        """Where a station or point is; KeyError if it is not on the network."""
        return self._positions[point_id]

    def stations(self) -> tuple[str, ...]:
        """The stations on the network (water quality and hydrology)."""
        return tuple(p for p, pos in self._positions.items() if pos.kind == "station")

    def point(self, point_id: str) -> Point | None:
        """The configured point (intake, boundary, other), None for a station."""
        return self._points.get(point_id)

    def is_monitoring(self, station_id: str) -> bool:
        """Whether the station is on the network and measures water quality."""
        return station_id in self._monitoring

    def report_interval_s(self, station_id: str) -> int:
        """Expected seconds between the station's reports: how late it may first see a plume."""
        return self._intervals[station_id]

    def basin(self, point_id: str) -> str | None:
        """The outlet river that the point's river flows into (through its confluences), naming the
        river system it is on; None for a point not on the network. Connected rivers share it."""
        position = self._positions.get(point_id)
        if position is None:
            return None
        return self._legs(position.river, position.chainage_km)[-1].river

    def outlet_distance_km(self, point_id: str) -> float:
        """River km from the point to its outlet: larger is further upstream on any one flow path."""
        pos = self._positions[point_id]
        return sum(leg.to_km - leg.from_km for leg in self._legs(pos.river, pos.chainage_km))

    # --- along the flow ---------------------------------------------------------------------------
    def downstream(self, point_id: str) -> tuple[Hop, ...]:
        """Every station and point below `point_id` in flow order, with distance, time and dilution."""
        start = self._positions[point_id]
        hops: list[Hop] = []
        distance = time_s = 0.0
        dilution = 1.0
        for index, leg in enumerate(self._legs(start.river, start.chainage_km)):
            tributaries = [
                t
                for t in self._tributaries[leg.river]
                if t.joins and leg.from_km < t.joins.at_km <= leg.to_km
            ]
            for pos in self._on_river[leg.river]:
                if pos.point_id == point_id or not leg.from_km <= pos.chainage_km <= leg.to_km:
                    continue
                if index == 0 and pos.chainage_km == start.chainage_km and pos.kind == "station":
                    continue  # a station at the same place is beside, not below
                factor = dilution
                for tributary in tributaries:
                    assert tributary.joins is not None
                    if tributary.joins.at_km <= pos.chainage_km and tributary.joins.flow_share is not None:
                        factor *= 1 - tributary.joins.flow_share
                hops.append(
                    Hop(
                        pos.point_id,
                        pos.kind,
                        pos.river,
                        pos.chainage_km,
                        distance + pos.chainage_km - leg.from_km,
                        time_s + self._time_s(leg.river, leg.from_km, pos.chainage_km),
                        factor,
                    )
                )
            for tributary in tributaries:
                assert tributary.joins is not None
                if tributary.joins.flow_share is not None:
                    dilution *= 1 - tributary.joins.flow_share
            distance += leg.to_km - leg.from_km
            time_s += self._time_s(leg.river, leg.from_km, leg.to_km)
            joins = self._rivers[leg.river].joins
            if joins is not None and joins.flow_share is not None:
                dilution *= joins.flow_share
        hops.sort(key=lambda h: (h.distance_km, h.point_id))
        return tuple(hops)

    def travel_time(self, a: str, b: str) -> float | None:
        """Seconds for water at `a` to reach `b`; None unless `b` is downstream of (or at) `a`."""
        route = self._route(a, b)
        return (
            None if route is None else sum(self._time_s(leg.river, leg.from_km, leg.to_km) for leg in route)
        )

    def travel_time_from(self, river: str, km: float, b: str) -> float | None:
        """Seconds from `km` on `river` down to point `b`; None unless `b` is downstream of it."""
        end = self._positions[b]
        total = 0.0
        for leg in self._legs(river, km):
            if leg.river == end.river and leg.from_km <= end.chainage_km:
                return total + self._time_s(leg.river, leg.from_km, end.chainage_km)
            total += self._time_s(leg.river, leg.from_km, leg.to_km)
        return None

    def distance_km(self, a: str, b: str) -> float | None:
        """River km from `a` down to `b`; None unless `b` is downstream of (or at) `a`."""
        route = self._route(a, b)
        return None if route is None else sum(leg.to_km - leg.from_km for leg in route)

    def downstream_neighbour(self, station_id: str) -> Hop | None:
        """The nearest water-quality station below, crossing confluences."""
        return next((h for h in self.downstream(station_id) if h.point_id in self._monitoring), None)

    def upstream_neighbours(self, station_id: str) -> tuple[Hop, ...]:
        """The nearest water-quality station above on each branch, nearest first (hops to the station)."""
        hops = []
        for neighbour in self.reach_of(station_id).upstream:
            time_s = self.travel_time(neighbour, station_id)
            distance = self.distance_km(neighbour, station_id)
            assert time_s is not None
            assert distance is not None
            pos = self._positions[neighbour]
            hops.append(Hop(neighbour, "station", pos.river, pos.chainage_km, distance, time_s, 1.0))
        return tuple(sorted(hops, key=lambda h: (h.travel_time_s, h.point_id)))

    def upstream_neighbour(self, station_id: str) -> Hop | None:
        """The nearest water-quality station above, on any branch."""
        return next(iter(self.upstream_neighbours(station_id)), None)

    def reach_of(self, station_id: str) -> Reach:
        """The reach that drains to `station_id` since the previous stations on every branch above."""
        pos = self._positions[station_id]
        upstream: list[str] = []
        segments: list[Segment] = []
        self._walk_up(pos.river, pos.chainage_km, station_id, upstream, segments)
        return Reach(station_id, tuple(upstream), tuple(segments))

    # --- who must act -----------------------------------------------------------------------------
    def responsible(self, target: Reach | str) -> Responsibility:
        """For a reach: the duties over it and the districts of its bounding stations, with their duty
        rooms; for a district name: its duty rooms and the duties it holds."""
        if isinstance(target, str):
            duties = [d for d in self.spec.duties if d.district == target]
            return self._responsibility([target], duties, ())
        duties = [d for s in target.segments for d in self._duties_over(s.river, s.from_km, s.to_km)]
        districts = [
            self._districts[s] for s in (target.downstream, *target.upstream) if s in self._districts
        ]
        return self._responsibility(districts, duties, ())

    def responsible_downstream(self, point_id: str) -> Responsibility:
        """Everyone below `point_id`: duties along the way, districts of the stations and boundaries
        passed, their duty rooms and the receivers of the points (intake operators)."""
        start = self._positions[point_id]
        duties = [
            d for leg in self._legs(start.river, start.chainage_km) for d in self._duties_over(*_span(leg))
        ]
        districts: list[str] = []
        extra: list[str] = []
        for hop in self.downstream(point_id):
            point = self._points.get(hop.point_id)
            if point is None:
                districts.append(self._districts[hop.point_id])
                continue
            districts.extend(d for d in (point.district, point.downstream_district) if d is not None)
            extra.extend(point.receivers)
        return self._responsibility(districts, duties, extra)

    def receiver_names(self) -> frozenset[str]:
        """Every receiver name the network mentions (to check against notify.receivers)."""
        names = {r for d in self.spec.duties for r in d.receivers}
        names |= {r for p in self.spec.points for r in p.receivers}
        names |= {r for rs in self.spec.district_receivers.values() for r in rs}
        return frozenset(names)

    # --- internals --------------------------------------------------------------------------------
    def _legs(self, river: str, km: float) -> list[_Leg]:
        legs = []
        name, at = river, km
        while True:
            current = self._rivers[name]
            legs.append(_Leg(name, at, current.length_km))
            if current.joins is None:
                return legs
            name, at = current.joins.river, current.joins.at_km

    def _route(self, a: str, b: str) -> list[_Leg] | None:
        start, end = self._positions[a], self._positions[b]
        route = []
        for leg in self._legs(start.river, start.chainage_km):
            if leg.river == end.river and leg.from_km <= end.chainage_km:
                route.append(_Leg(leg.river, leg.from_km, end.chainage_km))
                return route
            route.append(leg)
        return None

    def _walk_up(
        self, river: str, km: float, start: str, upstream: list[str], segments: list[Segment]
    ) -> None:
        """From `km` on `river` up to the nearest water-quality station (or the top), then up every
        tributary entering on the way; a station at `km` itself counts unless it is `start`."""
        above = [
            p
            for p in self._on_river[river]
            if p.point_id in self._monitoring and p.point_id != start and p.chainage_km <= km
        ]
        bound = above[-1] if above else None
        top = bound.chainage_km if bound is not None else 0.0
        segments.append(Segment(river, top, km))
        if bound is not None:
            upstream.append(bound.point_id)
        for tributary in reversed(self._tributaries[river]):
            assert tributary.joins is not None
            at = tributary.joins.at_km
            if at <= km and (bound is None or at > top):
                self._walk_up(tributary.name, tributary.length_km, start, upstream, segments)

    def _time_s(self, river: str, from_km: float, to_km: float) -> float:
        if to_km <= from_km:
            return 0.0
        breaks = self._breaks[river]
        edges = [
            from_km,
            *breaks[bisect.bisect_right(breaks, from_km) : bisect.bisect_left(breaks, to_km)],
            to_km,
        ]
        hours = sum((b - a) / self._speed_at(river, (a + b) / 2) for a, b in itertools.pairwise(edges))
        return hours * _SECONDS_PER_HOUR

    def _speed_at(self, river: str, km: float) -> float:
        config = self._rivers[river]
        for reach in config.speeds:
            if reach.from_km <= km < reach.to_km:
                return reach.speed
        if self._velocity is not None:
            stations = self._stations_km[river]
            index = bisect.bisect_right(stations, (km, "\uffff")) - 1
            if index >= 0:
                # Stations at one place (a quality and a hydrology station): any plausible reading.
                here = [s for k, s in stations if k == stations[index][0]]
                for station_id in here:
                    value = self._velocity(station_id)
                    low, high = PLAUSIBLE_VELOCITY_M_S
                    if value is not None and math.isfinite(value) and low <= value <= high:
                        return value * 3.6
        if config.speed_km_h is not None:
            return config.speed_km_h
        return self.spec.default_speed_km_h

    def _duties_over(self, river: str, from_km: float, to_km: float) -> list[Duty]:
        def covers(d: Duty) -> bool:
            if to_km > from_km:
                return d.from_km < to_km and d.to_km > from_km
            return d.from_km <= from_km <= d.to_km

        return [d for d in self.spec.duties if d.river == river and covers(d)]

    def _responsibility(
        self, districts: Iterable[str], duties: Iterable[Duty], extra: Iterable[str]
    ) -> Responsibility:
        duty_list = list(duties)
        district_order = list(dict.fromkeys([*(d.district for d in duty_list), *districts]))
        chiefs = [d.river_chief for d in duty_list if d.river_chief is not None]
        receivers = [r for d in duty_list for r in d.receivers]
        receivers += [
            r for district in district_order for r in self.spec.district_receivers.get(district, ())
        ]
        receivers += list(extra)
        return Responsibility(
            tuple(district_order), tuple(dict.fromkeys(chiefs)), tuple(dict.fromkeys(receivers))
        )


def _span(leg: _Leg) -> tuple[str, float, float]:
    return leg.river, leg.from_km, leg.to_km
