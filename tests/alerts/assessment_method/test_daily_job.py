"""The method in the daemon: the daily assessment's job, its table, and GET /api/v1/assessment.

One river section (target II) reports the five required items every four hours; the daily
assessment at 08:00 Shanghai time judges the day before by the 2011 method and stores its summary
and daily values; the API makes months from the stored days and reads the days it lacks from the
readings store (a fake reader here: tests/integration covers the real stores).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.assessment_method.source import ResultRow, ResultsRequest, SourceError
from alerts.service import AlertService
from alerts.store import SCHEMA_VERSION, AlertStore
from config.times import to_ns
from ingest.app.http import HTTPService
from tests.alerts.engine_support import FakeClock, one_station_registry, report, rules_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE = {"name": "compliance_drop", "kind": "compliance_drop"}
# Class II on a river but NH3-N (class III: 0.6), which the target II misses.
DAY_VALUES = {"ph": 7.5, "do": 8.0, "codmn": 3.0, "nh3n": 0.6, "tp": 0.08}


def _local(day: int, hour: int = 0, month: int = 7) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


class FakeStore:
    """A readings store that answers the requests it gets with given rows, or fails."""

    def __init__(self, rows: Sequence[ResultRow] = (), *, fail: bool = False) -> None:
        self.rows = list(rows)
        self.fail = fail
        self.requests: list[ResultsRequest] = []
        self.closed = False

    @property
    def description(self) -> str:
        return "fake store"

    @property
    def notes(self) -> Sequence[str]:
        return ()

    def results(self, request: ResultsRequest) -> Iterator[ResultRow]:
        self.requests.append(request)
        if self.fail:
            raise SourceError("fake store: down")
        chunks = request.chunks()
        return iter([r for r in self.rows if any(c.start_ns <= r[1] < c.end_ns for c in chunks)])

    def close(self) -> None:
        self.closed = True


def _service(
    tmp_path: Path, clock: FakeClock, store: FakeStore | None = None, *, catch_up_days: int = 7
) -> AlertService:
    scheduler = {"daily_assessment_at": "08:00", "timezone": "Asia/Shanghai", "catch_up_days": catch_up_days}
    config = rules_config(RULE, scheduler=scheduler)
    return AlertService(config, one_station_registry(), tmp_path / "alerts.db", clock=clock, results=store)


def _day(
    service: AlertService, day: int, *, hours: Sequence[int] = (0, 4, 8, 12, 16, 20), **values: float
) -> None:
    for hour in hours:
        service.write(report(_local(day, hour), {**DAY_VALUES, **values}))


def _rows(
    day: date, values: dict[str, float], station_id: str = "st-1", below: bool = False
) -> list[ResultRow]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI)
    return [
        (station_id, to_ns(start + timedelta(hours=h)), code, value, "N", below and code == "tp")
        for h in (0, 4, 8, 12, 16, 20)
        for code, value in values.items()
    ]


def test_a_closed_day_is_judged_by_the_method_and_stored(tmp_path: Path) -> None:
    """At 08:00 the day before gets its section result, regional rates and daily values, once."""
    clock = FakeClock(_local(2, 9))
    service = _service(tmp_path, clock)
    try:
        _day(service, 1)
        assert service.assess(_local(2, 7)) == []
        assert service.assess(_local(2, 8)) == ["2026-07-01"]
        assert service.assess(_local(2, 9)) == []
        summary = service.store.assessment("2026-07-01")
        assert summary is not None
        st = summary["stations"]["st-1"]
        assert (st["class"], st["target"], st["compliant"], st["assessable"], st["grade"]) == (
            "III",
            "II",
            False,
            True,
            "良好",
        )
        assert (st["means"]["nh3n"], st["samples"], st["worse_than_target"]) == (0.6, 30, ["nh3n"])
        [district] = summary["rates"]["district"]
        assert (district["district"], district["assessed"], district["share_meeting_target"]) == (
            "Yuzhong",
            1,
            0.0,
        )
        assert summary["method"].startswith("地表水环境质量评价办法")
        with sqlite3.connect(tmp_path / "alerts.db") as db:
            rows = db.execute("SELECT day, item, mean, results FROM daily_values ORDER BY item").fetchall()
        assert rows[2] == ("2026-07-01", "nh3n", 0.6, 6)
        assert len(rows) == 5
        [note] = service.store.history(rule="daily_assessment")
        assert note["alert_id"] == "assessment:2026-07-01"
    finally:
        service.close()


def test_short_days_and_missing_items_are_not_assessable(tmp_path: Path) -> None:
    """Three results a day (four needed), or no TP at all: no class, never a better one."""
    clock = FakeClock(_local(4, 9))
    service = _service(tmp_path, clock)
    try:
        _day(service, 1, hours=(1, 9, 17))
        for hour in (0, 4, 8, 12, 16, 20):
            service.write(report(_local(2, hour), {k: v for k, v in DAY_VALUES.items() if k != "tp"}))
        assert service.assess(_local(3, 8)) == ["2026-07-01", "2026-07-02"]
        short = service.store.assessment("2026-07-01")
        no_tp = service.store.assessment("2026-07-02")
        assert short is not None
        assert no_tp is not None
        assert (short["stations"]["st-1"]["class"], short["stations"]["st-1"]["missing"]) == (
            None,
            ["ph", "do", "codmn", "nh3n", "tp"],
        )
        assert short["left_out"]["short_days"] == 5
        assert (no_tp["stations"]["st-1"]["class"], no_tp["stations"]["st-1"]["compliant"]) == (None, None)
        assert no_tp["stations"]["st-1"]["missing"] == ["tp"]
    finally:
        service.close()


def test_the_store_is_read_when_given_and_the_samples_when_it_fails(tmp_path: Path) -> None:
    """With a readings store its rows (below-DL marks kept) make the day; a failing store is skipped."""
    store = FakeStore(_rows(date(2026, 7, 1), {**DAY_VALUES, "tp": 0.01}, below=True))
    clock = FakeClock(_local(2, 9))
    service = _service(tmp_path, clock, store)
    try:
        _day(service, 1, nh3n=1.8)  # what the engine saw: ignored, the store has the day
        assert service.assess(_local(2, 8)) == ["2026-07-01"]
        summary = service.store.assessment("2026-07-01")
        assert summary is not None
        assert summary["stations"]["st-1"]["class"] == "III"  # NH3-N 0.6 from the store, not 1.8
        request = store.requests[-1]  # after the empty days of the catch-up, oldest first
        assert request.windows == ((date(2026, 7, 1), date(2026, 7, 2)),)
        assert set(request.items) >= {"ph", "do", "codmn", "nh3n", "tp"}
        with sqlite3.connect(tmp_path / "alerts.db") as db:
            tp = db.execute("SELECT mean, dl FROM daily_values WHERE item = 'tp'").fetchone()
        assert tp == (0.005, 0.01)  # half the limit in the mean, the limit kept
        store.fail = True
        _day(service, 2, nh3n=1.8)
        assert service.assess(_local(3, 8)) == ["2026-07-02"]
        fallback = service.store.assessment("2026-07-02")
        assert fallback is not None
        assert fallback["stations"]["st-1"]["class"] == "V"  # the engine's own samples
    finally:
        service.close()
    assert store.closed


def test_a_schema_1_database_is_upgraded(tmp_path: Path) -> None:
    """An alert database of schema 1 gets the daily_values table and version 2, its rows kept."""
    path = tmp_path / "alerts.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE assessments (day TEXT PRIMARY KEY, assessed_ns INTEGER NOT NULL, summary TEXT NOT NULL);"
            "INSERT INTO assessments VALUES ('2026-06-30', 1, '{}');"
            "PRAGMA user_version = 1;"
        )
    db.close()
    store = AlertStore(path)
    try:
        assert store.assessed_days() == {"2026-06-30"}
        store.save_daily_values("2026-06-30", [("st-1", "nh3n", 0.3, 0.0, None, 6)])
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
        assert db.execute("SELECT * FROM daily_values").fetchall() == [
            ("2026-06-30", "st-1", "nh3n", 0.3, 0.0, None, 6)
        ]
    db.close()


# --- GET /api/v1/assessment ----------------------------------------------------------------------
class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, path: str) -> tuple[int, Any, dict[str, str]]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                body = response.read()
                headers = dict(response.headers)
                is_json = headers["Content-Type"].startswith("application/json")
                return response.status, json.loads(body) if is_json else body, headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), {}

    def get(self, path: str) -> Any:
        status, body, _ = self.call(path)
        assert status == 200, body
        return body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[AlertService, Client, FakeStore, FakeClock]]:
    """Three closed days of July assessed as they closed; June's last days and last July only in the store."""
    june = [row for d in (28, 29, 30) for row in _rows(date(2026, 6, d), DAY_VALUES)]
    july = [row for d in (1, 2, 3) for row in _rows(date(2026, 7, d), DAY_VALUES)]
    last_july = [row for d in range(1, 32) for row in _rows(date(2025, 7, d), {**DAY_VALUES, "nh3n": 1.2})]
    store = FakeStore(june + july + last_july)
    clock = FakeClock(_local(4, 9))
    service = _service(tmp_path, clock, store, catch_up_days=0)
    for day in (1, 2, 3):
        assert service.assess(_local(day + 1, 9)) == [f"2026-07-0{day}"]
    store.requests.clear()
    http = HTTPService("127.0.0.1", 0, service.routes(), token=None)
    http.start()
    try:
        yield service, Client(http.port), store, clock
    finally:
        http.stop()
        service.close()


