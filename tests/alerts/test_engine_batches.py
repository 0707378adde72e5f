"""The engine's batched persistence: what it stores per batch and what a restart loads back."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from config.times import to_ns
from tests.alerts.engine_support import T0, FakeClock, make_service, one_station_registry, rules_config, water

DAILY = {"name": "daily", "kind": "compliance_drop", "window": "P1D", "for": "PT0S"}


def _rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT * FROM {table}").fetchall())


def test_a_batch_stores_every_sample_and_the_newest_latest_value(tmp_path: Path) -> None:
    """One write of several reports stores each sample and, per parameter, the newest value."""
    service = make_service(tmp_path, one_station_registry(), rules_config(DAILY), FakeClock())
    batch = [*water(T0 + timedelta(hours=2), nh3n=0.4), *water(T0, nh3n=0.2), *water(T0 + timedelta(hours=1))]
    service.write(batch)
    service.write(water(T0 + timedelta(minutes=30), nh3n=0.25))  # late: stored, latest unchanged
    service.close()
    samples = _rows(tmp_path / "alerts.db", "samples")
    assert len(samples) == 16
    latest = {row[1]: row[2:5] for row in _rows(tmp_path / "alerts.db", "latest")}
    assert latest["nh3n"] == (to_ns(T0 + timedelta(hours=2)), 0.4, "N")
    assert len(latest) == 4


def test_a_restart_loads_only_the_samples_the_windows_keep(tmp_path: Path) -> None:
    """Samples older than the windows' retention stay in the database but not in memory."""
    clock = FakeClock()
    config = rules_config(DAILY, allowed_lateness="PT1H")
    first = make_service(tmp_path, one_station_registry(), config, clock)
    for hour in range(0, 48, 2):
        first.write(water(T0 + timedelta(hours=hour), nh3n=0.3 + hour / 100))
    kept = {code: series.between(0, 2**62) for code, series in first.engine.windows["st-1"].series.items()}
    first.close()
    second = make_service(tmp_path, one_station_registry(), config, clock)
    reloaded = {
        code: series.between(0, 2**62) for code, series in second.engine.windows["st-1"].series.items()
    }
    assert reloaded == kept
    assert 0 < len(kept["nh3n"]) < 24  # retention (P1D + PT1H) left out the first day
    assert len(_rows(tmp_path / "alerts.db", "samples")) == 4 * 24
