"""Chart data: GET /api/v1/readings and GET /api/v1/registry.

    GET /api/v1/readings?station=<id>&parameter=<code>&hours=<1..720, default 168>
        {"station": {...}, "parameter": {"code", "name", "name_zh", "unit"}, "since", "until",
         "points": [[time_ms, value, flag, below_dl], ...], "limits": {...} | null}
    GET /api/v1/registry
        {"standard", "classes", "parameters": [...], "stations": [{..., "lat", "lon", "parameters"}]}

`limits` are the GB 3838 class limits of the parameter on the station's water body (the lake
column for lakes and reservoirs): `{"kind": "max" | "min", "classes": [{"class", "limit"}, ...]}`
best class first, `{"kind": "range", "low", "high"}` (pH: every class), or null for an item the
standard does not classify. Times of points are epoch milliseconds, which the browser reads as is.
`below_dl` (true or false) says the value is a detection limit, the result being below it: the page
shows it as `<0.01`, never as a measurement (a bucket is below it when all its values were).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from config.parameters import Parameter
from config.registry import Registry, Station, WaterClass
from config.standards import Standard
from ingest.app.dashboard.config import DashboardConfig
from ingest.app.query import QueryError, ReadingsQuery
from ingest.routes import BadRequest, NotFound, Request, int_param, str_param

MAX_HOURS: Final = 720  # 30 days: the longest trend the page offers
DEFAULT_HOURS: Final = 168
# Which parameters a station reports, by the kinds the registry gives it.
MEASUREMENTS: Final[Mapping[str, str]] = {"water": "water_quality", "hydro": "hydrology"}


class Charts:
    def __init__(
        self,
        config: DashboardConfig,
        registry: Registry,
        query: ReadingsQuery,
        *,
        standard: Standard,
        catalogue: Mapping[str, Parameter],
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._registry = registry
        self._query = query
        self._standard = standard
        self._catalogue = catalogue
        self._clock = clock

    def readings(self, request: Request) -> tuple[int, Any]:
        station_id = str_param(request.query, "station", 128)
        code = str_param(request.query, "parameter", 32)
        if station_id is None or code is None:
            raise BadRequest("station and parameter are required")
        station = self._registry.get(station_id)
        if station is None:
            raise NotFound(f"no station {station_id}")
        parameter = self._catalogue.get(code)
        if parameter is None:
            raise BadRequest(f"unknown parameter {code}")
        hours = int_param(request.query, "hours", DEFAULT_HOURS, 1, MAX_HOURS)
        until = self._clock()
        since = until - timedelta(hours=hours)
        try:
            points = self._query.series(station.id, code, since, until, self._config.max_points)
        except QueryError as exc:
            return 503, {"error": f"the readings store did not answer: {exc}"}
        return 200, {
            "station": _station_json(station),
            "parameter": self._parameter_json(parameter),
            "hours": hours,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "points": [[point[0] // 1_000_000, point[1], point[2], bool(point[3])] for point in points],
            "limits": self.limits(code, station),
        }

    def registry(self, _request: Request) -> tuple[int, Any]:
        return 200, {
            "standard": self._standard.name,
            "classes": [c.value for c in WaterClass],
            "parameters": [self._parameter_json(p) for p in self._catalogue.values()],
            "stations": [
                {
                    **_station_json(s),
                    "lat": s.lat,
                    "lon": s.lon,
                    "parameters": [
                        p.code
                        for p in self._catalogue.values()
                        if p.measurement in {MEASUREMENTS[k] for k in s.kinds}
                    ],
                }
                for s in self._registry.values()
            ],
        }

    def limits(self, code: str, station: Station) -> dict[str, Any] | None:
        item = self._standard.items.get(code)
        if item is None or item.kind == "none":
            return None
        if item.kind == "range":
            return {"kind": "range", "low": item.low, "high": item.high}
        values = item.limits_for(station.water_body) or ()
        return {
            "kind": item.kind,
            "classes": [
                {"class": c.value, "limit": limit}
                for c, limit in zip(self._standard.classes, values, strict=True)
            ],
        }

    def _parameter_json(self, parameter: Parameter) -> dict[str, Any]:
        item = self._standard.items.get(parameter.code)
        return {
            "code": parameter.code,
            "name": parameter.name,
            "name_zh": item.name_zh if item is not None else None,
            "unit": parameter.unit,
            "classified": item is not None and item.kind != "none",
        }


def _station_json(station: Station) -> dict[str, Any]:
    return {
        "id": station.id,
        "name": station.name,
        "river": station.river,
        "basin": station.basin,
        "district": station.district,
        "water_body": station.water_body,
        "target_class": station.target_class.value,
        "kinds": list(station.kinds),
    }