def test_a_stored_day_is_served_without_the_store(
    served: tuple[AlertService, Client, FakeStore, FakeClock],
) -> None:
    """?period=2026-07-02 is the day's report from the stored values; the day before is stored too."""
    _, client, store, _ = served
    body = client.get("/api/v1/assessment?period=2026-07-02")
    [section] = body["sections"]
    assert (section["class"], section["meets_target"], section["previous_class"]) == ("III", False, "III")
    assert section["values"]["nh3n"]["text"] == "0.600"
    assert body["period"]["label_zh"] == "2026年7月2日"
    assert body["overall"]["grade"] == "良好"  # one section: graded by its values
    assert body["sources"] == {"stored_days": 2, "read_days": 1, "missing_days": 0, "problems": []}
    assert [r.windows for r in store.requests] == [((date(2025, 7, 2), date(2025, 7, 3)),)]


def test_a_month_is_made_of_stored_and_read_days(
    served: tuple[AlertService, Client, FakeStore, FakeClock],
) -> None:
    """July so far: three stored days (a month needs 20: not assessable); last July read from the store."""
    _, client, store, _ = served
    body = client.get("/api/v1/assessment?period=2026-07&region=district:Yuzhong")
    [section] = body["sections"]
    assert (section["assessable"], section["missing"]) == (False, ["ph", "do", "codmn", "nh3n", "tp"])
    assert section["last_year_class"] == "IV"  # NH3-N 1.2 all July 2025
    assert section["previous_class"] is None  # three days of June: no valid month
    assert body["sources"]["stored_days"] == 3
    assert body["sources"]["read_days"] == 31 + 30  # last July, and June; not July 4th on (not closed)
    assert body["scope"] == {"kind": "district", "name": "Yuzhong"}
    again = client.get("/api/v1/assessment?period=2026-07&region=district:Yuzhong")
    assert again == body
    assert len(store.requests) == 1  # answered from the cache


