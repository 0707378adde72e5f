"""Incidents inside the alert engine: readings in through `AlertService`, one thread of events per
incident out, addressed to whoever the network names, stored with the engine's state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerts.config import AlertsConfig
from alerts.events import AlertEvent
from alerts.routing import Router
from alerts.service import AlertService
from config.network import NetworkSpec
from config.registry import Registry
from ingest.model import DataFlag, Reading
from tests.alerts.engine_support import FakeClock, events
from tests.alerts.incidents.incident_network import POSITIONS, SPEC, Spill, readings
from tests.alerts.incidents.incident_network import network as small_network
from tests.helpers import station

H_NS = 3600 * 10**9
# Only the incident thread here: no water-quality or data rules to tell apart in the events.
CONFIG = AlertsConfig.model_validate({"rules": []})


def _registry() -> Registry:
    spec = NetworkSpec.model_validate(
        {
            **SPEC.model_dump(mode="json", exclude_none=True),
            "duties": [
                {"river": "Main", "from_km": 0, "to_km": 100, "district": "D-M2", "river_chief": "Main upper chief",
                 "receivers": ["chief-main-upper"]},
                {"river": "Main", "from_km": 100, "to_km": 200, "district": "D-M3", "river_chief": "Main lower chief",
                 "receivers": ["chief-main-lower"]},
            ],
        }
    )  # fmt: skip
    return Registry(
        [
            station(sid, river=river, chainage_km=km, report_interval_s=3600, district=f"D-{sid}")
            for sid, (river, km) in POSITIONS.items()
        ],
        spec,
    )


def _service(path: Path, registry: Registry, clock: FakeClock) -> AlertService:
    return AlertService(CONFIG, registry, path / "alerts.db", clock=clock)


def _batches(spills: list[Spill], hours: int) -> list[list[Reading]]:
    """The hourly readings of every station, one batch per hour."""
    out: dict[int, list[Reading]] = {}
    for sid, item, time_ns, value, _limit in readings(small_network(), spills, hours):
        out.setdefault(time_ns, []).append(
            Reading(sid, "water_quality", item, value, "mg/L", time_ns, DataFlag.NORMAL)
        )
    return [out[t] for t in sorted(out)]


def _threads(written: list[AlertEvent]) -> dict[str, list[str]]:
    threads: dict[str, list[str]] = {}
    for event in written:
        if event.kind == "incident":
            threads.setdefault(event.alert_id, []).append(event.annotations["change"])
    return threads


def test_a_spill_moving_down_the_main_stem_is_one_thread_opened_then_confirmed(tmp_path: Path) -> None:
    """A release above M2 is seen at M2, then M3 and M4 as the water carries it: one incident, its
    thread opened once and confirmed at each further section, keyed <incident id>:<n>, addressed to
    the origin reach's chief and everyone downstream (the intake operator included)."""
    registry = _registry()
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    service = _service(tmp_path, registry, clock)
    try:
        for batch in _batches([Spill("Main", 50.0, 2.0, hours=4.0)], 30):
            clock.now = datetime.fromtimestamp(batch[0].time_ns / 1e9, UTC)
            service.write(batch)
        written = events(service)
    finally:
        service.close()
    threads = _threads(written)
    assert len(threads) == 1
    (incident_id, changes) = next(iter(threads.items()))
    assert changes[0] == "opened"
    assert changes.count("opened") == 1
    assert changes.count("confirmed") == 2  # M3, then M4
    keys = [e.key for e in written if e.alert_id == incident_id]
    assert keys == [f"{incident_id}:{n}" for n in range(1, len(keys) + 1)]
    opened = next(e for e in written if e.alert_id == incident_id)
    assert opened.labels["kind"] == "incident"
    assert opened.parameter == "nh3n"
    assert opened.station is not None
    assert opened.station.id == "M2"
    assert "chief-main-upper" in opened.receivers
    assert "intake-op" in opened.receivers  # the intake below M2 must hear of it
    assert "预计到达" in opened.annotations["description"]
    confirmed = [e for e in written if e.alert_id == incident_id and e.annotations["change"] == "confirmed"]
    assert {e.severity for e in confirmed} == {"critical"}
    # The router adds the named receivers that are configured, beside its own choice.
    router = Router([], ["duty-room", "intake-op"], default_receivers=["duty-room"])
    assert router.receivers_for(opened) == ["duty-room", "intake-op"]


