"""The simulator's message stream: determinism, formats, scenario events, bad payloads, backfill counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

import orjson
import pytest

from config.registry import Registry, Station
from config.standards import default_standard
from ingest.decoders import DECODERS
from ingest.errors import RejectedPayload
from simulators.effects import haversine_m
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario
from simulators.signals import HYDRO_CODES, WATER_CODES
from simulators.simulator import SimMessage, Simulator
from tests.simulators.support import T0, CollectingPublisher, flags_of, readings_of


def _run(
    stations: list[Station], scenario: Scenario | str | None, hours: float, *, seed: int = 0, **kwargs: object
) -> list[SimMessage]:
    if isinstance(scenario, str):
        scenario = load_scenario(SCENARIO_DIR / f"{scenario}.yaml")
    simulator = Simulator(stations, scenario, seed=seed, **kwargs)  # type: ignore[arg-type]
    return list(simulator.iter_messages(T0, T0 + timedelta(hours=hours)))


def _series(messages: list[SimMessage], station_id: str, code: str) -> list[tuple[float, float]]:
    """(hours since T0, value) of one code at one station, from normal messages."""
    return [
        ((m.sim_time - T0).total_seconds() / 3600, readings_of(m)[code])
        for m in messages
        if m.station_id == station_id and m.anomaly is None and code in readings_of(m)
    ]


def test_the_same_seed_gives_the_same_bytes(demo_stations: list[Station]) -> None:
    """Two runs with one seed send identical messages byte for byte; another seed sends others."""
    first = _run(demo_stations, "bad-payloads", 1, seed=11)
    again = _run(demo_stations, "bad-payloads", 1, seed=11)
    other = _run(demo_stations, "bad-payloads", 1, seed=12)
    assert first == again
    assert [m.payload for m in first] != [m.payload for m in other]


def test_messages_go_to_kind_topics_and_decode_cleanly(demo_registry: Registry) -> None:
    """Water codes go to .../water, hydrology to .../hydro, and the JSON decoder reads every one."""
    decoder = DECODERS["json"]()
    messages = _run(list(demo_registry.values()), None, 1, report_interval=timedelta(minutes=10))
    assert messages
    for message in messages:
        station = demo_registry[message.station_id]
        prefix = f"ecowatch/v1/{station.district}/{station.id}/"
        kind = message.topic.removeprefix(prefix)
        assert kind in ("water", "hydro")
        assert set(readings_of(message)) == set(WATER_CODES if kind == "water" else HYDRO_CODES)
        decoded = decoder.decode(message.topic, message.payload)
        assert not decoded.rejections
        assert all(r.station_id == station.id for r in decoded.readings)
        assert decoded.readings[0].ts == message.sim_time


@pytest.mark.parametrize("fmt", ["senml", "hj212"])
def test_other_formats_carry_the_same_values(demo_stations: list[Station], fmt: str) -> None:
    """SenML and HJ 212 messages decode to the values the JSON messages carry."""
    as_json = _run(demo_stations, None, 0.5, report_interval=timedelta(minutes=10))
    other = _run(demo_stations, None, 0.5, report_interval=timedelta(minutes=10), format=fmt)
    expected = {(m.station_id, m.sim_time, code): v for m in as_json for code, v in readings_of(m).items()}
    decoder = DECODERS[fmt]()
    seen = 0
    for message in other:
        decoded = decoder.decode(message.topic, message.payload)
        assert not decoded.rejections
        for reading in decoded.readings:
            station_id = reading.station_id or next(s.id for s in demo_stations if s.mn == reading.mn)
            assert expected[(station_id, message.sim_time, reading.parameter)] == pytest.approx(reading.value)
            seen += 1
    water_only = sum(1 for key in expected if key[2] in WATER_CODES)
    assert seen == (len(expected) if fmt == "senml" else water_only)


def test_a_spill_reaches_downstream_stations_later_and_diluted(demo_stations: list[Station]) -> None:
    """The slug arrives at each station after distance / speed, and each peak is lower than the last."""
    path = sorted((s for s in demo_stations if s.river == "长江" and "water" in s.kinds), key=lambda s: s.lon)
    messages = _run(path, "pollution", 5 * 24, report_interval=timedelta(minutes=10))
    scenario = load_scenario(SCENARIO_DIR / "pollution.yaml")
    arrivals, peaks = [], []
    for station in path:
        series = _series(messages, station.id, "nh3n")
        baseline = series[0][1]
        arrivals.append(next(h for h, v in series if v > baseline + 0.1))
        peaks.append(max(v for _, v in series) - baseline)
    assert arrivals == sorted(arrivals)
    assert len(set(arrivals)) == len(arrivals)
    assert peaks == sorted(peaks, reverse=True)
    assert peaks[0] == pytest.approx(3.0, abs=0.1)
    assert peaks[1] == pytest.approx(3.0 * 0.6, abs=0.1)
    leg_hours = haversine_m(path[0], path[1]) / scenario.events[0].velocity_m_s / 3600  # type: ignore[union-attr]
    assert arrivals[1] - arrivals[0] == pytest.approx(leg_hours, abs=0.5)


def test_a_storm_raises_the_level_past_the_warning_level(demo_registry: Registry) -> None:
    """Under six hours of heavy rain gauges rise above their warning level, and turbidity with them."""
    messages = _run(list(demo_registry.values()), "storm", 24)
    for station_id in ("cq-hy-cuntan", "cq-cj-zhutuo"):
        warning = demo_registry[station_id].warning_level
        assert warning is not None
        levels = _series(messages, station_id, "level")
        assert all(v < warning for h, v in levels if h < 1)
        assert any(v > warning for h, v in levels if h < 7)
    turbidity = _series(messages, "cq-cj-zhutuo", "turb")
    assert max(v for h, v in turbidity if 1 < h < 8) > 3 * turbidity[0][1]


def test_sensor_faults_show_in_values_and_flags(demo_stations: list[Station]) -> None:
    """Drift grows, a stuck sensor repeats itself, and maintenance, calibration and fault flags appear."""
    messages = _run(demo_stations, "faults", 4, report_interval=timedelta(minutes=5))
    water = [m for m in messages if m.topic.endswith("/water")]

    def flags(station_id: str, lo: float, hi: float) -> set[tuple[str, str]]:
        return {
            (code, flag)
            for m in water
            if m.station_id == station_id and lo <= (m.sim_time - T0).total_seconds() / 3600 < hi
            for code, flag in flags_of(m).items()
        }

    assert flags("cq-qj-datong", 1, 2) == {(code, "M") for code in WATER_CODES}
    assert flags("cq-qj-datong", 2, 4) == {(code, "N") for code in WATER_CODES}
    assert ("ph", "C") in flags("cq-ap-lianghe", 2, 2.5)
    assert flags("cq-ap-lianghe", 2, 2.5) - {("ph", "C")} == {
        (code, "N") for code in WATER_CODES if code != "ph"
    }
    assert flags("cq-ys-lieye", 3, 4) == {("do", "D")} | {(code, "N") for code in WATER_CODES if code != "do"}

    drift = dict(_series(messages, "cq-fj-yuxi", "nh3n"))
    assert drift[3.5] - drift[0.5] == pytest.approx(0.2 * 3, abs=0.1)
    for code in ("ph", "do"):
        stuck = [v for h, v in _series(messages, "cq-qj-wucha", code) if 1 <= h < 3]
        free = [v for h, v in _series(messages, "cq-qj-wucha", code) if h < 1 or h >= 3]
        assert len(set(stuck)) == 1
        assert len(stuck) == 24
        assert len(set(free)) > 1


def test_a_silent_station_sends_nothing_and_a_skewed_clock_shifts_timestamps(
    demo_stations: list[Station],
) -> None:
    """Silence removes a station's messages for its duration; clock skew moves the sent timestamps."""
    messages = _run(demo_stations, "faults", 4, report_interval=timedelta(minutes=5))
    silent_hours = [
        (m.sim_time - T0).total_seconds() / 3600 for m in messages if m.station_id == "cq-dn-longmen"
    ]
    assert not [h for h in silent_hours if 1 <= h < 3]
    assert min(silent_hours) == 0
    assert max(silent_hours) > 3
    for station_id, offset in (("cq-xj-kucaotuo", timedelta(hours=2)), ("cq-yl-yaotan", -timedelta(days=1))):
        for message in (m for m in messages if m.station_id == station_id):
            sent = datetime.fromisoformat(orjson.loads(message.payload)["ts"])
            skewed = timedelta(hours=2) <= message.sim_time - T0 < timedelta(hours=3)
            assert sent - message.sim_time == (offset if skewed else timedelta(0))


