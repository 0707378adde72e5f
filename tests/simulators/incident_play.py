"""Play a scenario's messages through decoding, validation and the incident tracker, in event time.

The simulator's JSON messages go through the daemon's processing core (`MessageProcessor`: topic
routing, the ecowatch JSON decoder, `Validator`), as tests/alerts/test_scenarios.py plays them;
each valid reading of an item with an upper limit is fed to an `IncidentTracker` on the demo
registry's network with the stations' simulated report intervals (the registry the daemon would
load), with the limit of the station's target class (alerts/incidents/limits.py). Before a station
joins an incident, the forecast arrival the incident then had for it is kept, to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from alerts.incidents.config import IncidentConfig
from alerts.incidents.limits import counts, upper_limit
from alerts.incidents.model import Incident
from alerts.incidents.tracker import IncidentTracker
from config.parameters import default_catalogue
from config.registry import Registry
from config.standards import default_standard
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.model import Message
from ingest.processor import MessageProcessor, Route
from ingest.topics import TopicTemplate
from ingest.validate import ValidationConfig, Validator
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario
from simulators.simulator import Simulator
from tests.helpers import DEMO_REGISTRY

# A fixed summer start, far from any date a test runs on; nothing compares it to now.
START = datetime(2026, 7, 1, tzinfo=UTC)
_NS = 1_000_000_000


@dataclass
class Played:
    """What a run of a scenario left: the tracker, and forecast arrivals seen before each join."""

    scenario: Scenario
    tracker: IncidentTracker
    registry: Registry
    # (incident id, station id) -> the forecast ETA (ns) of the station before it joined the incident.
    eta_before_join: dict[tuple[str, str], int] = field(default_factory=dict)

    def incidents(self) -> list[Incident]:
        """Every incident, open or closed, by opening time."""
        return sorted(self.tracker.incidents(), key=lambda i: (i.opened_ns, i.id))


def play(name: str, length: timedelta, *, seed: int = 7) -> Played:
    """Run `simulators/scenarios/{name}.yaml` for `length` from START through the tracker."""
    scenario = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    demo = Registry.load(DEMO_REGISTRY)
    simulator = Simulator(demo, scenario, seed=seed)
    assert demo.network is not None
    registry = Registry(simulator.registry_stations(), demo.network.spec)
    assert registry.network is not None
    tracker = IncidentTracker(registry.network, IncidentConfig())
    played = Played(scenario, tracker, registry)
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
    standard = default_standard()
    limits: dict[tuple[str, str], float | None] = {}
    for message in simulator.iter_messages(START, START + length):
        received_ns = int(message.sim_time.timestamp()) * _NS
        result = processor.process(Message(message.topic, message.payload, received_ns), received_ns)
        for reading in result.readings:
            key = (reading.station_id, reading.parameter)
            if key not in limits:
                limits[key] = upper_limit(standard, registry[reading.station_id], reading.parameter)
            limit = limits[key]
            if limit is None or not counts(reading.flag.value, reading.value, limit):
                continue
            _remember_forecasts(played, reading.station_id, reading.parameter)
            tracker.observe(reading.station_id, reading.parameter, reading.time_ns, reading.value, limit)
    tracker.tick(int((START + length).timestamp()) * _NS)
    return played


def _remember_forecasts(played: Played, station_id: str, item: str) -> None:
    """Before a reading is fed: the forecast ETA each open incident of `item` has for the station."""
    for incident in played.tracker.incidents(include_closed=False):
        if incident.item != item or station_id in incident.stations:
            continue
        for point in incident.forecast:
            if point.point_id == station_id:
                played.eta_before_join[(incident.id, station_id)] = point.eta_ns


def since_start(time_ns: int) -> timedelta:
    """A tracker time as an offset from START."""
    return timedelta(microseconds=(time_ns - int(START.timestamp()) * _NS) // 1000)
