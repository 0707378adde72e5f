"""Builders of the dashboard tests: a registry with a hostile station name, readings, a served stack.

`serve_stack` runs what the daemon wires (an SQLite sink, the alert service on a fake clock, the
dashboard) behind a real `HTTPService` on a loopback port, with the page's files public as the
daemon serves them; given another `registry` (one with a river network, say), it serves that one
and feeds no history. `chromium` opens Debian's Chromium through Playwright and fails the test on
any error the page reports.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from playwright.sync_api import BrowserContext, Playwright

import ingest.app.http
from alerts.config import AlertsConfig
from alerts.service import AlertService
from config.registry import Registry, WaterClass
from ingest.app.dashboard import PUBLIC_PATHS, Dashboard, DashboardConfig
from ingest.app.http import HTTPService
from ingest.app.query import SQLiteQuery
from ingest.model import DataFlag, Reading
from ingest.sinks.sqlite import SQLiteSink, SQLiteSinkConfig
from tests.helpers import station

T0: Final = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
# st-river's reports in T0's local day (from 00:00 Asia/Shanghai, 16 h before T0) are class IV.
RIVER_SPILL_HOURS: Final = 16
TOKEN: Final = "dashboard-test-token"
HOSTILE_NAME: Final = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;"\''
UNITS: Final = {"ph": "1", "temp": "°C"}
# A class II report on a river (GB 3838 Table 1): DO >= 6, CODMn <= 4, NH3-N <= 0.5, TP <= 0.1.
CLEAN: Final = {"ph": 7.5, "do": 8.0, "codmn": 3.0, "nh3n": 0.3, "tp": 0.08}
HISTORY_HOURS: Final = 48


def dashboard_registry() -> Registry:
    return Registry(
        [
            station(
                "st-river",
                name="嘉陵江 北碚",
                river="嘉陵江",
                basin="长江",
                district="北碚区",
                target_class=WaterClass.II,
                lat=29.82,
                lon=106.43,
                report_interval_s=3600,
            ),
            station(
                "st-lake",
                name="长寿湖 湖心",
                river="龙溪河",
                basin="长江",
                district="长寿区",
                water_body="lake",
                target_class=WaterClass.III,
                lat=29.96,
                lon=107.21,
                report_interval_s=3600,
            ),
            station(
                "st-evil",
                name=HOSTILE_NAME,
                river="<b>river</b>",
                basin="长江",
                district="<i>district</i>",
                target_class=WaterClass.II,
                lat=29.55,
                lon=106.58,
                report_interval_s=3600,
            ),
        ]
    )


def ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def reading(
    station_id: str, parameter: str, value: float, at: datetime, flag: DataFlag = DataFlag.NORMAL
) -> Reading:
    return Reading(
        station_id=station_id,
        measurement="water_quality",
        parameter=parameter,
        value=value,
        unit=UNITS.get(parameter, "mg/L"),
        time_ns=ns(at),
        flag=flag,
        tags=(("station_id", station_id),),
    )


def history(end: datetime = T0) -> list[Reading]:
    """Hourly reports of the last two days before `end`.

    st-river is class II until the local day of `end` (Asia/Shanghai; T0 is 16:00 there), whose
    reports all have NH3-N 1.2, so its daily value so far is class IV, and one CODMn is flagged M; st-lake is class III on TP (0.04: the lake column); st-evil stays clean.
    """
    out: list[Reading] = []
    for hour in range(HISTORY_HOURS, 0, -1):
        at = end - timedelta(hours=hour)
        for station_id in ("st-river", "st-lake", "st-evil"):
            values = dict(CLEAN)
            if station_id == "st-lake":
                values["tp"] = 0.04
            if station_id == "st-river" and hour <= RIVER_SPILL_HOURS:
                values["nh3n"] = 1.2
            for code, value in values.items():
                flagged = station_id == "st-river" and code == "codmn" and hour == 10
                out.append(
                    reading(station_id, code, value, at, DataFlag.MAINTENANCE if flagged else DataFlag.NORMAL)
                )
    return out


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Stack:
    http: HTTPService
    dashboard: Dashboard
    alerts: AlertService
    sink: SQLiteSink
    clock: FakeClock
    registry: Registry
    token: str | None

    @property
    def port(self) -> int:
        return self.http.port

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | bool | None = True,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request; `token=True` sends the stack's token, a string sends that, None nothing."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        bearer = self.token if token is True else token
        if isinstance(bearer, str):
            sent["Authorization"] = f"Bearer {bearer}"
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return Response(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def get_json(self, path: str) -> Any:
        response = self.request("GET", path)
        assert response.status == 200, response.body
        return response.json()

    def feed(self, readings: Iterable[Reading]) -> None:
        batch = list(readings)
        self.sink.write(batch)
        self.alerts.write(batch)


@contextmanager
def serve_stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str | None = TOKEN,
    config: DashboardConfig | None = None,
    with_alerts: bool = True,
    registry: Registry | None = None,
) -> Iterator[Stack]:
    """The stack on `dashboard_registry()` with its `history()` fed, or on `registry` with nothing fed."""
    # As the daemon serves them: the page and its files need no token (they hold no data).
    monkeypatch.setattr(ingest.app.http, "OPEN_PATHS", ingest.app.http.OPEN_PATHS | PUBLIC_PATHS)
    backfill = registry is None
    registry = registry or dashboard_registry()
    clock = FakeClock()
    sink = SQLiteSink(SQLiteSinkConfig(name="local", path=tmp_path / "readings.db"))
    alerts = AlertService(AlertsConfig(), registry, tmp_path / "alerts.db", clock=clock)
    dashboard = Dashboard(
        config or DashboardConfig(stream_interval=timedelta(milliseconds=100)),
        registry,
        SQLiteQuery(tmp_path / "readings.db"),
        alerts.snapshot if with_alerts else None,
        clock=clock,
    )
    routes = {**(alerts.routes() if with_alerts else {}), **dashboard.routes()}
    service = HTTPService("127.0.0.1", 0, routes, token=token)
    service.start()
    stack = Stack(service, dashboard, alerts, sink, clock, registry, token)
    try:
        if backfill:
            stack.feed(history())
        yield stack
    finally:
        dashboard.close()
        service.stop()
        alerts.close()
        sink.close()


CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium(
    playwright: Playwright, profile: Path, *, viewport: tuple[int, int] = (1440, 1100)
) -> Iterator[BrowserContext]:
    """Debian's Chromium with a fresh profile in Shanghai's zone; fails on any error the page reports.

    Console errors include CSP violations and failed loads; a refused token (401) is the one expected.
    """
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport={"width": viewport[0], "height": viewport[1]},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "401 (Unauthorized)" not in message.text
            else None
        ),
    )
    try:
        yield context
    finally:
        context.close()
    assert errors == [], f"the page reported errors: {errors}"