def test_defaults_errors_and_printed_forms(
    served: tuple[AlertService, Client, FakeStore, FakeClock],
) -> None:
    """No period: the last closed day; bad periods 400, unknown regions 404; format=html is the page."""
    service, client, store, clock = served
    assert client.get("/api/v1/assessment")["period"]["label"] == "2026-07-03"
    assert client.call("/api/v1/assessment?period=2026-13")[0] == 400
    assert client.call("/api/v1/assessment?period=2026-07&region=town:x")[0] == 400
    assert client.call("/api/v1/assessment?period=2026-07&region=district:Nowhere")[0] == 404
    assert client.call("/api/v1/assessment?period=2026-07&format=pdf")[0] == 400
    status, page, headers = client.call("/api/v1/assessment?period=2026-07-03&format=html")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "2026年7月3日地表水环境质量日报" in page.decode()
    assert 'filename="ecowatch-2026-07-03.html"' in headers["Content-Disposition"]
    store.fail = True
    failing = client.get("/api/v1/assessment?period=2026-Q3")
    assert failing["sources"]["problems"] == ["fake store: down"]
    assert failing["sources"]["missing_days"] > 0
    clock.now = _local(5, 9)
    store.fail = False
    store.rows += _rows(date(2026, 7, 4), DAY_VALUES)
    assert service.assess(clock.now) == ["2026-07-04"]  # a new day: cached answers are stale
    assert client.get("/api/v1/assessment?period=2026-07-04")["sections"][0]["class"] == "III"
