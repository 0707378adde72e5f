"""Station signal models: what a healthy station's instruments read at a given instant.

Each station draws its constants (base temperature, pH centre, conductivity, rating curve,
pollutant levels...) from `random.Random` seeded with (seed, station id), and its measurement
noise from `simulators.noise` keyed by (seed, station, second, parameter). A value therefore
depends only on (seed, station, time): any window, sampled in any order, gives the same numbers.

The physics is simple, with the right signs and magnitudes:
- water temperature: a seasonal cycle (coldest late January) plus a daily one peaking mid-afternoon,
  in the station's local time;
- dissolved oxygen: the saturation concentration at that temperature (Benson & Krause 1984, the
  APHA 4500-O table) times a ratio a few % around 1 that rises with afternoon photosynthesis;
- pH: a slow drift of three sinusoids inside 7.2–8.4 plus the photosynthesis swing;
- rain: seeded showers plus scenario storms, as rectangular pulses of intensity (mm/h); level and
  turbidity follow them through linear reservoirs (exponential rise and recession), conductivity
  is diluted by them, TP and CODMn wash in with them;
- flow from level through a rating curve Q = a (h - h0)^b; velocity is Q over the wetted area;
- CODMn, NH3-N, TP, TN at a station-specific 40–65 % of the station's target-class limit, read from
  the GB 3838 data file, so a quiet station always meets its target class.

Usage:
    signals = StationSignals(registry["cq-cj-cuntan"], seed=7)
    signals.sample(datetime(2026, 7, 1, 15, tzinfo=UTC))  # {"ph": 7.9, "temp": 26.8, "do": 8.1, ...}
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from config.parameters import default_catalogue
from config.registry import Station
from config.standards import Standard, default_standard
from simulators import noise

WATER_CODES: Final = ("ph", "temp", "do", "cond", "turb", "codmn", "nh3n", "tp", "tn")
HYDRO_CODES: Final = ("level", "flow", "velocity", "rain")
# Stations without a zone are Chinese national stations; China keeps one zone and no DST.
DEFAULT_ZONE: Final = "Asia/Shanghai"
# Instrument resolution, in decimals, so payloads carry what a real analyser would print.
DECIMALS: Final[Mapping[str, int]] = {
    "ph": 2, "temp": 2, "do": 2, "cond": 1, "turb": 1, "codmn": 2, "nh3n": 3, "tp": 3, "tn": 2,
    "level": 3, "flow": 1, "velocity": 3, "rain": 1,
}  # fmt: skip
# A sustained rain of this intensity (mm/h) lifts a gauge to its warning level; showers stay far below.
DESIGN_INTENSITY_MM_H: Final = 25.0
# Margin of the usual level below the warning level, for gauges that do not give one.
DEFAULT_MARGIN_M: Final = 5.0
_DAY_S: Final = 86400.0
_YEAR_DAYS: Final = 365.2425
# Seeded showers older than this have receded to nothing (e^-9 of their peak at the longest K).
_RAIN_LOOKBACK_DAYS: Final = 3
_PH_BAND: Final = (7.2, 8.4)
_KELVIN: Final = 273.15


def do_saturation(temp_c: float) -> float:
    """Dissolved-oxygen saturation (mg/L) of fresh water at 1 atm: Benson & Krause (1984), APHA 4500-O."""
    t = temp_c + _KELVIN
    return math.exp(-139.34411 + 1.575701e5 / t - 6.642308e7 / t**2 + 1.243800e10 / t**3 - 8.621949e11 / t**4)


@dataclass(frozen=True, slots=True)
class RatingCurve:
    """Stage–discharge relation Q = a (h - h0)^b of a gauge, with the channel width for velocity."""

    a: float
    h0: float
    b: float
    width_m: float

    def flow(self, level: float) -> float:
        return self.a * math.pow(max(level - self.h0, 0.0), self.b)

    def velocity(self, level: float) -> float:
        depth = level - self.h0
        return self.flow(level) / (self.width_m * depth) if depth > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RainEvent:
    """Rain of a constant intensity over an interval (epoch seconds)."""

    start: float
    duration_s: float
    intensity_mm_h: float

    def reservoir_response(self, t: float, k_s: float) -> float:
        """Output (mm/h) of a linear reservoir with time constant k_s fed by this pulse, at t."""
        if t <= self.start:
            return 0.0
        if t <= self.start + self.duration_s:
            return self.intensity_mm_h * (1.0 - math.exp(-(t - self.start) / k_s))
        peak = self.intensity_mm_h * (1.0 - math.exp(-self.duration_s / k_s))
        return peak * math.exp(-(t - self.start - self.duration_s) / k_s)

    def depth_between(self, t0: float, t1: float) -> float:
        """Rain (mm) that fell in [t0, t1]."""
        overlap = min(t1, self.start + self.duration_s) - max(t0, self.start)
        return self.intensity_mm_h * overlap / 3600.0 if overlap > 0 else 0.0


class StationSignals:
    """The true signals of one station; `sample(t)` is a pure function of (seed, station, storms, t)."""

    def __init__(
        self,
        station: Station,
        seed: int,
        *,
        storms: Sequence[RainEvent] = (),
        rain_window_s: float | None = None,
        standard: Standard | None = None,
    ) -> None:
        self.station = station
        self.codes: tuple[str, ...] = (WATER_CODES if "water" in station.kinds else ()) + (
            HYDRO_CODES if "hydro" in station.kinds else ()
        )
        self._storms = tuple(storms)
        self._rain_window_s = float(rain_window_s or station.report_interval_s)
        self._zone = ZoneInfo(station.timezone or DEFAULT_ZONE)
        self._key = noise.key_of("signals", seed, station.id)
        self._showers: dict[int, tuple[RainEvent, ...]] = {}
        rng = random.Random(f"{seed}:{station.id}")
        lake = station.water_body != "river"
        self._temp_mean = rng.uniform(17.0, 19.5)
        self._temp_season = rng.uniform(7.0, 9.0)
        self._temp_daily = rng.uniform(1.0, 2.0) if lake else rng.uniform(0.3, 1.0)
        self._do_swing = rng.uniform(0.02, 0.04) if lake else rng.uniform(0.01, 0.025)
        self._ph_centre = rng.uniform(7.6, 8.0)
        self._ph_waves = tuple(
            (rng.uniform(0.05, 0.12), p, rng.uniform(0, 2 * math.pi)) for p in (3.1, 11.0, 29.0)
        )
        self._cond_base = rng.uniform(250.0, 450.0)
        self._turb_base = rng.uniform(3.0, 20.0) if lake else rng.uniform(8.0, 40.0)
        self._turb_gain = rng.uniform(6.0, 12.0)  # NTU per mm/h of runoff
        self._k_level_s = rng.uniform(4.0, 8.0) * 3600
        self._k_turb_s = rng.uniform(1.5, 3.0) * 3600
        self._rain_days = rng.uniform(0.25, 0.4)  # share of days with a shower
        margin = DEFAULT_MARGIN_M
        if station.warning_level is not None:
            self._base_level = station.warning_level - margin
        else:
            self._base_level = rng.uniform(100.0, 300.0)
        self._level_gain = margin / DESIGN_INTENSITY_MM_H
        depth = rng.uniform(4.0, 10.0)
        base_flow = math.exp(rng.uniform(math.log(100.0), math.log(10000.0)))
        b = rng.uniform(1.5, 1.8)
        base_velocity = rng.uniform(0.8, 1.6)
        self.rating = RatingCurve(
            a=base_flow / depth**b,
            h0=self._base_level - depth,
            b=b,
            width_m=base_flow / (depth * base_velocity),
        )
        self._levels = _pollutant_levels(station, rng, standard or default_standard())
        self._conc_phase = rng.uniform(0, 2 * math.pi)

    def sample(self, t: datetime) -> dict[str, float]:
        """Every code this station reports, at instant t (aware), rounded to instrument resolution."""
        now = t.timestamp()
        offset = self._zone.utcoffset(t)
        local_day = ((now + (offset.total_seconds() if offset else 0.0)) % _DAY_S) / _DAY_S
        season = math.cos(2 * math.pi * ((now / _DAY_S - 19.0) % _YEAR_DAYS) / _YEAR_DAYS)  # 1 in late Jan
        daily = math.sin(2 * math.pi * (local_day - 0.375))  # peaks at 15:00 local
        rain = self._rain_events(now)
        runoff = sum((e.reservoir_response(now, self._k_level_s) for e in rain), 0.0)
        washout = sum((e.reservoir_response(now, self._k_turb_s) for e in rain), 0.0)
        wet = runoff / DESIGN_INTENSITY_MM_H
        key = noise.mix(self._key, int(now))

        temp = self._temp_mean - self._temp_season * season + self._temp_daily * daily
        values: dict[str, float] = {"temp": temp + 0.05 * noise.normal(key, 0)}
        do_ratio = 0.99 + self._do_swing * daily + 0.005 * noise.normal(key, 1)
        values["do"] = do_saturation(temp) * do_ratio
        drift = sum(a * math.sin(2 * math.pi * now / (p * _DAY_S) + ph) for a, p, ph in self._ph_waves)
        ph = self._ph_centre + drift + 0.1 * daily + 0.02 * noise.normal(key, 2)
        values["ph"] = min(_PH_BAND[1], max(_PH_BAND[0], ph))
        values["cond"] = self._cond_base * max(0.5, 1.0 - 0.3 * wet) * (1 + 0.01 * noise.normal(key, 3))
        values["turb"] = (self._turb_base + self._turb_gain * washout) * (1 + 0.03 * noise.normal(key, 4))
        wash_in = 1.0 + 0.25 * min(wet, 1.0)
        for index, (code, level) in enumerate(self._levels.items(), start=5):
            swing = 1.0 + 0.04 * math.sin(2 * math.pi * local_day + self._conc_phase)
            factor = wash_in if code in ("tp", "codmn") else 1.0
            values[code] = level * swing * factor * (1 + 0.02 * noise.normal(key, index))
        season_level = -0.1 * DEFAULT_MARGIN_M * season
        level = self._base_level + season_level + self._level_gain * runoff + 0.005 * noise.normal(key, 10)
        # Stations derive flow from the stage they read, so flow follows the reported level exactly.
        values["level"] = level = round(level, DECIMALS["level"])
        values["flow"] = self.rating.flow(level)
        values["velocity"] = self.rating.velocity(level)
        values["rain"] = sum((e.depth_between(now - self._rain_window_s, now) for e in rain), 0.0)
        return {code: round(values[code], DECIMALS[code]) for code in self.codes}

    def _rain_events(self, now: float) -> list[RainEvent]:
        today = int(now // _DAY_S)
        events = [e for e in self._storms if e.start < now]
        for day in range(today - _RAIN_LOOKBACK_DAYS, today + 1):
            events.extend(e for e in self._showers_of(day) if e.start < now)
        return events

    def _showers_of(self, day: int) -> tuple[RainEvent, ...]:
        showers = self._showers.get(day)
        if showers is None:
            rng = random.Random(noise.mix(self._key, day))
            showers = ()
            if rng.random() < self._rain_days:
                start = day * _DAY_S + rng.uniform(0, _DAY_S)
                # Showers: 1-8 h at up to 8 mm/h, a third of the design intensity at most.
                showers = (RainEvent(start, rng.uniform(1, 8) * 3600, min(8.0, rng.expovariate(1 / 2.5))),)
            self._showers[day] = showers
        return showers


def kind_of(code: str) -> str:
    """The topic kind of a parameter: `hydro` for hydrology, `water` for water quality."""
    return "hydro" if default_catalogue()[code].measurement == "hydrology" else "water"


def _pollutant_levels(station: Station, rng: random.Random, standard: Standard) -> dict[str, float]:
    """Each capped pollutant at 40-65 % of the station's target-class limit on its water body."""
    index = standard.classes.index(station.target_class)
    levels: dict[str, float] = {}
    for code in WATER_CODES:
        item = standard.items.get(code)
        limits = item.limits_for(station.water_body) if item is not None and item.kind == "max" else None
        if limits is not None:
            levels[code] = rng.uniform(0.40, 0.65) * limits[index]
    return levels
