"""data_availability: a station without valid data — a data problem, not a water problem.

HJ 212 flags B (communication fault), D (instrument fault), F (stopped), M (maintenance) and C
(calibration) say the value is not a valid measurement, for a reason of the station. One alert per
station lists the items without valid data and why (`values`: minutes without valid data, by item;
`context`: the flag). An item's run of missing data starts at its
first flagged reading and ends at its next valid one (N or T, `alerts.station_values`); the alert
fires once a run has lasted the flag's `persist` (B at once, by default: the link is down; D, F and
M after an hour, so a single flagged reading during routine work raises nothing; C after two
hours, so only an overrunning calibration does), measured in station time up to the newest reading.
It clears when every item's newest reading is valid again. A silent station (no readings at all) is
`silent_station`'s. Alerts carry `category: data` (every rule's labels name its category), so a
route can send them to the maintenance crew and keep them off the water-quality channels.

Example:
    rules:
      - {name: no_valid_data, kind: data_availability, persist: {B: PT0S, D: PT1H, F: PT1H, M: PT1H}}
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Final, Literal

from pydantic import Field

from alerts.rules.base import Condition, Finding, RuleConfigBase, Scope, View
from alerts.station_values import StationValues
from config.registry import Station
from config.standards import Standard

ProblemFlag = Literal["B", "D", "F", "M", "C"]
# HJ 212-2017 data flags, as a duty room says them.
FLAG_TEXT: Final = {"B": "通讯异常", "D": "仪器故障", "F": "停运", "M": "维护", "C": "校准"}
_DEFAULT_PERSIST: Final = {
    "B": timedelta(0),
    "D": timedelta(hours=1),
    "F": timedelta(hours=1),
    "M": timedelta(hours=1),
    "C": timedelta(hours=2),
}


class DataAvailabilityConfig(RuleConfigBase):
    kind: Literal["data_availability"] = Field("data_availability", description="Rule kind.")
    persist: dict[ProblemFlag, timedelta] = Field(
        _DEFAULT_PERSIST,  # type: ignore[arg-type]  # pydantic validates the default's keys
        description="How long a run of each flag must last before it alerts; flags not listed never do.",
    )


class DataAvailabilityRule:
    kind: ClassVar[str] = "data_availability"
    scope: ClassVar[Scope] = Scope.STREAM

    def __init__(self, config: DataAvailabilityConfig) -> None:
        self.config = config
        self._persist_ns: dict[str, int] = {
            f: int(d.total_seconds() * 1e9) for f, d in config.persist.items()
        }

    def evaluate(self, view: View) -> list[Finding]:  # noqa: ARG002 - judged from item runs (`judge`)
        return []

    def judge(
        self,
        station: Station,
        values: StationValues,
        at_ns: int,
        standard: Standard,
        basis: str,  # noqa: ARG002 - the stream rules' common signature
        *,
        quiet: bool = False,
    ) -> list[Finding]:
        """The station's finding at `at_ns`; `quiet` (no alert is active) skips a clear one."""
        missing: list[tuple[str, str, int]] = []
        running = False
        for code, item in values.items.items():
            flag, since = item.problem_flag, item.problem_since_ns
            if flag is None or since is None:
                continue
            running = True
            persist = self._persist_ns.get(flag)
            if persist is not None and at_ns - since >= persist:
                missing.append((code, flag, since))
        if missing:
            missing.sort(key=lambda m: (m[1], m[0]))
            parts = [
                f"{_name(standard, code)}（{FLAG_TEXT.get(flag, flag)} {flag}）" for code, flag, _ in missing
            ]
            causes = "、".join(FLAG_TEXT.get(f, f) for f in sorted({flag for _, flag, _ in missing}))
            return [
                Finding(
                    Condition.FIRING,
                    at_ns,
                    summary=f"{station.name}：无有效数据，{causes} / no valid data",
                    description=f"{station.name}（{station.id}，{station.district}）数据异常，"
                    f"以下指标无有效数据：{'；'.join(parts)}。这是站点设备或传输问题，不是水质问题。"
                    "/ no valid data: a station problem, not a water problem.",
                    station_id=station.id,
                    values={code: round((at_ns - since) / 6e10, 1) for code, _, since in missing},
                    context={code: flag for code, flag, _ in missing},
                )
            ]
        if running or quiet or not values.items:
            return []  # a run not long enough yet neither fires nor clears
        return [
            Finding(
                Condition.CLEAR,
                at_ns,
                summary=f"{station.name}：数据恢复正常 / valid data again",
                description=f"{station.name}（{station.id}）各项指标恢复有效数据 / every item has valid data "
                "again.",
                station_id=station.id,
            )
        ]


def _name(standard: Standard, code: str) -> str:
    item = standard.items.get(code)
    return code if item is None else item.name_zh