def test_bad_payloads_come_at_the_chosen_rate_in_every_kind(demo_stations: list[Station]) -> None:
    """About 5 % of messages are spoiled, evenly over the kinds, and each kind is what it says."""
    messages = _run(demo_stations, "bad-payloads", 6)
    kinds = Counter(m.anomaly for m in messages)
    spoiled = sum(n for kind, n in kinds.items() if kind is not None)
    # The second copy of a duplicate carries the mark; the first is the genuine message.
    assert spoiled / (len(messages) - kinds["duplicate"]) == pytest.approx(0.05, rel=0.15)
    for kind in ("malformed", "oversized", "duplicate", "out_of_order"):
        assert kinds[kind] / spoiled == pytest.approx(0.25, abs=0.06)
    oversized = next(m for m in messages if m.anomaly == "oversized")
    batch = orjson.loads(oversized.payload)  # valid JSON, merely too large
    assert len(batch) > 1000
    assert all(document == batch[0] for document in batch)
    decoder = DECODERS["json"]()
    latest: dict[str, datetime] = {}
    for index, message in enumerate(messages):
        if message.anomaly == "out_of_order":
            assert message.sim_time < latest[message.topic]
        elif message.anomaly != "duplicate":
            assert message.topic not in latest or message.sim_time > latest[message.topic]
            latest[message.topic] = message.sim_time
        if message.anomaly == "malformed":
            with pytest.raises(RejectedPayload):
                decoder.decode(message.topic, message.payload)
            continue
        if message.anomaly == "oversized":
            assert len(message.payload) >= 1024 * 1024 + 1
            assert message.payload.startswith(b'[{"station_id":')
            assert message.payload.endswith(b"}}]")
            continue
        if message.anomaly == "duplicate":
            assert message[:2] == messages[index - 1][:2]
        assert not decoder.decode(message.topic, message.payload).rejections


