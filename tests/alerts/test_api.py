"""The operator API through a real HTTP server on a loopback port, with urllib."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from alerts.api import ROUTES
from alerts.service import AlertService
from config.registry import Registry
from ingest.app.http import HTTPService
from ingest.routes import Handler, Request
from tests.alerts.engine_support import T0, FakeClock, make_service, rules_config, water
from tests.helpers import station

RULES = (
    {
        "name": "compliance_drop",
        "kind": "compliance_drop",
        "severity": "critical",
        "recovery": {"samples": 1},
    },
    {"name": "district_compliance", "kind": "regional_compliance", "group_by": "district"},
)


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, body
        return body


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=1))


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[AlertService]:
    registry = Registry(
        [
            station("st-1", target_class="II", district="D1", basin="B"),
            station("st-2", target_class="III", district="D1", basin="B"),
            station("gauge", district="D2", basin="B", kinds=("hydro",)),
        ]
    )
    service = make_service(tmp_path, registry, rules_config(*RULES), clock)
    service.write([*water(T0, station_id="st-1", nh3n=1.8), *water(T0, station_id="st-2")])
    service.tick(clock.now)
    yield service
    service.close()


class _Current:
    """The service under test; one HTTP server serves each test's own service (stopping one costs 0.5 s)."""

    service: AlertService | None = None

    def route(self, key: tuple[str, str]) -> Handler:
        def handle(request: Request) -> tuple[int, Any]:
            assert self.service is not None
            return self.service.routes()[key](request)

        return handle


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[HTTPService, _Current]]:
    current = _Current()
    routes = {key: current.route(key) for key in ROUTES}
    http = HTTPService("127.0.0.1", 0, routes)
    http.start()
    yield http, current
    http.stop()


@pytest.fixture
def client(service: AlertService, server: tuple[HTTPService, _Current]) -> Client:
    http, current = server
    current.service = service
    return Client(http.port)


def test_active_alerts_with_filters(client: Client) -> None:
    """GET /api/v1/alerts lists pending and firing alerts and filters them by label."""
    body = client.get("/api/v1/alerts")
    assert sorted(a["rule"] for a in body["alerts"]) == ["compliance_drop", "district_compliance"]
    [drop] = client.get("/api/v1/alerts?rule=compliance_drop&station_id=st-1")["alerts"]
    assert (drop["state"], drop["severity"], drop["water_class"]) == ("firing", "critical", "V")
    assert drop["primary_pollutants"] == ["nh3n"]
    assert drop["starts_at"] == T0.isoformat()
    assert client.get("/api/v1/alerts?district=D1&rule=district_compliance")["count"] == 1
    assert client.get("/api/v1/alerts?state=resolved")["alerts"] == []
    assert client.call("GET", "/api/v1/alerts?state=bogus")[0] == 400
    assert client.call("GET", "/api/v1/alerts?limit=0")[0] == 400


def test_history_pages_newest_first(client: Client) -> None:
    """GET /api/v1/alerts/history returns transitions newest first, filterable and pageable."""
    rows = client.get("/api/v1/alerts/history?rule=compliance_drop")["history"]
    assert [r["transition"] for r in rows] == ["firing", "pending"]
    assert rows[0]["event_key"].endswith(":1")
    older = client.get(f"/api/v1/alerts/history?before_id={rows[0]['id']}&limit=1")["history"]
    assert [r["id"] for r in older] == [rows[0]["id"] - 1]


def test_stations_show_class_target_and_latest_values(client: Client) -> None:
    """GET /api/v1/stations gives each registry station its class now, compliance and newest values."""
    stations = {s["id"]: s for s in client.get("/api/v1/stations")["stations"]}
    assert set(stations) == {"st-1", "st-2", "gauge"}
    one = stations["st-1"]
    assert (one["class"], one["target_class"], one["compliant"]) == ("V", "II", False)
    assert one["primary_pollutants"] == ["nh3n"]
    assert one["latest"]["nh3n"]["value"] == 1.8
    assert one["last_reading_at"] == T0.isoformat()
    assert [a["rule"] for a in one["active_alerts"]] == ["compliance_drop"]
    assert stations["gauge"]["class"] is None
    assert client.get("/api/v1/stations?id=st-2")["stations"][0]["compliant"] is True
    assert client.call("GET", "/api/v1/stations?id=nowhere")[0] == 404


def test_compliance_rates_per_district_and_basin(client: Client) -> None:
    """GET /api/v1/compliance gives the shares meeting target, of class I–III and worse than V."""
    body = client.get("/api/v1/compliance")
    [d1] = body["district"]
    assert (d1["district"], d1["assessed"], d1["meeting_target"], d1["share_meeting_target"]) == (
        "D1",
        2,
        1,
        0.5,
    )
    assert (d1["share_class_i_iii"], d1["share_worse_than_v"]) == (0.5, 0.0)
    assert body["basin"][0]["basin"] == "B"
    assert set(client.get("/api/v1/compliance?group_by=river")) == {"at", "standard", "river"}
    assert client.call("GET", "/api/v1/compliance?group_by=planet")[0] == 400
    assert client.call("GET", "/api/v1/compliance?day=2026-13-01")[0] == 400
    assert client.call("GET", "/api/v1/compliance?day=2026-06-30")[0] == 404


