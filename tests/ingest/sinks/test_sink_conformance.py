"""Conformance over the sink registry: every sink keeps the `Sink` contract against its real store.

Each registered sink is built from its own module's `Example:` block, with only the address
changed to a store of its kind that a fixture runs (a SQLite file, VictoriaMetrics for `influxdb`,
an InfluxDB 1.x with authentication for `influxdb1`), and its `${VAR}` secret set. Every sink must:
store each reading of a batch once however often the batch is written (the delivery loop replays
the write-ahead log after a crash); pass `check()` while its store is up; refuse a reading it can
never store with a non-retryable `SinkError` and go on writing; fail `write` and `check` with a
retryable `SinkError` while its store cannot be reached, quoting no secret; close, twice if need be.
A new sink in `ingest.sinks.SINKS` needs a `Target` here: where its store runs and how to count
what it holds.
"""

from __future__ import annotations

import importlib
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

import pytest
from pydantic import TypeAdapter

from config.loader import read_yaml
from ingest.errors import SinkError
from ingest.model import DataFlag, Reading
from ingest.sinks import SINKS, Sink, SinkConfig, make_sink
from tests.helpers import docstring_examples, wait_for
from tests.servers import InfluxDB1Server, VictoriaMetricsServer

pytestmark = pytest.mark.integration

