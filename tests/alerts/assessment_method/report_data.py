"""The month of twelve sections behind the `ecowatch report` tests: each figure worked out by hand.

Every section's items alternate between two values over the six results of each day (00:00 ..
20:00 Shanghai time, written in UTC), so each daily and monthly value is their mean; the sections
are built so that each figure of test_assessment_report.py was worked out by hand (see
`SECTIONS`). October has results for s01–s03 only (上月); November 2025 has none (去年同期). The
store tests (tests/integration/test_report_from_store.py) write the same rows through the sinks.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from alerts.assessment_method.readings_csv import read_results
from config.parameters import default_catalogue
from config.registry import Registry
from ingest.model import DataFlag, Reading

Pair = tuple[str, str]
BASE: dict[str, Pair] = {
    "ph": ("7.4", "7.6"), "do": ("7.9", "8.1"), "codmn": ("2.9", "3.1"), "nh3n": ("0.29", "0.31"),
    "tp": ("0.07", "0.09"), "tn": ("1.1", "1.3"), "temp": ("14.0", "16.0"), "cond": ("300", "300"),
}  # fmt: skip
# id: (river, basin, district, water body, target, items that differ from BASE) -> expected class
SECTIONS: dict[str, tuple[str, str, str, str, str, dict[str, Pair]]] = {
    "s01": ("长江", "长江", "渝中区", "river", "II", {}),  # II
    "s02": ("长江", "长江", "渝中区", "river", "II", {"nh3n": ("0.9", "1.1")}),  # NH3-N 1.0: III
    "s03": ("长江", "长江", "渝中区", "river", "III",
            {"tp": ("0.3", "0.5"), "nh3n": ("1.2", "1.4"), "codmn": ("6.5", "7.5")}),  # TP 0.4: V
    "s04": ("长江", "长江", "渝中区", "river", "III",
            {"do": ("1.5", "1.7"), "nh3n": ("2.4", "2.6"), "tp": ("0.5", "0.7"), "codmn": ("16", "18")}),  # 劣V
    "s05": ("嘉陵江", "长江", "渝中区", "river", "II", {"tp": ("0.01L", "0.01L"), "nh3n": ("0.05L", "0.12")}),
    "s06": ("嘉陵江", "长江", "江北区", "river", "III", {"codmn": ("4.00", "4.01")}),  # 4.005 -> 4.00: II
    "s07": ("嘉陵江", "长江", "江北区", "river", "II", {"codmn": ("4.03", "4.04")}),  # 4.035 -> 4.04: III
    "s08": ("嘉陵江", "长江", "江北区", "river", "III", {"tp": ("", ""), "nh3n": ("1.6", "1.8")}),  # no TP
    "s09": ("乌江", "乌江", "江北区", "river", "II", {}),  # NH3-N flagged D on 1–11 November: no valid month
    "s10": ("小江", "长江", "万州区", "lake", "III",
            {"ph": ("7.9", "8.1"), "do": ("6.9", "7.1"), "codmn": ("4.5", "5.5"), "nh3n": ("0.39", "0.41"),
             "tp": ("0.04", "0.06"), "chla": ("10", "10")}),  # lake TP 0.05: III; TN 1.2: IV apart
    "s11": ("汤溪河", "长江", "万州区", "reservoir", "II",
            {"tp": ("0.02", "0.02"), "tn": ("0.4", "0.6")}),  # one NH3-N result T 2.5: 劣V
    "s12": ("乌江", "乌江", "万州区", "river", "III",
            {"ph": ("6.9", "7.1"), "codmn": ("1.8", "2.0"), "nh3n": ("0.09", "0.11"), "tp": ("0.015", "0.025")}),
}  # fmt: skip
OCTOBER: dict[str, dict[str, Pair]] = {
    "s01": {"nh3n": ("0.7", "0.9")},  # III in October, II in November: better
    "s02": {},  # II in October, III in November: worse
    "s03": SECTIONS["s03"][5],  # V both months
}
NOV_START = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai
OCT_START = datetime(2026, 9, 30, 16, tzinfo=UTC)


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(sid: str, start: datetime, days: int, items: dict[str, Pair]) -> Iterator[list[str]]:
    for day in range(days):
        for slot in range(6):
            moment = start + timedelta(days=day, hours=4 * slot)
            for code, pair in (BASE | items).items():
                value, flag = pair[slot % 2], ""
                if not value:
                    continue
                if sid == "s09" and code == "nh3n" and day < 11:
                    flag = "D"
                if sid == "s11" and code == "nh3n" and day == 14 and slot == 2:
                    value, flag = "2.5", "T"
                yield [sid, _z(moment), code, value, flag]


def write_dataset(folder: Path) -> tuple[Path, Path]:
    """(stations.yaml, readings.csv) of the month in `folder`."""
    stations = [
        {"id": sid, "name": f"断面{sid[1:]}", "river": river, "basin": basin, "district": district,
         "water_body": body, "target_class": target, "lat": 30.0, "lon": 107.0}
        for sid, (river, basin, district, body, target, _) in SECTIONS.items()
    ]  # fmt: skip
    stations.append({"id": "s13", "name": "水文站", "river": "乌江", "basin": "乌江", "district": "万州区",
                     "target_class": "III", "lat": 30.0, "lon": 107.0, "kinds": ["hydro"]})  # fmt: skip
    registry = folder / "stations.yaml"
    registry.write_text(yaml.safe_dump({"stations": stations}, allow_unicode=True), encoding="utf-8")
    readings = folder / "readings.csv"
    with readings.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["station_id", "time", "parameter", "value", "flag"])
        for sid, spec in SECTIONS.items():
            writer.writerows(_month(sid, NOV_START, 30, spec[5]))
        for sid, items in OCTOBER.items():
            writer.writerows(_month(sid, OCT_START, 31, items))
        writer.writerow(["s10", _z(NOV_START + timedelta(days=9, hours=10)), "sd", "1.0", "S"])
        writer.writerow(["s10", _z(NOV_START + timedelta(days=9, hours=10)), "sd", "1.0", "N"])
        for hour in range(6):
            writer.writerow(["zz-unknown", _z(NOV_START + timedelta(hours=hour)), "ph", "7.0"])
    return registry, readings


def readings_of(path: Path, registry: Registry) -> list[Reading]:
    """The CSV's rows as the validator passes them on: canonical unit and the registry's tags."""
    catalogue = default_catalogue()
    out = []
    for station_id, time_ns, code, value, flag, below in read_results(path, progress=False):
        station = registry.get(station_id)
        tags = {"station_id": station_id}
        if station is not None:
            tags.update(district=station.district, basin=station.basin, river=station.river)
        parameter = catalogue[code]
        out.append(
            Reading(
                station_id=station_id,
                measurement=parameter.measurement,
                parameter=code,
                value=value,
                unit=parameter.unit,
                time_ns=time_ns,
                flag=DataFlag(flag),
                tags=tuple(sorted(tags.items())),
                below_dl=below,
            )
        )
    return out
