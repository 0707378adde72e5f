"""Logging set-up: secrets are redacted from every log line, JSON when not on a terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from ingest.telemetry import configure_logging, redact_secrets


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_secret_fields_are_redacted() -> None:
    """password, token and friends never reach the output."""
    event = redact_secrets(None, "info", {"event": "x", "password": "p", "token": "t", "host": "h"})
    assert event == {"event": "x", "password": "<redacted>", "token": "<redacted>", "host": "h"}


def test_json_lines_carry_level_time_and_context(capsys: pytest.CaptureFixture[str]) -> None:
    """In JSON mode each line is an object with the event, level, ISO time and bound context."""
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(station_id="st-1")
    try:
        structlog.get_logger().warning("reading_rejected", reason="out_of_range", token="abc")
        structlog.get_logger().debug("not_shown")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "reading_rejected"
    assert record["level"] == "warning"
    assert record["station_id"] == "st-1"
    assert record["token"] == "<redacted>"
    assert record["timestamp"].endswith("Z")
