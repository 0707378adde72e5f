"""`ecowatch incidents` on a small CSV with the demo registry: the incident, its origin and forecast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.incidents.cli import main
from config.registry import Registry
from tests.helpers import DEMO_REGISTRY

# A fixed period, far from any date a test runs on.
START = datetime(2027, 3, 1, tzinfo=UTC)
STATIONS = ("cq-jl-jinzi", "cq-jl-beiwenquan", "cq-jl-daxigou", "cq-cj-fengshouba", "cq-cj-cuntan")


def _csv(tmp_path: Path) -> Path:
    """4-hourly NH3-N (class II limit 0.5 mg/L) for three days; a 12 h release reaches 北温泉 at
    day 1 08:00 and moves down 嘉陵江 into the 长江 at the network's speeds."""
    network = Registry.load(DEMO_REGISTRY).network
    assert network is not None
    arrival = START + timedelta(days=1, hours=8)
    arrivals = {"cq-jl-beiwenquan": arrival}
    for sid in ("cq-jl-daxigou", "cq-cj-cuntan"):
        travel = network.travel_time("cq-jl-beiwenquan", sid)
        assert travel is not None
        arrivals[sid] = arrival + timedelta(seconds=travel)
    lines = ["station_id,time,parameter,value,flag"]
    for step in range(18):
        moment = START + timedelta(hours=4 * step)
        for sid in STATIONS:
            at = arrivals.get(sid)
            high = at is not None and at <= moment < at + timedelta(hours=12)
            value = "2.40" if high else "0.20"
            lines.append(f"{sid},{moment.isoformat()},nh3n,{value},N")
        lines.append(f"cq-jl-daxigou,{moment.isoformat()},do,7.5,N")  # not followed
    path = tmp_path / "results.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_command_prints_the_incident_with_origin_and_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One NH3-N incident: 北温泉, 大溪沟, 寸滩 in flow order; origin above 北温泉; ETAs downstream."""
    status = main(["--readings", str(_csv(tmp_path)), "--registry", str(DEMO_REGISTRY), "--format", "json"])
    assert status == 0
    output = json.loads(capsys.readouterr().out)
    (incident,) = output["incidents"]
    assert incident["item"] == "nh3n"
    assert [s["station_id"] for s in incident["stations"]] == [
        "cq-jl-beiwenquan",
        "cq-jl-daxigou",
        "cq-cj-cuntan",
    ]
    assert incident["stations"][0]["first_exceeded_at"] == "2027-03-02T08:00:00Z"
    assert incident["status"] == "confirmed"
    origin = incident["origin"]
    assert (origin["river"], origin["downstream"]) == ("嘉陵江", "cq-jl-beiwenquan")
    bounds = {b["station_id"]: b["verified"] for b in origin["upstream"]}
    assert bounds == {
        "cq-jl-jinzi": True,
        "cq-fj-tongliang": False,
        "cq-qu-hechuan": False,
    }  # no data: unknown
    forecast = [f["point_id"] for f in incident["forecast"]]
    assert forecast[:3] == ["intake-cj-yuzui", "intake-cj-changshou", "cq-cj-qingxichang"]
    assert all(f["eta"] > incident["stations"][-1]["first_exceeded_at"] for f in incident["forecast"])


def test_a_registry_without_a_network_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing to follow without a network: exit 2 and a message naming the missing section."""
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        DEMO_REGISTRY.read_text(encoding="utf-8").split("\nnetwork:")[0] + "\n", encoding="utf-8"
    )
    assert main(["--readings", str(_csv(tmp_path)), "--registry", str(plain)]) == 2
    assert "no network: section" in capsys.readouterr().err


def test_an_unreadable_row_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad CSV row stops with exit 2 and the line number."""
    bad = tmp_path / "bad.csv"
    bad.write_text("station_id,time,parameter,value\ncq-jl-jinzi,yesterday,nh3n,1\n", encoding="utf-8")
    assert main(["--readings", str(bad), "--registry", str(DEMO_REGISTRY)]) == 2
    assert "line 2" in capsys.readouterr().err
