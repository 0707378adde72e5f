"""The operator API of the alert engine, served by the daemon's HTTP server (`ingest.app.http`).

    GET    /api/v1/alerts            active alerts (pending and firing); filters: alert_id, state
                                     (pending|firing|active|resolved|ok|all), rule, station_id,
                                     parameter, district, basin, river, severity; limit
    GET    /api/v1/alerts/history    transitions newest first; alert_id, station_id, rule,
                                     before_id (paging), limit
    POST   /api/v1/alerts/ack        {"alert_id", "by", "comment"}: 200, 404 unknown, 409 not active
    GET    /api/v1/stations          every registry station: class now, target, compliance, primary
                                     pollutants, newest reading time and values; id, district,
                                     basin, river filters
    GET    /api/v1/compliance        per district and basin (group_by=district|basin|river): share
                                     meeting target, of class I–III, worse than V; day=YYYY-MM-DD
                                     gives that day's stored daily assessment
    GET    /api/v1/assessment        the 2011 method's report of a period (period=2026-11-05 | 2026-11 |
                                     2026-Q3 | 2026 | ytd, default the last closed day; region=
                                     district:NAME | basin:NAME | river:NAME): the JSON of `ecowatch
                                     report` with `sources` (days stored, read, missing);
                                     format=html|csv|xlsx gives the printed report instead
    GET    /api/v1/silences          silences with their status; all=1 includes expired ones
    POST   /api/v1/silences          {"matchers", "starts_at", "ends_at", "by", "reason"} → {"id"}
    DELETE /api/v1/silences?id=      expire a silence now (kept for the record)

Bodies are validated with pydantic: anything else is a 400 naming the field. Times are ISO 8601
in UTC. A station's "class now" uses its newest normal readings of the last day, like the
default compliance_drop rule.

Each GET handler reads its parameters and calls a view function of the same name
(`alert_list`, `station_list`, `compliance_now`, `silence_list`); `snapshot()` gathers the
parameterless answers of four of them for the dashboard's live stream, in exactly these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final, TypedDict, TypeVar, cast

import structlog
from pydantic import BaseModel, Field, ValidationError

from alerts.assessment import GROUPINGS, PeriodAssessments, rates
from alerts.assessment_method.period import PeriodError
from alerts.assessment_method.report import ScopeError
from alerts.classify import Classification
from alerts.engine import AlertEngine, NotActiveError
from alerts.lifecycle import ACTIVE, AlertRecord, AlertState
from alerts.rules.base import GroupBy, PointStatus
from alerts.silences import Silence, SilenceRequest, silenced_by
from config.registry import Station
from config.times import from_ns, ns, to_ns
from config.types import StrictModel
from ingest.routes import BadRequest, Handler, NotFound, RawBody, Request, int_param, str_param

log = structlog.get_logger(__name__)

# "Class now": newest normal values no older than a day, as the default compliance_drop rule.
STATUS_MAX_AGE: Final = timedelta(days=1)
_STATES: Final = {
    "active": ACTIVE,
    "all": frozenset(AlertState),
    **{state.value: frozenset({state}) for state in AlertState},
}
_GROUPS: Final = ("district", "basin", "river")
# Alerts one answer lists when the request names no limit.
DEFAULT_ALERT_LIMIT: Final = 500
# (method, path) -> handler method.
ROUTES: Final[dict[tuple[str, str], str]] = {
    ("GET", "/api/v1/alerts"): "alerts",
    ("GET", "/api/v1/alerts/history"): "history",
    ("POST", "/api/v1/alerts/ack"): "ack",
    ("GET", "/api/v1/stations"): "stations",
    ("GET", "/api/v1/compliance"): "compliance",
    ("GET", "/api/v1/assessment"): "assessment",
    ("GET", "/api/v1/silences"): "list_silences",
    ("POST", "/api/v1/silences"): "add_silence",
    ("DELETE", "/api/v1/silences"): "expire_silence",
    ("GET", "/api/v1/incidents"): "incidents",
}


class AckRequest(StrictModel):
    """The body of POST /api/v1/alerts/ack."""

    alert_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="The alert's id.")
    by: str = Field(min_length=1, max_length=128, description="Who acknowledges.")
    comment: str | None = Field(None, max_length=1024, description="Why, or what is being done.")


class AlertSnapshot(TypedDict):
    """The alert state at a glance: each part as its GET endpoint answers without parameters.

    A part that could not be read is None and named in `problems`.
    """

    stations: list[dict[str, Any]] | None  # GET /api/v1/stations: "stations"
    alerts: list[dict[str, Any]] | None  # GET /api/v1/alerts (the active ones): "alerts"
    compliance: dict[str, Any] | None  # GET /api/v1/compliance without its "at"
    silences: list[dict[str, Any]] | None  # GET /api/v1/silences (current ones): "silences"
    incidents: list[dict[str, Any]] | None  # GET /api/v1/incidents?status=all: "incidents"
    problems: list[str]


# format= of GET /api/v1/assessment other than json: content type and file extension.
_REPORT_FORMATS: Final = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class AlertsAPI:
    def __init__(
        self,
        engine: AlertEngine,
        clock: Callable[[], datetime],
        *,
        assessments: PeriodAssessments | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._assessments = assessments

    def routes(self) -> dict[tuple[str, str], Handler]:
        handlers: dict[tuple[str, str], Handler] = {key: getattr(self, name) for key, name in ROUTES.items()}
        return handlers

    # --- alerts ----------------------------------------------------------------------------------
    def alerts(self, request: Request) -> tuple[int, Any]:
        query = request.query
        alert_id = str_param(query, "alert_id")
        state = str_param(query, "state") or ("all" if alert_id else "active")
        if state not in _STATES:
            raise BadRequest(f"state must be one of {', '.join(sorted(_STATES))}")
        limit = int_param(query, "limit", DEFAULT_ALERT_LIMIT, 1, 10_000)
        filters = {
            key: value
            for key in ("rule", "station_id", "parameter", "district", "basin", "river", "severity")
            if (value := str_param(query, key, 128)) is not None
        }
        body, count = self.alert_list(state, alert_id=alert_id, filters=filters, limit=limit)
        return 200, {"alerts": body, "count": count}

    def alert_list(
        self,
        state: str = "active",
        *,
        alert_id: str | None = None,
        filters: Mapping[str, str] | None = None,
        limit: int = DEFAULT_ALERT_LIMIT,
    ) -> tuple[list[dict[str, Any]], int]:
        """Alerts in `state` (a key of `_STATES`) with these labels, newest first; and how many matched."""
        wanted = filters or {}
        now_ns = to_ns(self._clock())
        engine = self._engine
        with engine.lock:
            chosen = [
                record
                for record in engine.alerts.values()
                if record.state in _STATES[state]
                and (alert_id is None or record.alert_id == alert_id)
                and all(record.labels.get(k) == v for k, v in wanted.items())
            ]
            chosen.sort(key=lambda r: (-(r.since_ns or 0), r.alert_id))
            body = [self._alert_json(record, now_ns) for record in chosen[:limit]]
        return body, len(chosen)

    # --- incidents -------------------------------------------------------------------------------
    def incidents(self, request: Request) -> tuple[int, Any]:
        """Incidents along the river network: `?id=` one with its timeline; else the open ones,
        and with `status=all` the closed ones kept too (newest first); `item=` filters."""
        query = request.query
        wanted = str_param(query, "id", 64)
        status = str_param(query, "status") or "open"
        if status not in ("open", "all"):
            raise BadRequest("status must be open or all")
        item = str_param(query, "item", 32)
        body = self.incident_list(include_closed=status == "all" or wanted is not None)
        if wanted is not None:
            found = [i for i in body if i["id"] == wanted]
            if not found:
                raise NotFound(f"no incident {wanted}")
            return 200, {"incident": found[0]}
        chosen = [i for i in body if item is None or i["item"] == item]
        return 200, {"incidents": chosen, "count": len(chosen), "network": self._engine.incidents is not None}

    def incident_list(self, *, include_closed: bool = False) -> list[dict[str, Any]]:
        """The incidents as `Incident.to_json()` gives them; [] without a river network."""
        feed = self._engine.incidents
        if feed is None:
            return []
        with self._engine.lock:
            return [i.to_json() for i in feed.tracker.incidents(include_closed=include_closed)]

    def history(self, request: Request) -> tuple[int, Any]:
        query = request.query
        before = int_param(query, "before_id", 0, 0, 2**62)
        with self._engine.lock:
            items = self._engine.store.history(
                alert_id=str_param(query, "alert_id"),
                station_id=str_param(query, "station_id"),
                rule=str_param(query, "rule"),
                before_id=before or None,
                limit=int_param(query, "limit", 100, 1, 1000),
            )
        for item in items:
            item["at"] = from_ns(item.pop("at_ns")).isoformat()
            item["recorded_at"] = from_ns(item.pop("recorded_ns")).isoformat()
        return 200, {"history": items}

    def ack(self, request: Request) -> tuple[int, Any]:
        body = _validate(AckRequest, request.body)
        try:
            record = self._engine.acknowledge(body.alert_id, body.by, body.comment, self._clock())
        except KeyError:
            raise NotFound(f"no alert {body.alert_id}") from None
        except NotActiveError as exc:
            return 409, {"error": str(exc)}
        return 200, {"alert": self._alert_json(record, to_ns(self._clock()))}

    # --- stations and compliance -----------------------------------------------------------------
    def stations(self, request: Request) -> tuple[int, Any]:
        query = request.query
        wanted_id = str_param(query, "id")
        filters = {key: value for key in _GROUPS if (value := str_param(query, key, 128)) is not None}
        out = self.station_list(wanted_id, filters)
        if wanted_id is not None and not out:
            raise NotFound(f"no station {wanted_id}")
        return 200, {"stations": out}

    def station_list(
        self, station_id: str | None = None, filters: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Registry stations (one, or those in the given district, basin, river) with their class now."""
        wanted = filters or {}
        now_ns = to_ns(self._clock())
        engine = self._engine
        out = []
        with engine.lock:
            for station in engine.registry.values():
                if station_id is not None and station.id != station_id:
                    continue
                if any(getattr(station, key) != value for key, value in wanted.items()):
                    continue
                out.append(self._station_json(station, self._status(station, now_ns), now_ns))
        return out

    def compliance(self, request: Request) -> tuple[int, Any]:
        query = request.query
        group_by = str_param(query, "group_by")
        if group_by is not None and group_by not in _GROUPS:
            raise BadRequest(f"group_by must be one of {', '.join(_GROUPS)}")
        day = str_param(query, "day", 10)
        engine = self._engine
        if day is not None:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise BadRequest("day must be YYYY-MM-DD") from None
            with engine.lock:
                stored = engine.store.assessment(day)
            if stored is None:
                raise NotFound(f"no assessment of {day}")
            return 200, stored
        return 200, self.compliance_now(cast(GroupBy, group_by) if group_by is not None else None)

    def compliance_now(self, group_by: GroupBy | None = None) -> dict[str, Any]:
        """The compliance rates of the water stations now, by one grouping or by each."""
        now = self._clock()
        now_ns = to_ns(now)
        engine = self._engine
        with engine.lock:
            points: list[tuple[Station, Classification | None]] = []
            for station in engine.registry.values():
                if "water" in station.kinds:
                    status = self._status(station, now_ns)
                    points.append((station, None if status is None else status.classification))
        groupings = (group_by,) if group_by is not None else GROUPINGS
        return {
            "at": now.isoformat(),
            "standard": engine.standard.name,
            **{g: rates(points, g) for g in groupings},
        }

    # --- the assessment method's periods ----------------------------------------------------------
    def assessment(self, request: Request) -> tuple[int, Any]:
        assessments = self._assessments
        if assessments is None:
            raise NotFound("no assessment in this daemon")
        query = request.query
        now = self._clock()
        text = str_param(query, "period", 32) or (assessments.today(now) - timedelta(days=1)).isoformat()
        region = str_param(query, "region", 200)
        fmt = str_param(query, "format", 8) or "json"
        if fmt != "json" and fmt not in _REPORT_FORMATS:
            raise BadRequest(f"format must be json, {', '.join(_REPORT_FORMATS)}")
        try:
            period, scope = assessments.parse(text, region, now)
        except (PeriodError, ScopeError) as exc:
            raise BadRequest(str(exc)) from None
        except LookupError as exc:
            raise NotFound(str(exc.args[0])) from None
        answer = assessments.report(period, scope, now)
        if fmt == "json":
            return 200, answer.to_json()
        from alerts.assessment_method.report_cli import render

        name = f"ecowatch-{period.label.replace('/', '_')}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return 200, RawBody(_REPORT_FORMATS[fmt], render(answer.report, fmt), disposition)

    # --- silences --------------------------------------------------------------------------------
    def list_silences(self, request: Request) -> tuple[int, Any]:
        show_all = str_param(request.query, "all") in ("1", "true", "yes")
        return 200, {"silences": self.silence_list(include_expired=show_all)}

    def silence_list(self, *, include_expired: bool = False) -> list[dict[str, Any]]:
        """The silences with their status: those not yet ended, or all kept for the record."""
        now_ns = to_ns(self._clock())
        with self._engine.lock:
            silences = list(self._engine.silences)
        chosen = [s for s in silences if include_expired or s.ends_ns > now_ns]
        return [s.to_json(now_ns) for s in chosen]

    def add_silence(self, request: Request) -> tuple[int, Any]:
        body = _validate(SilenceRequest, request.body)
        now = self._clock()
        if body.ends_at <= now:
            raise BadRequest("ends_at must be in the future")
        silence = Silence.from_request(body, now)
        self._engine.add_silence(silence)
        return 200, {"id": silence.id, "silence": silence.to_json(to_ns(now))}

    def expire_silence(self, request: Request) -> tuple[int, Any]:
        silence_id = str_param(request.query, "id")
        if silence_id is None:
            raise BadRequest("id is required")
        try:
            silence = self._engine.expire_silence(silence_id, self._clock())
        except KeyError:
            raise NotFound(f"no silence {silence_id}") from None
        return 200, {"silence": silence.to_json(to_ns(self._clock()))}

    # --- the dashboard's view ----------------------------------------------------------------------
    def snapshot(self) -> AlertSnapshot:
        """Stations, active alerts, compliance now and current silences, as their GET endpoints answer.

        Each part is read on its own: one that raises is left out (None) and named in `problems`.
        """
        parts: dict[str, Callable[[], Any]] = {
            "stations": self.station_list,
            "alerts": lambda: self.alert_list()[0],
            # "at" changes every call; the snapshot is compared with the last one sent.
            "compliance": lambda: {k: v for k, v in self.compliance_now().items() if k != "at"},
            "silences": self.silence_list,
            "incidents": lambda: self.incident_list(include_closed=True),
        }
        out: dict[str, Any] = {"problems": []}
        for name, read in parts.items():
            try:
                out[name] = read()
            except Exception:
                log.exception("alert_snapshot_failed", part=name)
                out[name] = None
                out["problems"].append(f"{name} could not be read")
        return cast(AlertSnapshot, out)

    # --- rendering -------------------------------------------------------------------------------
    def _status(self, station: Station, now_ns: int) -> PointStatus | None:
        return self._engine.station_status(station, now_ns, ns(STATUS_MAX_AGE))

    def _station_json(self, station: Station, status: PointStatus | None, now_ns: int) -> dict[str, Any]:
        window = self._engine.windows[station.id]
        result = None if status is None else status.classification
        return {
            "id": station.id,
            "name": station.name,
            "district": station.district,
            "basin": station.basin,
            "river": station.river,
            "water_body": station.water_body,
            "kinds": list(station.kinds),
            "target_class": station.target_class.value,
            "class": None if result is None or result.water_class is None else result.water_class.value,
            "compliant": None if result is None else result.compliant,
            "primary_pollutants": [] if result is None else list(result.primary_pollutants),
            "parameters": {} if result is None else {c: k.value for c, k in result.parameters.items()},
            "last_reading_at": None
            if window.watermark_ns is None
            else from_ns(window.watermark_ns).isoformat(),
            "latest": {
                code: {"value": s.value, "flag": s.flag.value, "time": from_ns(s.time_ns).isoformat()}
                for code, s in sorted(self._engine.latest_of(station.id).items())
            },
            "active_alerts": [
                {"alert_id": r.alert_id, "rule": r.rule, "state": r.state.value, "parameter": r.parameter}
                for r in self._engine.station_alerts(station.id)
                if r.active
            ],
            "silenced": silenced_by(self._engine.silences, {"station_id": station.id}, now_ns) is not None,
        }

    def _alert_json(self, record: AlertRecord, now_ns: int) -> dict[str, Any]:
        shown = record.cause if record.state is not AlertState.RESOLVED else record.current

        def iso(value: int | None) -> str | None:
            return None if value is None else from_ns(value).isoformat()

        return {
            "alert_id": record.alert_id,
            "rule": record.rule,
            "kind": record.kind,
            "state": record.state.value,
            "severity": record.labels.get("severity"),
            "labels": record.labels,
            "station_id": record.station_id,
            "parameter": record.parameter,
            "starts_at": iso(record.since_ns),
            "fired_at": iso(record.fired_ns),
            "ends_at": iso(record.ended_ns),
            "summary": shown.get("summary"),
            "description": shown.get("description"),
            "values": shown.get("values", {}),
            "water_class": shown.get("water_class"),
            "primary_pollutants": shown.get("primary_pollutants", []),
            "evidence": shown.get("evidence", []),
            "current": record.current.get("summary"),
            "notified": record.notified,
            "recovery": {"since": iso(record.clear_since_ns), "samples": record.clear_samples},
            "acknowledged": None
            if record.acked_by is None
            else {"by": record.acked_by, "at": iso(record.acked_ns), "comment": record.ack_comment},
            "silenced": silenced_by(self._engine.silences, record.labels, now_ns) is not None,
            "updated_at": iso(record.updated_ns),
        }


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], body: Any) -> _M:
    if body is None:
        raise BadRequest("a JSON body is required")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None
