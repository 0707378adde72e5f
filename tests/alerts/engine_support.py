"""Builders shared by the alert engine tests: a fake clock, readings, a service on a temp database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from alerts.config import AlertsConfig
from alerts.events import AlertEvent
from alerts.service import AlertService
from config.registry import Registry
from ingest.model import DataFlag, Reading
from tests.helpers import station

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
UNITS = {"level": "m", "ph": "1", "temp": "°C", "turb": "NTU"}


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def reading(
    parameter: str,
    value: float,
    at: datetime,
    *,
    station_id: str = "st-1",
    flag: DataFlag = DataFlag.NORMAL,
) -> Reading:
    measurement = "hydrology" if parameter in ("level", "flow") else "water_quality"
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    time_ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return Reading(
        station_id=station_id,
        measurement=measurement,
        parameter=parameter,
        value=value,
        unit=UNITS.get(parameter, "mg/L"),
        time_ns=time_ns,
        flag=flag,
    )


CLEAN: Final[Mapping[str, float]] = {"ph": 7.5, "do": 8.0, "codmn": 3.0, "nh3n": 0.3}


def report(at: datetime, values: Mapping[str, float], *, station_id: str = "st-1") -> list[Reading]:
    """A class II report (CLEAN) with some values replaced or added."""
    return [reading(code, value, at, station_id=station_id) for code, value in {**CLEAN, **values}.items()]


def water(at: datetime, *, station_id: str = "st-1", nh3n: float = 0.3) -> list[Reading]:
    """A clean class II report (DO 8, pH 7.5, CODMn 3) with the NH3-N given."""
    return report(at, {"nh3n": nh3n}, station_id=station_id)


def one_station_registry(**overrides: Any) -> Registry:
    fields: dict[str, Any] = {"target_class": "II", "report_interval_s": 3600, **overrides}
    return Registry([station("st-1", **fields)])


def rules_config(*rules: dict[str, Any], **settings: Any) -> AlertsConfig:
    return AlertsConfig.model_validate({"rules": list(rules), **settings})


def make_service(
    path: Path, registry: Registry, config: AlertsConfig | None = None, clock: FakeClock | None = None
) -> AlertService:
    return AlertService(config or AlertsConfig(), registry, path / "alerts.db", clock=clock or FakeClock())


def events(service: AlertService) -> list[AlertEvent]:
    return [event for _, event in service.store.events(limit=100_000)]


def notices(service: AlertService, rule: str | None = None) -> list[tuple[str, str, bool]]:
    """(rule, status, reminder) of every event written, in order, optionally of one rule."""
    return [(e.rule, e.status, e.reminder) for e in events(service) if rule is None or e.rule == rule]


def feed(
    service: AlertService, clock: FakeClock, batches: Iterable[list[Reading]], *, every: timedelta
) -> None:
    """Write each batch at the clock's time, tick, then move the clock on by `every`."""
    for batch in batches:
        service.write(batch)
        service.tick(clock.now)
        clock.now += every