def test_two_unrelated_spills_are_two_threads_and_a_replay_adds_nothing(tmp_path: Path) -> None:
    """Spills on Main and on Other (its own outlet) at the same hour are two incidents; writing every
    batch again (a replay of the readings log) writes no event twice."""
    registry = _registry()
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    service = _service(tmp_path, registry, clock)
    batches = _batches([Spill("Main", 50.0, 2.0), Spill("Other", 10.0, 2.0)], 20)
    try:
        for batch in batches:
            service.write(batch)
        first = events(service)
        for batch in batches:
            service.write(batch)
        again = events(service)
    finally:
        service.close()
    threads = _threads(first)
    assert len(threads) == 2
    assert all(changes[0] == "opened" for changes in threads.values())
    assert [e.key for e in again] == [e.key for e in first]


def test_the_incident_survives_a_restart_and_carries_on(tmp_path: Path) -> None:
    """Half the spill, a new service on the same database, the rest: the same thread continues
    (confirmed downstream, no second `opened`), as without the restart."""
    registry = _registry()
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    batches = _batches([Spill("Main", 50.0, 2.0, hours=4.0)], 30)
    service = _service(tmp_path, registry, clock)
    try:
        for batch in batches[:8]:
            service.write(batch)
    finally:
        service.close()
    service = _service(tmp_path, registry, clock)
    try:
        for batch in batches[8:]:
            service.write(batch)
        written = events(service)
        api = service.api.incident_list(include_closed=True)
    finally:
        service.close()
    threads = _threads(written)
    assert len(threads) == 1
    changes = next(iter(threads.values()))
    assert (changes.count("opened"), changes.count("confirmed")) == (1, 2)
    assert [s["station_id"] for s in api[0]["stations"]] == ["M2", "M3", "M4"]
    assert api[0]["origin"]["downstream"] == "M2"


def test_without_a_network_there_are_no_incidents(tmp_path: Path) -> None:
    """A registry without `network:` leaves the engine as it was: no tracker, an empty list."""
    registry = Registry([station("st-1")])
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    service = _service(tmp_path, registry, clock)
    try:
        service.write([Reading("st-1", "water_quality", "nh3n", 9.0, "mg/L", 10**18, DataFlag.NORMAL)])
        assert service.engine.incidents is None
        assert service.api.incident_list() == []
    finally:
        service.close()


def test_forecasts_use_the_stations_own_velocity_readings(tmp_path: Path) -> None:
    """M2 reports a flow velocity of 20 km/h (twice the river's configured 10 km/h): the incident's
    forecast reaches M3, 60 km below, in 3 h rather than 6 h."""
    registry = _registry()
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    service = _service(tmp_path, registry, clock)
    t0 = 1_800_000_000 * 10**9
    try:
        service.write(
            [
                Reading("M2", "hydrology", "velocity", 20 / 3.6, "m/s", t0, DataFlag.NORMAL),
                Reading("M2", "water_quality", "nh3n", 4.0, "mg/L", t0, DataFlag.NORMAL),
            ]
        )
        (incident,) = service.api.incident_list()
    finally:
        service.close()
    eta = {f["point_id"]: datetime.fromisoformat(f["eta"]) for f in incident["forecast"]}
    opened = datetime.fromisoformat(incident["stations"][0]["first_exceeded_at"])
    assert (eta["M3"] - opened).total_seconds() == 3 * 3600
