"""`ecowatch demo` runs on embedded defaults, shows readings flowing and tells the incident story."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

# A run of this length plays the story's history in half of it (ingest/app/demo.py), leaving the
# other half for the confirmation's webhooks to arrive before the final summary.
DURATION_S = 44


@pytest.mark.integration
def test_demo_stores_readings_and_tells_a_confirmed_incident_with_signed_webhooks(tmp_path: Path) -> None:
    """With no server installed for it, the demo prints the dashboard's URL first, stores simulated
    readings, and within its run the story's spill is an incident confirmed at a second section
    whose signed webhooks reached the network's receivers, as the final summary shows."""
    http_port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest.app.cli",
            "demo",
            "--duration",
            str(DURATION_S),
            "--data-dir",
            str(tmp_path / "demo"),
            "--mqtt-port",
            str(free_port()),
            "--http-port",
            str(http_port),
        ],
        capture_output=True,
        text=True,
        timeout=DURATION_S + 60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    lines = out.splitlines()
    assert lines[0].split() == ["dashboard", f"http://127.0.0.1:{http_port}/"], out
    assert "/metrics" in out
    assert "/readyz" in out
    assert "/api/v1/incidents" in out
    last = [line for line in lines if line.startswith("[")][-1]
    received, accepted, stored = (
        int(n) for n in re.findall(r"received (\d+) · readings accepted (\d+), stored (\d+)", last)[0]
    )
    assert received >= 32, out
    assert stored == accepted > 0, out
    assert (tmp_path / "demo" / "readings.db").exists()
    final = lines[lines.index(last) + 1 :]
    (incident,) = [line for line in final if line.lstrip().startswith("incident")]
    assert "(nh3n) confirmed at 2 sections" in incident, out
    assert "origin 长江 between" in incident, out
    assert "ETA" in incident, out
    (webhooks,) = [line for line in final if line.lstrip().startswith("webhooks")]
    received_events = int(re.findall(r"webhooks\s+(\d+) received", webhooks)[0])
    assert received_events > 0, out
    assert "signatures OK" in webhooks, out
    assert any(line.lstrip().startswith("last to ") for line in final), out