def test_acknowledge_through_the_api(client: Client) -> None:
    """POST /api/v1/alerts/ack records who and why; unknown alerts 404, bad bodies 400."""
    [drop] = client.get("/api/v1/alerts?rule=compliance_drop")["alerts"]
    status, body = client.call(
        "POST", "/api/v1/alerts/ack", {"alert_id": drop["alert_id"], "by": "Li", "comment": "on it"}
    )
    assert status == 200
    assert body["alert"]["acknowledged"]["by"] == "Li"
    assert client.call("POST", "/api/v1/alerts/ack", {"alert_id": "0" * 16, "by": "Li"})[0] == 404
    for bad in (
        {"alert_id": drop["alert_id"]},
        {"alert_id": "x", "by": "Li"},
        {"by": "Li", "extra": 1},
        [1, 2],
    ):
        status, body = client.call("POST", "/api/v1/alerts/ack", bad)
        assert status == 400, bad
        assert body["error"]
    assert client.call("POST", "/api/v1/alerts/ack", raw=b"{not json")[0] == 400
    assert client.call("POST", "/api/v1/alerts/ack")[0] == 400


def test_acknowledging_a_resolved_alert_is_a_conflict(
    client: Client, service: AlertService, clock: FakeClock
) -> None:
    """Only pending and firing alerts can be acknowledged: 409 otherwise."""
    [drop] = client.get("/api/v1/alerts?rule=compliance_drop")["alerts"]
    service.write(water(clock.advance(hours=1), station_id="st-1"))
    status, body = client.call("POST", "/api/v1/alerts/ack", {"alert_id": drop["alert_id"], "by": "Li"})
    assert status == 409
    assert "resolved" in body["error"]
    assert client.get(f"/api/v1/alerts?alert_id={drop['alert_id']}")["alerts"][0]["state"] == "resolved"


def test_silences_crud(client: Client, clock: FakeClock) -> None:
    """Silences are created, listed with their status, expired by DELETE and validated."""
    body = {
        "matchers": {"station_id": "st-1", "rule": {"regex": "compliance_.*"}},
        "ends_at": (clock.now + timedelta(hours=2)).isoformat(),
        "by": "Li",
        "reason": "planned works",
    }
    status, created = client.call("POST", "/api/v1/silences", body)
    assert status == 200
    [listed] = client.get("/api/v1/silences")["silences"]
    assert (listed["id"], listed["status"]) == (created["id"], "active")
    assert listed["matchers"] == {"station_id": "st-1", "rule": {"regex": "compliance_.*"}}
    [drop] = client.get("/api/v1/alerts?rule=compliance_drop")["alerts"]
    assert drop["silenced"] is True
    status, expired = client.call("DELETE", f"/api/v1/silences?id={created['id']}")
    assert (status, expired["silence"]["status"]) == (200, "expired")
    assert client.get("/api/v1/silences")["silences"] == []
    assert len(client.get("/api/v1/silences?all=1")["silences"]) == 1
    assert client.call("DELETE", "/api/v1/silences?id=nope")[0] == 404
    assert client.call("DELETE", "/api/v1/silences")[0] == 400
    past = {**body, "ends_at": (clock.now - timedelta(minutes=1)).isoformat()}
    for bad in (
        past,
        {**body, "matchers": {"rule": {"regex": "("}}},
        {**body, "reason": ""},
        {**body, "ends_at": "soon"},
    ):
        assert client.call("POST", "/api/v1/silences", bad)[0] == 400, bad


def test_snapshot_holds_the_get_answers_and_a_failing_part_alone_is_left_out(
    client: Client, service: AlertService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snapshot() gives what GET stations, alerts, compliance (less `at`), silences and incidents
    (status=all) answer; a part that raises is None."""
    snapshot = json.loads(json.dumps(service.snapshot()))
    compliance = client.get("/api/v1/compliance")
    assert snapshot == {
        "problems": [],
        "stations": client.get("/api/v1/stations")["stations"],
        "alerts": client.get("/api/v1/alerts")["alerts"],
        "compliance": {k: v for k, v in compliance.items() if k != "at"},
        "silences": client.get("/api/v1/silences")["silences"],
        "incidents": client.get("/api/v1/incidents?status=all")["incidents"],
    }

    def broken(group_by: object = None) -> dict[str, Any]:
        raise RuntimeError("the compliance view broke")

    monkeypatch.setattr(service.api, "compliance_now", broken)
    with capture_logs() as logs:
        partial = json.loads(json.dumps(service.snapshot()))
    assert partial == {**snapshot, "compliance": None, "problems": ["compliance could not be read"]}
    assert [(e["event"], e["part"]) for e in logs] == [("alert_snapshot_failed", "compliance")]
