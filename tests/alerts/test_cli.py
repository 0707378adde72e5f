"""`ecowatch alerts list|ack|silence|unsilence` against a daemon's API on a loopback port."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from alerts import cli
from alerts.service import AlertService
from ingest.app.http import HTTPService
from tests.alerts.engine_support import T0, FakeClock, make_service, one_station_registry, rules_config, water
from tests.conftest import free_port


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, AlertService]]:
    clock = FakeClock(T0)
    service = make_service(
        tmp_path, one_station_registry(), rules_config({"name": "drop", "kind": "compliance_drop"}), clock
    )
    service.write(water(T0, nh3n=1.8))
    http = HTTPService("127.0.0.1", 0, service.routes())
    http.start()
    yield f"http://127.0.0.1:{http.port}", service
    http.stop()
    service.close()


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="alerts_command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_list_ack_silence_unsilence(
    daemon: tuple[str, AlertService], capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator lists the alert, acknowledges it, silences its station and ends the silence."""
    url, service = daemon
    assert _run("list", "--url", url) == 0
    out = capsys.readouterr().out
    [alert_id] = list(service.engine.alerts)
    for part in ("firing", "drop", alert_id, "1 alert(s)"):
        assert part in out
    assert _run("ack", alert_id, "--by", "李工", "--comment", "crew on the way", "--url", url) == 0
    assert service.engine.alerts[alert_id].acked_by == "李工"
    assert "acknowledged" in capsys.readouterr().out
    argv = [
        "--match",
        "station_id=st-1",
        "--match",
        "rule=~dr.p",
        "--for",
        "PT2H",
        "--by",
        "李工",
        "--reason",
        "w",
    ]
    with capture_logs() as logs:
        assert _run("silence", *argv, "--url", url, "--json") == 0
    assert [entry["event"] for entry in logs] == ["silence_added"]
    created = json.loads(capsys.readouterr().out)
    assert created["silence"]["matchers"] == {"station_id": "st-1", "rule": {"regex": "dr.p"}}
    assert _run("unsilence", created["id"], "--url", url) == 0
    assert "ended" in capsys.readouterr().out


def test_refusals_and_unreachable_daemons_exit_1(
    daemon: tuple[str, AlertService], capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's reason is printed and the exit status is 1; so for a daemon that is not there."""
    url, _ = daemon
    assert _run("ack", "0" * 16, "--by", "Li", "--url", url) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert (
        _run("silence", "--match", "nolabel", "--for", "PT1H", "--by", "Li", "--reason", "r", "--url", url)
        == 1
    )
    assert "LABEL=VALUE" in capsys.readouterr().err
    assert _run("list", "--url", f"http://127.0.0.1:{free_port()}") == 1
    assert "cannot reach" in capsys.readouterr().err
