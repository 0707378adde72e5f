"""The river network as the map draws it: GET /api/v1/network.

    GET /api/v1/network
        {"enabled": true, "note": "...",
         "rivers": [{"name", "length_km", "joins": {"river", "at_km"} | null,
                     "stations": [{"id", "chainage_km"}],
                     "line": [[km, lat, lon], ...]}],
         "points": [{"id", "name", "kind", "river", "chainage_km", "district",
                     "upstream_district", "downstream_district", "lat", "lon"}]}

Only stations have coordinates in the registry; the network gives everything a chainage (km along
its river). So each river gets anchors: its stations (chainage, lat, lon) and its mouth, placed on
the receiving river at the confluence's `at_km` (the tree of confluences ends at outlets, so this
recursion ends). A chainage between two anchors is placed by linear interpolation; one above the
first or below the last is extrapolated along the river's overall direction (first to last anchor,
which a near pair such as a quality and a hydrology station at one section would not give); a
river with a single anchor puts everything there, one with none cannot be placed (null
coordinates, and no line). `line` is the polyline of the river through its anchors, points and
confluences in chainage order: a schematic, straight between known places, not a survey.

Without a network (`enabled: false`), rivers and points are empty and the page draws rivers
through their stations as before. The answer holds no receiver names: the map needs none.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final

from config.network import River, RiverNetwork
from config.registry import Registry
from ingest.routes import Request

Coordinates = tuple[float, float]
# Anchors closer than this (km) are one place: a quality and a hydrology station at one section.
SAME_PLACE_KM: Final = 1e-6


class NetworkGeometry:
    """Positions of every river, station and point of the registry's network, computed once."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._network: RiverNetwork | None = registry.network
        self._rivers: Mapping[str, River] = (
            {} if registry.network is None else {r.name: r for r in registry.network.spec.rivers}
        )
        self._anchors: dict[str, list[tuple[float, float, float]]] = {}
        self.body = self._build()

    def network(self, _request: Request) -> tuple[int, Any]:
        return 200, self.body

    def locate(self, river: str, km: float) -> Coordinates | None:
        """(lat, lon) of the place `km` along `river`, None when the river has no anchor."""
        anchors = self._anchors_of(river)
        if not anchors:
            return None
        first, last = anchors[0], anchors[-1]
        if len(anchors) == 1 or last[0] - first[0] <= SAME_PLACE_KM:
            return first[1], first[2]
        if km <= first[0] or km >= last[0]:
            # Outside the anchors: along the river's overall direction (module docstring).
            return _along(first, last, km)
        for upper, lower in itertools.pairwise(anchors):
            if upper[0] <= km <= lower[0]:
                if lower[0] - upper[0] <= SAME_PLACE_KM:
                    return upper[1], upper[2]
                return _along(upper, lower, km)
        return last[1], last[2]  # not reached: the anchors cover [first, last]

    # --- building ---------------------------------------------------------------------------------
    def _build(self) -> dict[str, Any]:
        network = self._network
        if network is None:
            return {"enabled": False, "note": None, "rivers": [], "points": []}
        spec = network.spec
        tributaries: dict[str, list[River]] = {river.name: [] for river in spec.rivers}
        for river in spec.rivers:
            if river.joins is not None:
                tributaries[river.joins.river].append(river)
        rivers = [self._river_json(river, tributaries[river.name]) for river in spec.rivers]
        points = []
        for point in spec.points:
            where = self.locate(point.river, point.chainage_km)
            points.append(
                {
                    "id": point.id,
                    "name": point.name,
                    "kind": point.kind,
                    "river": point.river,
                    "chainage_km": point.chainage_km,
                    "district": point.district,
                    "upstream_district": point.upstream_district,
                    "downstream_district": point.downstream_district,
                    "lat": None if where is None else _round(where[0]),
                    "lon": None if where is None else _round(where[1]),
                }
            )
        return {"enabled": True, "note": spec.note, "rivers": rivers, "points": points}

    def _river_json(self, river: River, tributaries: list[River]) -> dict[str, Any]:
        assert self._network is not None
        stations = sorted(
            (
                (self._network.position(sid).chainage_km, sid)
                for sid in self._network.stations()
                if self._network.position(sid).river == river.name
            ),
        )
        kms = {km for km, _ in stations}
        kms |= {p.chainage_km for p in self._network.spec.points if p.river == river.name}
        kms |= {t.joins.at_km for t in tributaries if t.joins is not None}
        if river.joins is not None:
            kms.add(river.length_km)
        line = []
        for km in sorted(kms):
            where = self.locate(river.name, km)
            if where is not None:
                line.append([km, _round(where[0]), _round(where[1])])
        return {
            "name": river.name,
            "length_km": river.length_km,
            "joins": None
            if river.joins is None
            else {"river": river.joins.river, "at_km": river.joins.at_km},
            "stations": [{"id": sid, "chainage_km": km} for km, sid in stations],
            "line": line,
        }

    def _anchors_of(self, river_name: str) -> list[tuple[float, float, float]]:
        """(km, lat, lon) of the river's stations and its mouth, in chainage order."""
        cached = self._anchors.get(river_name)
        if cached is not None:
            return cached
        assert self._network is not None
        anchors: dict[float, tuple[float, float]] = {}
        for sid in self._network.stations():
            position = self._network.position(sid)
            station = self._registry.get(sid)
            if position.river == river_name and station is not None:
                anchors.setdefault(position.chainage_km, (station.lat, station.lon))
        river = self._rivers[river_name]
        if river.joins is not None and river.length_km not in anchors:
            mouth = self.locate(river.joins.river, river.joins.at_km)
            if mouth is not None:
                anchors[river.length_km] = mouth
        result = sorted((km, lat, lon) for km, (lat, lon) in anchors.items())
        self._anchors[river_name] = result
        return result


def _along(a: tuple[float, float, float], b: tuple[float, float, float], km: float) -> Coordinates:
    share = (km - a[0]) / (b[0] - a[0])
    return a[1] + share * (b[1] - a[1]), a[2] + share * (b[2] - a[2])


def _round(degrees: float) -> float:
    # 1e-5 degree is about a metre: more digits say nothing on a schematic map.
    return round(degrees, 5)
