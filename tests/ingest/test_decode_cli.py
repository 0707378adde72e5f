"""`ecowatch decode`: one JSON line per reading or rejection, exit status 1 when anything was rejected."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from ingest.app.cli import main
from ingest.decoders.hj212 import encode_data_packet


def run(
    args: list[str], stdin: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, object]]]:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = main(["decode", *args])
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_lines_print_canonical_readings_in_utc(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Values come out in the canonical unit and times in RFC 3339 UTC; exit 0 when all decoded."""
    line = b'{"station_id": "st-x", "ts": "2026-11-25T08:00:00+08:00", "readings": {"do": {"value": 8100, "unit": "ug/L"}}}\n'
    status, out = run(["--format", "json"], line, monkeypatch, capsys)
    assert status == 0
    assert out == [
        {
            "station_id": "st-x",
            "ts": "2026-11-25T00:00:00Z",
            "parameter": "do",
            "value": 8.1,
            "unit": "mg/L",
            "flag": "N",
        }
    ]


def test_hj212_packets_report_the_mn_without_a_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --config the MN stands in for the station; local DataTime becomes UTC; flags are kept."""
    packet = encode_data_packet(
        "88888880000001",
        "123456",
        "2061",
        datetime(2026, 11, 25, 8, 0),
        {"nh3n": (0.52, "N"), "tp": (0.11, "M")},
    )
    status, out = run(["--format", "hj212"], packet, monkeypatch, capsys)
    assert status == 0
    assert {(r["station_id"], r["parameter"], r["value"], r["flag"], r["ts"]) for r in out} == {
        ("88888880000001", "nh3n", 0.52, "N", "2026-11-25T00:00:00Z"),
        ("88888880000001", "tp", 0.11, "M", "2026-11-25T00:00:00Z"),
    }


def test_rejections_are_printed_with_their_reason_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupted packet and a bad JSON line each print their reason; the exit status is 1."""
    packet = encode_data_packet(
        "88888880000001", "123456", "2011", datetime(2026, 11, 25, 8, 0), {"ph": (7.1, "N")}
    )
    corrupted = packet.replace(b"7.1", b"7.2")
    status, out = run(["--format", "hj212"], corrupted, monkeypatch, capsys)
    assert status == 1
    assert out == [{"reason": "bad_crc", "detail": out[0]["detail"]}]
    status, out = run(
        ["--format", "json"],
        b'{"station_id": "a", "ts": "2026-01-01T00:00:00Z", "readings": {"ph": 99}}\n',
        monkeypatch,
        capsys,
    )
    assert status == 1
    assert out[0]["reason"] == "out_of_range"


def test_with_a_config_stations_resolve_through_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config resolves MNs to registered station ids and rejects unknown ones."""
    config = tmp_path / "ecowatch.yaml"
    config.write_text("data_dir: var\n")
    known = encode_data_packet(
        "50000000000003", "123456", "2011", datetime(2026, 11, 25, 8, 0), {"ph": (7.1, "N")}
    )
    unknown = encode_data_packet(
        "99999999999999", "123456", "2011", datetime(2026, 11, 25, 8, 0), {"ph": (7.1, "N")}
    )
    status, out = run(["--format", "hj212", "--config", str(config)], known + unknown, monkeypatch, capsys)
    assert status == 1
    assert out[0]["station_id"] == "cq-cj-cuntan"
    assert out[1]["reason"] == "unknown_station"
