"""Load mode: many stations at a target message rate, for capacity tests and benchmarks.

Each message carries eight water-quality parameters (`LOAD_CODES`) of one station, stations taken
in turn. Beyond the 32 demo stations the ids are synthetic (`sim-00001`...), which the daemon
rejects as unknown unless its registry lists them: `synthetic_registry(n)` builds such a registry
and `write_registry` saves it for the daemon (`ecowatch simulate --load --stations N
--write-registry FILE`). `run_load` paces messages to a rate and reports the rate achieved;
`pregenerate` builds messages up front so a benchmark measures the receiver, not the generator.

Usage:
    stations = synthetic_registry(1000)
    write_registry(stations, Path("var/load-registry.yaml"))
    summary = run_load(publisher, stations, rate=5000, count=100_000)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import yaml

from config.network import NetworkSpec
from config.registry import Station, WaterClass
from simulators.formats import make_format
from simulators.publish import Publisher
from simulators.runner import RunSummary, finish, progress_bar
from simulators.signals import StationSignals

LOAD_CODES: Final = ("ph", "temp", "do", "cond", "turb", "codmn", "nh3n", "tp")
# Synthetic stations sit on a grid around Chongqing, a few km apart, ten to a river running east.
_ORIGIN_LAT, _ORIGIN_LON, _STEP_DEG = 29.5, 106.5, 0.02
_PER_RIVER = 10
# Sleeping for less than this costs more in timer slack than it buys in pacing.
_MIN_SLEEP_S = 0.001


def synthetic_registry(n: int, *, report_interval_s: int = 60, prefix: str = "sim") -> list[Station]:
    """`n` made-up water-quality stations with ids `{prefix}-00001`..., MNs `99000000000001`..."""
    if n < 1:
        raise ValueError("n must be at least 1")
    width = max(5, len(str(n)))
    stations = []
    for i in range(1, n + 1):
        river, position = divmod(i - 1, _PER_RIVER)
        stations.append(
            Station(
                id=f"{prefix}-{i:0{width}d}",
                name=f"synthetic station {i}",
                river=f"{prefix}-river-{river + 1}",
                basin=f"{prefix}-basin",
                district=f"{prefix}-district-{river % 10 + 1}",
                water_body="river",
                target_class=WaterClass.II if i % 2 else WaterClass.III,
                lat=round(_ORIGIN_LAT + _STEP_DEG * (river % 100), 4),
                lon=round(_ORIGIN_LON + _STEP_DEG * position + _STEP_DEG * _PER_RIVER * (river // 100), 4),
                mn=f"99{i:012d}",
                kinds=("water",),
                report_interval_s=report_interval_s,
            )
        )
    return stations


def write_registry(
    stations: Sequence[Station],
    path: Path,
    *,
    note: str = "Synthetic stations for load tests.",
    network: NetworkSpec | None = None,
) -> None:
    """Save stations (and the river network, if any) as a registry file that `Registry.load` reads back."""
    document: dict[str, object] = {
        "note": note,
        "stations": [
            s.model_dump(mode="json", exclude_none=True, exclude={"hj212_password"}) for s in stations
        ],
    }
    if network is not None:
        document["network"] = network.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")


class _LoadSource:
    """Messages of stations in turn; each station's values are sampled once per second and reused."""

    def __init__(self, stations: Sequence[Station], seed: int, format: str) -> None:
        self._stations = list(stations)
        self._signals = [StationSignals(s, seed) for s in self._stations]
        self._cache: list[tuple[int, dict[str, tuple[float, str]]]] = [(-1, {})] * len(self._stations)
        self._format = make_format(format)

    def message(self, index: int, ts: datetime) -> list[tuple[str, bytes]]:
        slot = index % len(self._stations)
        second = int(ts.timestamp())
        cached_second, readings = self._cache[slot]
        if cached_second != second:
            values = self._signals[slot].sample(ts)
            readings = {code: (values[code], "N") for code in LOAD_CODES}
            self._cache[slot] = (second, readings)
        return self._format.encode(self._stations[slot], ts, readings)


def pregenerate(
    n_messages: int,
    stations: Sequence[Station] | None = None,
    *,
    seed: int = 0,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    format: str = "json",
) -> list[tuple[str, bytes]]:
    """`n_messages` (topic, payload) pairs: stations in turn, each round `step` later than the last."""
    chosen = list(stations) if stations is not None else synthetic_registry(100)
    first = start or datetime(2026, 1, 1, tzinfo=UTC)
    source = _LoadSource(chosen, seed, format)
    out: list[tuple[str, bytes]] = []
    index = 0
    while len(out) < n_messages:
        out.extend(source.message(index, first + step * (index // len(chosen))))
        index += 1
    return out[:n_messages]


def run_load(
    publisher: Publisher,
    stations: Sequence[Station],
    *,
    rate: float,
    count: int | None = None,
    duration: timedelta | None = None,
    stop: threading.Event | None = None,
    seed: int = 0,
    format: str = "json",
    progress: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Publish at `rate` msg/s, timestamped now, until `count` messages, `duration` or `stop`."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    stop = stop or threading.Event()
    source = _LoadSource(stations, seed, format)
    limit = count if count is not None else math.inf
    began, sent_before = clock(), publisher.sent
    deadline = began + duration.total_seconds() if duration is not None else math.inf
    generated = index = 0
    with progress_bar(count, enabled=progress) as bar:
        while generated < limit and not stop.is_set():
            due = began + generated / rate
            now = clock()
            if now >= deadline:
                break
            if due - now > _MIN_SLEEP_S and stop.wait(due - now):
                break
            for topic, payload in source.message(index, datetime.now(UTC)):
                publisher.publish(topic, payload)
                generated += 1
            index += 1
            bar.update()
    return finish(publisher, generated, began, sent_before, clock)
