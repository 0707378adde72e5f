"""The dashboard's endpoints through a real HTTP server: page and assets, registry, readings, auth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from config.standards import default_standard
from ingest.app.dashboard import DashboardConfig
from ingest.app.dashboard.assets import CONTENT_SECURITY_POLICY, STATIC_DIR
from ingest.app.query import bucket_ns
from tests.dashboard.support import (
    HOSTILE_NAME,
    RIVER_SPILL_HOURS,
    T0,
    TOKEN,
    Stack,
    history,
    reading,
    serve_stack,
)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with serve_stack(tmp_path, monkeypatch) as served:
        yield served


# --- page and assets ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/static/i18n.js", "i18n.js", "text/javascript; charset=utf-8"),
        ("/static/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/static/assessment.js", "assessment.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "style.css", "text/css; charset=utf-8"),
    ],
)
def test_page_and_assets_are_served_without_token_with_strict_headers(
    stack: Stack, path: str, file: str, content_type: str
) -> None:
    """The page and its files are public, byte-exact, with CSP, no framing and nosniff."""
    response = stack.request("GET", path, token=None)
    assert response.status == 200
    assert response.body == (STATIC_DIR / file).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_loads_nothing_from_elsewhere_and_has_no_inline_code() -> None:
    """index.html references only its own files: no CDN, no inline script or style."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    scripts = ("i18n.js", "app.js", "assessment.js")  # in this order: each uses the one before
    assert [f'<script src="/static/{name}" defer></script>' in html for name in scripts] == [True] * 3
    assert html.index("i18n.js") < html.index("app.js") < html.index("assessment.js")
    assert html.count("<script") == len(scripts)
    assert "<style" not in html
    assert " style=" not in html
    assert " on" + "click=" not in html
    assert "http://" not in html
    assert "https://" not in html


def test_script_never_writes_markup() -> None:
    """The scripts build DOM nodes only: no innerHTML, outerHTML, insertAdjacentHTML, document.write, eval."""
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
    for name in ("i18n.js", "app.js", "assessment.js"):
        script = (STATIC_DIR / name).read_text(encoding="utf-8")
        for sink in sinks:
            assert sink not in script, (name, sink)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../service.py",
        "/static/..%2f..%2fservice.py",
        "/static/%2e%2e/%2e%2e/http.py",
        "/static/../../../../etc/passwd",
        "/static//etc/passwd",
        "/static/app.js/../../__init__.py",
        "/static/",
        "/static/index.html",
        "/static/APP.JS",
        "/static/app.js%00.txt",
        "/static/static/app.js",
        "/index.html",
    ],
)
def test_only_whitelisted_assets_are_served(stack: Stack, path: str) -> None:
    """Traversal and unlisted names answer 404 with the token (401 without) and leak no file."""
    for token, expected in ((TOKEN, 404), (None, 401)):
        response = stack.request("GET", path, token=token)
        assert response.status == expected, (path, token)
        assert b"import" not in response.body
        assert b"root:" not in response.body


# --- auth --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/api/v1/registry", "/api/v1/readings?station=st-river&parameter=nh3n", "/api/v1/stream"]
)
def test_data_endpoints_need_the_token(stack: Stack, path: str) -> None:
    """Without the bearer token, or with a wrong one, every data endpoint answers 401."""
    assert stack.request("GET", path, token=None).status == 401
    assert stack.request("GET", path, token="wrong-token").status == 401
    assert stack.request("GET", path, token=None, headers={"Authorization": f"Basic {TOKEN}"}).status == 401