def test_a_week_of_backfill_yields_exactly_the_expected_messages(demo_registry: Registry) -> None:
    """Backfilling a week sends each station's reports on its own interval, one message per kind."""
    stations = [demo_registry[i] for i in ("cq-cj-zhutuo", "cq-cj-fengshouba", "cq-hy-cuntan")]
    simulator = Simulator(stations, seed=1)
    publisher = CollectingPublisher()
    summary = simulator.run_backfill(publisher, T0, T0 + timedelta(days=7), progress=False)
    per_week_4h, per_week_5min = 7 * 6, 7 * 24 * 12
    assert simulator.report_count(T0, T0 + timedelta(days=7)) == 2 * per_week_4h + per_week_5min
    expected = 2 * per_week_4h + per_week_4h + per_week_5min  # zhutuo sends water and hydro
    assert (summary.generated, summary.sent, summary.failed) == (expected, expected, 0)
    assert len(publisher.messages) == expected
    topics = Counter(topic.rsplit("/", 2)[1] for topic, _ in publisher.messages)
    assert topics == {
        "cq-cj-zhutuo": 2 * per_week_4h,
        "cq-cj-fengshouba": per_week_4h,
        "cq-hy-cuntan": per_week_5min,
    }


def test_the_demo_drops_a_station_out_of_class_and_back_within_minutes(demo_registry: Registry) -> None:
    """At real time with 15 s reports, the demo shows a spill passing and its recovery, a silent
    station, a communication fault and a bad payload within ten minutes."""
    messages = _run(list(demo_registry.values()), "demo", 10 / 60)
    limit = default_standard().items["nh3n"].limits_for("river")
    assert limit is not None
    class_ii = limit[1]
    for station_id, (drop_by, back_by) in {"cq-jl-jinzi": (2, 5), "cq-jl-daxigou": (4.5, 9)}.items():
        series = [(h * 60, v) for h, v in _series(messages, station_id, "nh3n")]
        over = [minute for minute, v in series if v > class_ii]
        assert over
        assert over[0] <= drop_by
        assert over[-1] < back_by
        assert all(v <= class_ii for minute, v in series if minute > back_by)
    wanmu = [(m.sim_time - T0).total_seconds() for m in messages if m.station_id == "cq-wj-wanmu"]
    assert wanmu
    assert max(wanmu) < 30
    link_down = {
        (m.sim_time - T0).total_seconds() // 60
        for m in messages
        if m.station_id == "cq-wj-wulong" and "B" in flags_of(m).values()
    }
    assert link_down == {2, 3, 4}
    assert any(m.anomaly for m in messages)


def test_the_daemon_registry_carries_the_simulated_intervals(demo_stations: list[Station]) -> None:
    """`registry_stations` hands the daemon the intervals the scenario uses, for its silence rule."""
    simulator = Simulator(demo_stations, load_scenario(SCENARIO_DIR / "demo.yaml"))
    assert {s.report_interval_s for s in simulator.registry_stations()} == {15}
    assert [s.id for s in simulator.registry_stations()] == [s.id for s in demo_stations]


def test_a_scenario_station_list_limits_the_run(demo_stations: list[Station]) -> None:
    """A scenario's `stations` simulates only those stations."""
    scenario = Scenario.model_validate({"name": "two", "stations": ["cq-cj-cuntan", "cq-wj-wulong"]})
    messages = _run(demo_stations, scenario, 12)
    per_station: defaultdict[str, int] = defaultdict(int)
    for message in messages:
        per_station[message.station_id] += 1
    assert per_station == {"cq-cj-cuntan": 6, "cq-wj-wulong": 6}
