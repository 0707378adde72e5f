"""instrument_fault: a station's instruments report fault, maintenance, calibration or stop flags.

HJ 212-2017 data flags say when an analyser is not measuring: D (fault), M (maintenance), C
(calibration), F (stopped). One alert per station: FIRING while the newest reading of any watched
parameter carries one of `flags`, CLEAR once none does. Persistence is the rule's `for`: a flag
that clears within it never fires. The alert names the flagged parameters and their flags.

Calibration is routine (daily zero and span checks take tens of minutes), so the default rule set
watches D, F and M after a minute and C only when it lasts an hour (`calibration_overrun`).

Example:
    rules:
      - {name: instrument_fault, kind: instrument_fault, flags: [D, F, M], for: PT1M}
      - {name: calibration_overrun, kind: instrument_fault, flags: [C], for: PT1H, severity: info}
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import Field

from alerts.rules.base import Condition, Finding, RuleConfigBase, Scope, View
from alerts.windows import Evidence
from ingest.model import INSTRUMENT_FAULT_FLAGS, DataFlag

FLAG_NAMES: Final = {
    DataFlag.FAULT: "fault / 故障",
    DataFlag.MAINTENANCE: "maintenance / 维护",
    DataFlag.CALIBRATION: "calibration / 校准",
    DataFlag.STOPPED: "stopped / 停运",
}


class InstrumentFaultConfig(RuleConfigBase):
    kind: Literal["instrument_fault"] = Field("instrument_fault", description="Rule kind.")
    flags: tuple[DataFlag, ...] = Field(
        (DataFlag.FAULT, DataFlag.STOPPED, DataFlag.MAINTENANCE),
        min_length=1,
        description="HJ 212 flags that mean the instrument is not measuring (D, F, M, C).",
    )
    parameters: tuple[str, ...] | None = Field(
        None, description="Codes to watch; all the station sends when absent."
    )


class InstrumentFaultRule:
    kind: ClassVar[str] = "instrument_fault"
    scope: ClassVar[Scope] = Scope.STATION

    def __init__(self, config: InstrumentFaultConfig) -> None:
        bad = set(config.flags) - INSTRUMENT_FAULT_FLAGS
        if bad:
            raise ValueError(f"rule {config.name}: flags {sorted(bad)} do not mean an instrument fault")
        self.config = config
        self._flags = frozenset(config.flags)

    def evaluate(self, view: View) -> list[Finding]:
        station = view.station
        window = view.window
        latest = {
            code: sample
            for code, sample in window.latest.items()
            if (self.config.parameters is None or code in self.config.parameters)
            and sample.time_ns <= view.at_ns
        }
        if not latest:
            return []
        flagged = {code: s for code, s in latest.items() if s.flag in self._flags}
        observed = max(s.time_ns for s in latest.values())
        if not flagged:
            return [
                Finding(
                    Condition.CLEAR,
                    observed,
                    summary=f"{station.name}: instruments measuring again / 仪器恢复正常",
                    description=f"{station.name} ({station.id}) reports normal data again.",
                    station_id=station.id,
                )
            ]
        listing = ", ".join(f"{code} {FLAG_NAMES.get(s.flag, s.flag.value)}" for code, s in flagged.items())
        return [
            Finding(
                Condition.FIRING,
                observed,
                summary=f"{station.name}: 仪器异常 / instrument not measuring ({listing})",
                description=f"{station.name} ({station.id}, {station.district}): the newest readings carry "
                f"HJ 212 flags meaning the instrument is not measuring: {listing}. These values are "
                "stored but do not count for compliance.",
                station_id=station.id,
                values={code: s.value for code, s in flagged.items()},
                evidence=tuple(Evidence(code, s.value, s.time_ns, s.flag) for code, s in flagged.items()),
                context={code: s.flag.value for code, s in flagged.items()},
            )
        ]
