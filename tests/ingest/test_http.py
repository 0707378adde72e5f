"""The HTTP server: routing, JSON bodies, bad input, bearer token, metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ingest import telemetry  # noqa: F401 - registers the ecowatch metrics
from ingest.app.http import HTTPService
from ingest.routes import BadRequest, NotFound, Request, int_param

TOKEN = "t0ken-for-test"


def _echo(request: Request) -> tuple[int, Any]:
    if request.body is None or not isinstance(request.body, dict):
        raise BadRequest("a JSON object is required")
    return 201, {"got": request.body, "limit": int_param(request.query, "limit", 5, 1, 10)}


def _missing(_request: Request) -> tuple[int, Any]:
    raise NotFound("no such alert")


def _broken(_request: Request) -> tuple[int, Any]:
    raise RuntimeError("bug with a secret inside")


@pytest.fixture
def service() -> Iterator[HTTPService]:
    http = HTTPService(
        "127.0.0.1",
        0,
        {
            ("GET", "/healthz"): lambda _r: (200, {"status": "ok"}),
            ("POST", "/echo"): _echo,
            ("GET", "/missing"): _missing,
            ("GET", "/broken"): _broken,
        },
        token=TOKEN,
    )
    http.start()
    yield http
    http.stop()


def call(
    service: HTTPService, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{service.port}{path}", data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode()


def test_probes_and_metrics_need_no_token(service: HTTPService) -> None:
    """/healthz and /metrics answer without credentials; Prometheus text is served."""
    assert call(service, "GET", "/healthz", token=None) == (200, {"status": "ok"})
    status, text = call(service, "GET", "/metrics", token=None)
    assert status == 200
    assert "ecowatch_messages_received_total" in text


def test_api_routes_require_the_token(service: HTTPService) -> None:
    """Without or with a wrong bearer token the API answers 401."""
    assert call(service, "POST", "/echo", b"{}", token=None)[0] == 401
    assert call(service, "POST", "/echo", b"{}", token="wrong")[0] == 401


def test_json_bodies_and_query_parameters_reach_the_handler(service: HTTPService) -> None:
    """A POSTed object and a validated query parameter are handed over."""
    assert call(service, "POST", "/echo?limit=7", b'{"a": 1}') == (201, {"got": {"a": 1}, "limit": 7})


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/echo", b"not json", 400),
        ("POST", "/echo", b"[1, 2]", 400),
        ("POST", "/echo?limit=99", b"{}", 400),
        ("POST", "/echo?limit=x", b"{}", 400),
        ("POST", "/echo", b"{" + b" " * 70000 + b"}", 413),
        ("GET", "/echo", None, 405),
        ("GET", "/nowhere", None, 404),
        ("GET", "/missing", None, 404),
        ("GET", "/broken", None, 500),
    ],
)
def test_bad_input_gets_a_clear_status(
    service: HTTPService, method: str, path: str, body: bytes | None, status: int
) -> None:
    """Malformed bodies and parameters are 400, too large 413, unknown paths 404, wrong methods 405, bugs 500."""
    got, payload = call(service, method, path, body)
    assert got == status
    assert "error" in payload
    assert "secret" not in json.dumps(payload)