def test_without_a_configured_token_everything_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon without a token serves the data endpoints to anyone (loopback deployments)."""
    with serve_stack(tmp_path, monkeypatch, token=None) as open_stack:
        assert open_stack.request("GET", "/api/v1/registry", token=None).status == 200


# --- registry ----------------------------------------------------------------------------------
def test_registry_lists_stations_with_coordinates_and_parameters(stack: Stack) -> None:
    """Every station with its coordinates, target and the codes it reports; the catalogue with names."""
    body = stack.get_json("/api/v1/registry")
    assert body["standard"] == "GB 3838-2002"
    assert body["classes"] == ["I", "II", "III", "IV", "V", "劣V"]
    stations = {s["id"]: s for s in body["stations"]}
    assert set(stations) == {"st-river", "st-lake", "st-evil"}
    lake = stations["st-lake"]
    assert (lake["lat"], lake["lon"], lake["water_body"], lake["target_class"]) == (
        29.96,
        107.21,
        "lake",
        "III",
    )
    assert "nh3n" in lake["parameters"]
    assert "level" not in lake["parameters"]  # a water-quality station reports no hydrology
    parameters = {p["code"]: p for p in body["parameters"]}
    assert parameters["nh3n"]["name_zh"] == "氨氮"
    assert parameters["nh3n"]["classified"] is True
    assert parameters["temp"]["classified"] is False
    assert "hj212_password" not in str(body)


def test_hostile_station_name_round_trips_as_text(stack: Stack) -> None:
    """Markup in a station's name and district comes back verbatim as JSON strings, never rewritten."""
    stations = {s["id"]: s for s in stack.get_json("/api/v1/registry")["stations"]}
    assert stations["st-evil"]["name"] == HOSTILE_NAME
    assert stations["st-evil"]["district"] == "<i>district</i>"
    chart = stack.get_json("/api/v1/readings?station=st-evil&parameter=nh3n&hours=24")
    assert chart["station"]["name"] == HOSTILE_NAME


# --- readings ----------------------------------------------------------------------------------
def test_readings_answer_the_series_and_the_class_limits(stack: Stack) -> None:
    """The last N hours of one station and parameter, oldest first, with the river's class limits."""
    body = stack.get_json("/api/v1/readings?station=st-river&parameter=nh3n&hours=24")
    assert body["hours"] == 24
    points = body["points"]
    assert len(points) == 24
    times = [p[0] for p in points]
    assert times == sorted(times)
    assert times[0] == int((T0.timestamp() - 24 * 3600) * 1000)
    # Clean until T0's local day, NH3-N 1.2 through it (the fixture's RIVER_SPILL_HOURS).
    assert [p[1] for p in points[-RIVER_SPILL_HOURS - 1 :]] == [0.3] + [1.2] * RIVER_SPILL_HOURS
    assert [p[3] for p in points] == [False] * 24  # measured values, none below the detection limit
    assert body["parameter"] == {
        "code": "nh3n",
        "name": "ammonia nitrogen",
        "name_zh": "氨氮",
        "unit": "mg/L",
        "classified": True,
    }
    item = default_standard().items["nh3n"]
    assert body["limits"] == {
        "kind": "max",
        "classes": [
            {"class": c, "limit": v}
            for c, v in zip(["I", "II", "III", "IV", "V"], item.limits or (), strict=True)
        ],
    }
    assert body["station"]["target_class"] == "II"


def test_flags_come_with_the_points(stack: Stack) -> None:
    """A value flagged M in the store is answered with its flag."""
    points = stack.get_json("/api/v1/readings?station=st-river&parameter=codmn&hours=24")["points"]
    flags = [p[2] for p in points]
    assert flags.count("M") == 1
    assert flags.count("N") == 23


def test_a_value_below_the_detection_limit_is_marked_in_its_point(stack: Stack) -> None:
    """A result below the detection limit is answered as the limit with a 4th element true; the
    measured values around it say false."""
    at = T0 - timedelta(minutes=30)
    stack.sink.write([replace(reading("st-river", "tp", 0.01, at), below_dl=True)])
    points = stack.get_json("/api/v1/readings?station=st-river&parameter=tp&hours=2")["points"]
    assert points == [
        [int((T0.timestamp() - 7200) * 1000), 0.08, "N", False],
        [int((T0.timestamp() - 3600) * 1000), 0.08, "N", False],
        [int(at.timestamp() * 1000), 0.01, "N", True],
    ]


