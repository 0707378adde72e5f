"""The station registry: the inventory of monitoring points, loaded from a YAML file.

The registry is the source of truth for which stations exist. Validation rejects readings from
stations not in it (configurable), sinks tag points with its district, basin and river, and the
alert engine treats a registered station that never reported as silent.

Example:
    stations:
      - id: cq-cjc-001
        name: 长江 朝天门
        river: 长江
        basin: 长江
        district: 渝中区
        water_body: river
        target_class: II
        lat: 29.5655
        lon: 106.5895
        mn: "50010300000001"
        warning_level: 175.0
        guaranteed_level: 183.5
        chainage_km: 250.0
    network:
      note: illustrative
      rivers:
        - {name: 长江, length_km: 820, speed_km_h: 5.4}
      district_receivers: {渝中区: [duty-yuzhong]}

`network:` (optional, config/network.py) describes the rivers, their confluences, intakes, boundary
sections and who must act; a station is placed on it by its `chainage_km` (km along its river,
increasing downstream). A registry without `network:` is valid: nothing is followed along the
rivers then, and `chainage_km` is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.network import NetworkSpec, RiverNetwork
from config.types import TimeZoneName

# Station ids travel in MQTT topics and line-protocol tags: keep them to a safe, printable set.
STATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
# HJ 212-2017: MN is the device's unique id, up to 24 characters.
MN_PATTERN = r"^[A-Za-z0-9_\-]{1,24}$"


class WaterClass(StrEnum):
    """GB 3838-2002 water-quality classes; WORSE_THAN_V is 劣V."""

    I = "I"  # noqa: E741 - the standard's own name for class one
    II = "II"
    III = "III"
    IV = "IV"
    V = "V"
    WORSE_THAN_V = "劣V"

    @property
    def rank(self) -> int:
        return _CLASS_RANK[self]


_CLASS_RANK = {c: i for i, c in enumerate(WaterClass)}


class Station(BaseModel):
    """One monitoring point (国控断面 or a hydrology station)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STATION_ID_PATTERN, description="Unique station id, used in topics and tags.")
    name: str = Field(min_length=1, max_length=128, description="Display name.")
    river: str = Field(min_length=1, max_length=64)
    basin: str = Field(min_length=1, max_length=64)
    district: str = Field(min_length=1, max_length=64, description="Administrative district (区县).")
    water_body: Literal["river", "lake", "reservoir"] = "river"
    target_class: WaterClass = Field(description="The GB 3838 class the point must meet.")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    mn: str | None = Field(None, pattern=MN_PATTERN, description="HJ 212 device id of the data logger.")
    hj212_password: SecretStr | None = Field(None, description="HJ 212 PW the data logger must send.")
    timezone: TimeZoneName | None = Field(
        None, description="IANA zone for naive timestamps from this station."
    )
    warning_level: float | None = Field(None, description="Warning water level (警戒水位), m.")
    guaranteed_level: float | None = Field(None, description="Guaranteed water level (保证水位), m.")
    kinds: tuple[Literal["water", "hydro"], ...] = Field(
        ("water",), description="What the station measures: water quality, hydrology or both."
    )
    report_interval_s: int = Field(
        14400, gt=0, description="Expected seconds between reports (4 h for a national automatic station)."
    )
    chainage_km: float | None = Field(
        None, ge=0, description="Position along its river, km increasing downstream (the registry's network)."
    )

    @field_validator("target_class")
    @classmethod
    def _target_is_a_class(cls, value: WaterClass) -> WaterClass:
        if value is WaterClass.WORSE_THAN_V:
            raise ValueError("a target class must be one of I..V")
        return value

    @model_validator(mode="after")
    def _levels_ordered(self) -> Station:
        if (
            self.warning_level is not None
            and self.guaranteed_level is not None
            and self.guaranteed_level < self.warning_level
        ):
            raise ValueError("guaranteed_level must not be below warning_level")
        return self

    def tags(self) -> tuple[tuple[str, str], ...]:
        """The tags every point from this station carries."""
        return (
            ("basin", self.basin),
            ("district", self.district),
            ("river", self.river),
            ("station_id", self.id),
        )


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str | None = None
    stations: list[Station]
    network: NetworkSpec | None = Field(None, description="The rivers between the stations (optional).")


class Registry(Mapping[str, Station]):
    """Stations by id, with a second index by HJ 212 MN, and the river network when there is one."""

    def __init__(self, stations: list[Station], network: NetworkSpec | None = None) -> None:
        self._by_id: dict[str, Station] = {}
        self._by_mn: dict[str, Station] = {}
        for station in stations:
            if station.id in self._by_id:
                raise ValueError(f"duplicate station id {station.id!r}")
            self._by_id[station.id] = station
            if station.mn is not None:
                if station.mn in self._by_mn:
                    raise ValueError(
                        f"duplicate MN {station.mn!r} (stations {self._by_mn[station.mn].id}, {station.id})"
                    )
                self._by_mn[station.mn] = station
        # Built here so that a network that does not fit the stations fails the load (NetworkError).
        self.network: RiverNetwork | None = None if network is None else RiverNetwork(network, stations)

    def __getitem__(self, station_id: str) -> Station:
        return self._by_id[station_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def by_mn(self, mn: str) -> Station | None:
        return self._by_mn.get(mn)

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Load and validate a registry file; errors name the station and the field."""
        with path.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        parsed = RegistryFile.model_validate(raw)
        return cls(parsed.stations, parsed.network)

    @classmethod
    def empty(cls) -> Registry:
        return cls([])


_SAFE_ID = re.compile(STATION_ID_PATTERN)


def is_valid_station_id(value: str) -> bool:
    return _SAFE_ID.match(value) is not None
