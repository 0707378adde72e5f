"""Scenario files end to end through decode, validation and the engine with the default rules.

The simulator's messages go through the daemon's own processing core (`MessageProcessor`: topic
routing, the ecowatch JSON decoder, `Validator` with its clock-skew check), in event time, with a
fake clock that ticks the engine; bad payloads are rejected on the way as in the daemon. The alert
events must be what the scenario's `expect:` list says: each expected alert fires (and resolves)
in time, once, and no other alert of those rules fires — except a run's `unlisted` ones,
correct alerts the scenario files do not state yet (reported to their owner).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.config import AlertsConfig
from alerts.events import AlertEvent
from alerts.service import AlertService
from config.parameters import default_catalogue
from config.registry import Registry
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.model import Message, Reading
from ingest.processor import MessageProcessor, Route
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from simulators.scenario import SCENARIO_DIR, ExpectedAlert, load_scenario
from simulators.simulator import Simulator
from tests.alerts.engine_support import FakeClock, events
from tests.helpers import DEMO_REGISTRY

START = datetime(2026, 7, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    scenario: str
    length: timedelta
    tick: timedelta
    # (rule, station) alerts the engine rightly raises that the scenario file does not list.
    unlisted: frozenset[tuple[str, str]] = frozenset()


RUNS = [
    Run("demo", timedelta(minutes=10), timedelta(seconds=10)),
    Run("faults", timedelta(hours=5, minutes=30), timedelta(minutes=1)),
    Run("storm", timedelta(hours=6), timedelta(minutes=5)),
    Run("pollution", timedelta(hours=24), timedelta(minutes=10)),
]


def _play(run: Run, tmp_path: Path) -> list[AlertEvent]:
    scenario = load_scenario(SCENARIO_DIR / f"{run.scenario}.yaml")
    simulator = Simulator(Registry.load(DEMO_REGISTRY), scenario, seed=7)
    registry = Registry(simulator.registry_stations())  # the stations' simulated report intervals
    clock = FakeClock(START)
    service = AlertService(AlertsConfig(), registry, tmp_path / "alerts.db", clock=clock)
    processor = MessageProcessor(
        [
            Route(
                TopicTemplate.parse("ecowatch/v1/{district}/{station_id}/{kind}"),
                "json",
                EcowatchJsonDecoder(),
            )
        ],
        Validator(ValidationConfig(), registry, default_catalogue()),
        ValidationConfig().max_payload_bytes,
    )
    batch: list[Reading] = []
    next_tick = START + run.tick
    end = START + run.length

    def tick_until(moment: datetime) -> None:
        nonlocal next_tick
        while next_tick <= moment:
            clock.now = next_tick
            service.write(batch)
            batch.clear()
            service.tick(next_tick)
            next_tick += run.tick

    for message in simulator.iter_messages(START, end):
        tick_until(message.sim_time)
        received_ns = int(message.sim_time.timestamp()) * 1_000_000_000
        batch.extend(
            processor.process(Message(message.topic, message.payload, received_ns), received_ns).readings
        )
    tick_until(end)
    written = events(service)
    service.close()
    return written


def _concerns(event: AlertEvent, parameter: str | None) -> bool:
    """Whether the event is about the parameter: its own, a primary pollutant, or a flagged one."""
    if parameter is None or event.parameter == parameter:
        return True
    return event.parameter is None and (
        parameter in event.primary_pollutants
        or (event.kind in ("instrument_fault", "data_availability") and parameter in event.values)
    )


def _station(event: AlertEvent) -> str:
    return event.station.id if event.station is not None else ""


@pytest.mark.parametrize("run", RUNS, ids=[r.scenario for r in RUNS])
def test_scenario_produces_its_expected_alerts(run: Run, tmp_path: Path) -> None:
    """Each expected alert fires once within its time (and resolves in time); no other alert of those rules fires."""
    expect: list[ExpectedAlert] = load_scenario(SCENARIO_DIR / f"{run.scenario}.yaml").expect
    written = [e for e in _play(run, tmp_path) if not e.reminder]
    rules = {x.rule for x in expect}
    # Escalations and de-escalations are transitions of an alert that fired, never alerts of their own.
    changes = [e for e in written if "change" in e.annotations]
    firing = [e for e in written if e.status == "firing" and e.rule in rules and e not in changes]
    assert {e.alert_id for e in changes} <= {e.alert_id for e in firing}
    for x in expect:
        fired = [
            e for e in firing if e.rule == x.rule and _station(e) == x.station and _concerns(e, x.parameter)
        ]
        assert len(fired) == 1, (x, fired)
        assert fired[0].event_at - START <= x.within, (x, fired[0].event_at - START)
        if x.resolved_within is not None:
            resolved = [e for e in written if e.status == "resolved" and e.alert_id == fired[0].alert_id]
            assert len(resolved) == 1, x
            assert resolved[0].event_at - START <= x.resolved_within, (x, resolved[0].event_at - START)
    produced = {(e.rule, _station(e)) for e in firing}
    assert produced == {(x.rule, x.station) for x in expect} | run.unlisted