def test_lake_stations_get_the_lake_column(stack: Stack) -> None:
    """TP limits of a lake come from GB 3838's lake and reservoir column, a river's from the river column."""
    lake = stack.get_json("/api/v1/readings?station=st-lake&parameter=tp&hours=6")["limits"]
    river = stack.get_json("/api/v1/readings?station=st-river&parameter=tp&hours=6")["limits"]
    item = default_standard().items["tp"]
    assert [c["limit"] for c in lake["classes"]] == list(item.limits_lake or ())
    assert [c["limit"] for c in river["classes"]] == list(item.limits or ())
    assert lake != river


def test_min_range_and_unclassified_parameters(stack: Stack) -> None:
    """DO has minimum limits, pH a range, temperature none."""
    assert stack.get_json("/api/v1/readings?station=st-river&parameter=do")["limits"]["kind"] == "min"
    assert stack.get_json("/api/v1/readings?station=st-river&parameter=ph")["limits"] == {
        "kind": "range",
        "low": 6.0,
        "high": 9.0,
    }
    assert stack.get_json("/api/v1/readings?station=st-river&parameter=temp")["limits"] is None


def test_long_periods_are_downsampled_to_max_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A period with more readings than max_points answers at most max_points bucket means."""
    with serve_stack(tmp_path, monkeypatch, config=DashboardConfig(max_points=10)) as small:
        body = small.get_json("/api/v1/readings?station=st-river&parameter=nh3n&hours=48")
    width_ms = bucket_ns(T0 - timedelta(hours=48), T0, 10) // 1_000_000
    expected: dict[int, list[float]] = {}
    for r in history():
        if (r.station_id, r.parameter) == ("st-river", "nh3n"):
            start = r.time_ns // 1_000_000 // width_ms * width_ms
            expected.setdefault(start, []).append(r.value)
    assert 1 < len(body["points"]) <= 10
    assert body["points"] == [
        [t, pytest.approx(sum(v) / len(v)), "N", False] for t, v in sorted(expected.items())
    ]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("station=nowhere&parameter=nh3n", 404, "no station nowhere"),
        ("station=st-river&parameter=xyz", 400, "unknown parameter xyz"),
        ("station=st-river&parameter=nh3n&hours=0", 400, "hours must be within [1, 720]"),
        ("station=st-river&parameter=nh3n&hours=721", 400, "hours must be within [1, 720]"),
        ("station=st-river&parameter=nh3n&hours=abc", 400, "hours must be an integer"),
        ("station=st-river&parameter=nh3n&hours=-5", 400, "hours must be within [1, 720]"),
        ("parameter=nh3n", 400, "station and parameter are required"),
        ("station=st-river", 400, "station and parameter are required"),
        ("station=st-river' OR '1'='1&parameter=nh3n", 404, "no station st-river' OR '1'='1"),
        (f"station={'x' * 200}&parameter=nh3n", 400, "station is longer than 128 characters"),
    ],
)
def test_readings_reject_bad_input(stack: Stack, query: str, status: int, message: str) -> None:
    """Unknown stations 404; unknown parameters, hours out of 1..720 and missing fields 400."""
    response = stack.request("GET", "/api/v1/readings?" + query.replace(" ", "%20"))
    assert response.status == status
    assert response.json() == {"error": message}


def test_readings_store_down_answers_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that cannot be read answers 503 naming the store, not 500."""
    with serve_stack(tmp_path, monkeypatch) as broken:
        (tmp_path / "readings.db").unlink()
        (tmp_path / "readings.db").mkdir()  # a folder where the database should be
        response = broken.request("GET", "/api/v1/readings?station=st-river&parameter=nh3n")
    assert response.status == 503
    assert "sqlite" in response.json()["error"]
