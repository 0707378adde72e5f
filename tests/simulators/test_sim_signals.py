"""Station signal models: physical relations, ranges, target-class levels, determinism."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from config.parameters import default_catalogue
from config.registry import Station
from config.standards import default_standard
from simulators.signals import RainEvent, StationSignals, do_saturation
from tests.simulators.support import T0


def _hourly(signals: StationSignals, hours: int, step_h: int = 1) -> list[dict[str, float]]:
    return [signals.sample(T0 + timedelta(hours=h)) for h in range(0, hours, step_h)]


@pytest.mark.parametrize(("temp", "expected"), [(0.0, 14.621), (10.0, 11.288), (20.0, 9.092), (30.0, 7.559)])
def test_do_saturation_matches_the_apha_table(temp: float, expected: float) -> None:
    """The saturation formula reproduces APHA 4500-O's table for fresh water at 1 atm."""
    assert do_saturation(temp) == pytest.approx(expected, abs=0.002)


def test_do_follows_temperature_saturation(demo_stations: list[Station]) -> None:
    """DO stays within a few percent of saturation at the water's temperature, so it falls as water warms."""
    for station in (s for s in demo_stations if "water" in s.kinds):
        for values in _hourly(StationSignals(station, seed=1), 72):
            assert values["do"] / do_saturation(values["temp"]) == pytest.approx(1.0, abs=0.06), station.id
    warm = StationSignals(demo_stations[0], seed=1).sample(T0)
    cold = StationSignals(demo_stations[0], seed=1).sample(T0 - timedelta(days=160))
    assert warm["temp"] > cold["temp"] + 10
    assert warm["do"] < cold["do"] - 2


def test_flow_rises_with_level_along_the_rating_curve(demo_stations: list[Station]) -> None:
    """Flow is Q = a (h - h0)^b of the level, so it rises monotonically with it through a storm."""
    station = next(s for s in demo_stations if s.id == "cq-hy-cuntan")
    storm = RainEvent((T0 + timedelta(hours=2)).timestamp(), 6 * 3600, 40.0)
    signals = StationSignals(station, seed=2, storms=[storm])
    samples = _hourly(signals, 72)
    for values in samples:
        assert values["flow"] == pytest.approx(signals.rating.flow(values["level"]), rel=1e-3)
    by_level = sorted(samples, key=lambda v: v["level"])
    flows = [v["flow"] for v in by_level]
    assert flows == sorted(flows)
    assert by_level[-1]["level"] - by_level[0]["level"] > 3.0
    velocities = [v["velocity"] for v in by_level]
    assert velocities[-1] > velocities[0]


def test_quiet_stations_stay_in_range_and_meet_their_target_class(demo_stations: list[Station]) -> None:
    """Over a year without events every value is physically plausible and meets the station's target class."""
    catalogue = default_catalogue()
    standard = default_standard()
    for station in demo_stations:
        signals = StationSignals(station, seed=3)
        target = standard.classes.index(station.target_class)
        for values in _hourly(signals, 365 * 24, step_h=13):
            for code, value in values.items():
                assert catalogue[code].in_range(value), (station.id, code, value)
                item = standard.items.get(code)
                if item is None or item.kind == "none":
                    continue
                if item.kind == "range":
                    assert item.low is not None
                    assert item.high is not None
                    assert item.low <= value <= item.high, (station.id, code, value)
                    continue
                limits = item.limits_for(station.water_body)
                assert limits is not None
                limit = limits[target]
                ok = value <= limit if item.kind == "max" else value >= limit
                assert ok, (station.id, code, value, limit)
            if "ph" in values:
                assert 7.2 <= values["ph"] <= 8.4


def test_pollutants_sit_at_a_fraction_of_the_target_limit(demo_stations: list[Station]) -> None:
    """A class III station carries more NH3-N than a class II one: levels scale with the target limit."""
    second = next(s for s in demo_stations if s.target_class == "II" and s.water_body == "river")
    third = next(s for s in demo_stations if s.target_class == "III" and s.water_body == "river")
    nh3n_ii = [v["nh3n"] for v in _hourly(StationSignals(second, seed=4), 48)]
    nh3n_iii = [v["nh3n"] for v in _hourly(StationSignals(third, seed=4), 48)]
    assert min(nh3n_ii) > 0.15
    assert max(nh3n_ii) < 0.5
    assert min(nh3n_iii) > 0.35
    assert max(nh3n_iii) < 1.0


def test_a_sample_depends_only_on_seed_station_and_time(demo_stations: list[Station]) -> None:
    """Sampling in any order, or from a fresh model, gives the same values; another seed gives others."""
    station = demo_stations[0]
    times = [T0 + timedelta(minutes=7 * i) for i in range(200)]
    forward = [StationSignals(station, seed=5).sample(t) for t in times]
    model = StationSignals(station, seed=5)
    backward = [model.sample(t) for t in reversed(times)]
    assert forward == list(reversed(backward))
    other = [StationSignals(station, seed=6).sample(t) for t in times]
    assert other != forward


def test_water_is_warmest_in_the_afternoon(demo_stations: list[Station]) -> None:
    """The daily temperature cycle peaks in the station's local afternoon, not at UTC noon."""
    lake = next(s for s in demo_stations if s.water_body == "lake")
    signals = StationSignals(lake, seed=7)
    zone = ZoneInfo("Asia/Shanghai")
    days = [(T0 + timedelta(days=d)).astimezone(zone).replace(hour=0) for d in range(10)]
    afternoon = sum(signals.sample(day.replace(hour=15))["temp"] for day in days)
    night = sum(signals.sample(day.replace(hour=3))["temp"] for day in days)
    assert afternoon > night + 10 * 1.0


def test_rain_raises_turbidity_and_level_and_dilutes_conductivity(demo_stations: list[Station]) -> None:
    """A storm's rain is reported per interval, and turbidity and level rise while conductivity falls."""
    station = next(s for s in demo_stations if s.id == "cq-cj-cuntan")
    storm = RainEvent((T0 + timedelta(hours=1)).timestamp(), 4 * 3600, 30.0)
    quiet = StationSignals(station, seed=8, rain_window_s=3600)
    wet = StationSignals(station, seed=8, storms=[storm], rain_window_s=3600)
    after = T0 + timedelta(hours=5)
    assert wet.sample(after)["turb"] > quiet.sample(after)["turb"] + 100
    assert wet.sample(after)["level"] > quiet.sample(after)["level"] + 2
    assert wet.sample(after)["cond"] < quiet.sample(after)["cond"]
    rain = sum(
        wet.sample(T0 + timedelta(hours=h))["rain"] - quiet.sample(T0 + timedelta(hours=h))["rain"]
        for h in range(1, 8)
    )
    assert rain == pytest.approx(120.0, abs=0.5)