SECRET: Final = "conformance-secret-5c1e9a3f7b"
PARAMETERS: Final = ("ph", "do")
STATIONS: Final = ("cq-cj-cuntan", "cq-jlj-beiwenquan")
MINUTE_NS: Final = 60_000_000_000
# A day ago, on a whole minute: inside every store's retention whatever today is, and in the whole
# milliseconds VictoriaMetrics keeps.
T0_NS: Final = (time.time_ns() // MINUTE_NS - 24 * 60) * MINUTE_NS
_CONFIG: Final[TypeAdapter[SinkConfig]] = TypeAdapter(SinkConfig)


def reading(station_id: str, parameter: str, minute: int, value: float = 7.5) -> Reading:
    return Reading(
        station_id=station_id,
        measurement="water_quality",
        parameter=parameter,
        value=value,
        unit="mg/L" if parameter == "do" else "",
        time_ns=T0_NS + minute * MINUTE_NS,
        flag=DataFlag.NORMAL,
        tags=(("basin", "长江"), ("district", "渝中区"), ("river", "嘉陵江"), ("station_id", station_id)),
    )


BATCH: Final = [reading(s, p, m, 7.0 + m / 10) for s in STATIONS for p in PARAMETERS for m in range(3)]


# --- the store of each kind of sink ----------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where one kind of sink stores in these tests, and how to count what it holds."""

    server: str | None  # the fixture that runs its server, if it has one
    # (server, temp dir, the Example's config) -> the keys that point the config at that store
    place: Callable[[Any, Path, dict[str, Any]], dict[str, Any]]
    # (temp dir, a closed port) -> the keys of a store that cannot be reached
    unreachable: Callable[[Path, int], dict[str, Any]]
    # (server, the config) -> how many values of PARAMETERS the store holds
    stored: Callable[[Any, dict[str, Any]], int]


def _sqlite_count(_server: None, config: dict[str, Any]) -> int:
    with closing(sqlite3.connect(config["path"])) as connection:
        query = "SELECT COUNT(*) FROM readings WHERE parameter IN (?, ?)"
        return int(connection.execute(query, PARAMETERS).fetchone()[0])


def _unusable_path(tmp_path: Path, _port: int) -> dict[str, Any]:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")  # a file where the database's folder should be
    return {"path": str(blocker / "readings.db")}


def _victoria_count(server: VictoriaMetricsServer, _config: dict[str, Any]) -> int:
    selector = f'{{__name__=~"water_quality_({"|".join(PARAMETERS)})"}}'
    return sum(len(series["timestamps"]) for series in server.export(selector, min_series=0))


def _influx1_place(server: InfluxDB1Server, _tmp: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The Example's database, and its user allowed to write there with the Example's password."""
    server.create_database(config["database"])
    server.create_user(config["username"], config["password"], write_on=config["database"])
    return {"url": server.url}


def _influx1_count(server: InfluxDB1Server, config: dict[str, Any]) -> int:
    points = server.points("water_quality", config["database"])
    return sum(point.get(parameter) is not None for point in points for parameter in PARAMETERS)


def _closed_port(_tmp: Path, port: int) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}"}


TARGETS: Final[dict[str, Target]] = {
    "sqlite": Target(
        None,
        place=lambda _server, tmp, _config: {"path": str(tmp / "var" / "readings.db")},
        unreachable=_unusable_path,
        stored=_sqlite_count,
    ),
    "influxdb": Target(
        "victoria_metrics",
        place=lambda server, _tmp, _config: {"url": server.url},
        unreachable=_closed_port,
        stored=_victoria_count,
    ),
    "influxdb1": Target(
        "influxdb1_auth", place=_influx1_place, unreachable=_closed_port, stored=_influx1_count
    ),
}
KINDS: Final = sorted(SINKS)


def example_config(kind: str, tmp_path: Path) -> dict[str, Any]:
    """The `sinks:` entry of `type: kind` in the Example of the sink's module, its ${VAR}s set to SECRET."""
    module = f"ingest.sinks.{kind}"
    blocks = docstring_examples(importlib.import_module(module).__doc__ or "")
    assert blocks, f"{module} has no Example: block"
    path = tmp_path / "example.yaml"
    text = blocks[0][1]
    path.write_text(text, encoding="utf-8")
    document = read_yaml(path, dict.fromkeys(re.findall(r"\$\{(\w+)", text), SECRET))
    entries = [entry for entry in document.get("sinks", []) if entry.get("type") == kind]
    assert len(entries) == 1, f"the Example of {kind} has no single `sinks:` entry of type {kind}"
    config: dict[str, Any] = entries[0]
    return config


@dataclass
class Store:
    """A running store of one kind and the config of a sink pointed at it."""

    kind: str
    target: Target
    server: Any
    config: dict[str, Any]

    def sink(self) -> Sink:
        return make_sink(_CONFIG.validate_python(self.config))

    def stored(self) -> int:
        return self.target.stored(self.server, self.config)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each registered sink's store, running, and its Example's config pointed at it."""
    kind: str = request.param
    target = TARGETS[kind]
    server = request.getfixturevalue(target.server) if target.server else None
    config = example_config(kind, tmp_path)
    config |= target.place(server, tmp_path, config)
    return Store(kind, target, server, config)


@pytest.fixture
def sink(store: Store) -> Iterator[Sink]:
    sink = store.sink()
    yield sink
    sink.close()


# --- the contract ---------------------------------------------------------------------------------
def test_every_registered_sink_has_a_target() -> None:
    """A new sink in the registry must be given its store here, so the contract is checked for it."""
    assert set(TARGETS) == set(SINKS)


@pytest.mark.parametrize("kind", KINDS)
def test_one_name_everywhere(kind: str) -> None:
    """Module, registry key, the sink's `name` and its config's `type` are one name (STYLE.md §1)."""
    sink_class = SINKS[kind]
    assert sink_class.name == kind
    assert sink_class.__module__.split(".")[:3] == ["ingest", "sinks", kind]  # a module, or a package
    [config_class] = [c for c in get_args(get_args(SinkConfig)[0]) if c.model_fields["type"].default == kind]
    assert config_class.__module__.split(".")[:3] == ["ingest", "sinks", kind]


@pytest.mark.parametrize("kind", KINDS)
def test_the_example_configures_that_sink(kind: str, tmp_path: Path) -> None:
    """The module's Example holds one `sinks:` entry of its type, which makes a sink of that class."""
    config = _CONFIG.validate_python(example_config(kind, tmp_path))
    sink = make_sink(config)
    try:
        assert type(sink) is SINKS[kind]
    finally:
        sink.close()


def test_a_batch_written_twice_is_stored_once(store: Store, sink: Sink) -> None:
    """Every reading arrives; writing the batch again (a replay) stores each reading once."""
    sink.write(BATCH)
    sink.write(BATCH)
    sink.write(list(reversed(BATCH)))

    wait_for(lambda: store.stored() >= len(BATCH), f"{len(BATCH)} values in {store.kind}", 30.0)
    assert store.stored() == len(BATCH)


def test_check_passes_while_the_store_is_up(store: Store, sink: Sink) -> None:
    """check() returns quietly against a running store with the configured credentials (gzip too)."""
    sink.check()
    sink.check()


def test_a_reading_it_can_never_store_is_refused_for_good(store: Store, sink: Sink) -> None:
    """A batch with a NaN value raises a non-retryable SinkError; the sink then goes on writing."""
    refused = reading(STATIONS[0], "ph", 0, math.nan)

    with pytest.raises(SinkError) as caught:
        sink.write([*BATCH[:2], refused])

    assert caught.value.retryable is False
    assert caught.value.reason == "rejected"
    sink.write(BATCH)
    wait_for(lambda: store.stored() >= len(BATCH), f"{len(BATCH)} values in {store.kind}", 30.0)
    assert store.stored() == len(BATCH)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", ["write", "check"])
def test_an_unreachable_store_is_a_retryable_error_without_secrets(
    kind: str, operation: str, tmp_path: Path, closed_port: int
) -> None:
    """With its store out of reach, write and check raise a retryable SinkError that quotes no secret."""
    config = example_config(kind, tmp_path) | TARGETS[kind].unreachable(tmp_path, closed_port)
    sink = make_sink(_CONFIG.validate_python(config))
    call = (lambda: sink.write(BATCH)) if operation == "write" else sink.check
    try:
        with pytest.raises(SinkError) as caught:
            call()
    finally:
        sink.close()

    assert caught.value.retryable is True
    for text in (str(caught.value), repr(caught.value), caught.value.detail):
        assert SECRET not in text


def test_close_after_use_and_again(sink: Sink) -> None:
    """close() after a write releases the sink; a second close() is harmless."""
    sink.write(BATCH)
    sink.close()
    sink.close()
