"""`ecowatch demo` runs on embedded defaults and shows readings flowing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port


@pytest.mark.integration
def test_demo_starts_the_embedded_broker_and_readings_flow(tmp_path: Path) -> None:
    """With no server installed for it, the demo stores simulated readings and prints the summary."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest.app.cli",
            "demo",
            "--duration",
            "22",
            "--data-dir",
            str(tmp_path / "demo"),
            "--mqtt-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "/metrics" in out
    assert "/readyz" in out
    last = [line for line in out.splitlines() if line.startswith("[")][-1]
    received, accepted, stored = (
        int(n) for n in re.findall(r"received (\d+) · readings accepted (\d+), stored (\d+)", last)[0]
    )
    assert received >= 32, out
    assert stored == accepted > 0, out
    assert (tmp_path / "demo" / "readings.db").exists()
