"""Evaluation windows: what the alert engine remembers of each station's readings.

A `StationWindow` keeps, per parameter, the newest reading (any flag), the newest reading that
is judged (flag N, or T: above the analyser's range, "at least this value", so a saturated
analyser is judged on its lower bound rather than on an older normal value), and a time-sorted
`Series` of recent samples from which rules take rolling means (`PT4H`, `P1D`) of N values only.
Values are looked up as of an instant in event time, so evaluating a station after a backlog gives
the answer it would have given live.

Admission of a reading (the late-reading policy, one place):
- NEW: newer than the newest reading of its (station, parameter): it updates the latest value and
  the station's watermark (its newest event time) and is evaluated.
- LATE: older than that, but within `allowed_lateness` of the station's watermark: it is stored
  in the series, so later rolling means include it, but it is not evaluated by itself and never
  replaces the latest value, so it cannot re-open a resolved alert on its own.
- DUPLICATE: a reading of the same (station, parameter, time) is already held: skipped. This is
  what makes replaying the readings log harmless.
- TOO_LATE: older than the watermark minus `allowed_lateness`: ignored and counted.

Pure values and in-memory state only; `alerts.store` persists samples and latest values.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from enum import StrEnum

from ingest.model import COMPLIANCE_FLAGS, DataFlag, Reading


class Admission(StrEnum):
    """How a reading enters a station's window; the `late` counter's label."""

    NEW = "new"
    LATE = "late"
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"


@dataclass(frozen=True, slots=True)
class Sample:
    time_ns: int
    value: float
    flag: DataFlag

    @property
    def normal(self) -> bool:
        return self.flag in COMPLIANCE_FLAGS


@dataclass(frozen=True, slots=True)
class Evidence:
    """A value a rule judged: one reading, or the mean of `samples` readings ending at `time_ns`."""

    parameter: str
    value: float
    time_ns: int
    flag: DataFlag = DataFlag.NORMAL
    samples: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "parameter": self.parameter,
            "value": self.value,
            "time_ns": self.time_ns,
            "flag": self.flag.value,
            "samples": self.samples,
        }


class Series:
    """Samples of one parameter, sorted by time, one per instant.

    Held as columns (machine ints and floats, flag references), about 24 bytes a sample instead
    of ~150 for `Sample` objects: a station's windows hold up to `allowed_lateness` of readings,
    which for a thousand stations is millions of samples. `between` builds the samples it returns.
    """

    __slots__ = ("_flags", "_times", "_values")

    def __init__(self) -> None:
        self._times = array("q")
        self._values = array("d")
        self._flags: list[DataFlag] = []

    def __len__(self) -> int:
        return len(self._times)

    def has(self, time_ns: int) -> bool:
        index = bisect.bisect_left(self._times, time_ns)
        return index < len(self._times) and self._times[index] == time_ns

    def add(self, sample: Sample) -> bool:
        """Insert in time order; False (and nothing stored) when the instant is already held."""
        times = self._times
        if not times or sample.time_ns > times[-1]:  # the common case: the newest sample
            index = len(times)
        else:
            index = bisect.bisect_left(times, sample.time_ns)
            if index < len(times) and times[index] == sample.time_ns:
                return False
        times.insert(index, sample.time_ns)
        self._values.insert(index, sample.value)
        self._flags.insert(index, sample.flag)
        return True

    def prune(self, before_ns: int) -> None:
        """Forget samples older than `before_ns`."""
        times = self._times
        if not times or times[0] >= before_ns:
            return
        index = bisect.bisect_left(times, before_ns)
        del times[:index]
        del self._values[:index]
        del self._flags[:index]

    def between(self, start_ns: int, end_ns: int, *, normal_only: bool = True) -> list[Sample]:
        """Samples with start_ns < time <= end_ns, oldest first."""
        lo = bisect.bisect_right(self._times, start_ns)
        hi = bisect.bisect_right(self._times, end_ns)
        times, values, flags = self._times, self._values, self._flags
        return [
            Sample(times[i], values[i], flags[i])
            for i in range(lo, hi)
            if not normal_only or flags[i] in COMPLIANCE_FLAGS
        ]


@dataclass(slots=True)
class StationWindow:
    """One station's recent readings; `watermark_ns` is its newest evaluated event time."""

    station_id: str
    retention_ns: int
    watermark_ns: int | None = None
    latest: dict[str, Sample] = field(default_factory=dict)
    latest_normal: dict[str, Sample] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)

    def admit(self, reading: Reading, allowed_lateness_ns: int) -> Admission:
        """Where a reading stands against what this window holds (see the module docstring)."""
        newest = self.latest.get(reading.parameter)
        if newest is None or reading.time_ns > newest.time_ns:
            if self.watermark_ns is not None and reading.time_ns < self.watermark_ns - allowed_lateness_ns:
                return Admission.TOO_LATE
            return Admission.NEW
        if reading.time_ns == newest.time_ns:
            return Admission.DUPLICATE
        if self.watermark_ns is not None and reading.time_ns < self.watermark_ns - allowed_lateness_ns:
            return Admission.TOO_LATE
        series = self.series.get(reading.parameter)
        return Admission.DUPLICATE if series is not None and series.has(reading.time_ns) else Admission.LATE

    def add(self, reading: Reading, admission: Admission) -> Sample:
        """Store an admitted (NEW or LATE) reading; returns its sample."""
        sample = Sample(reading.time_ns, reading.value, reading.flag)
        self.restore_sample(reading.parameter, sample)
        if admission is Admission.NEW:
            self.restore_latest(reading.parameter, sample)
        return sample

    def restore_sample(self, parameter: str, sample: Sample) -> None:
        series = self.series.get(parameter)
        if series is None:
            series = self.series[parameter] = Series()
        series.add(sample)
        newest = self.latest.get(parameter)
        series.prune(max(sample.time_ns, newest.time_ns if newest else 0) - self.retention_ns)

    def restore_latest(self, parameter: str, sample: Sample, normal: Sample | None = None) -> None:
        """Set the newest reading of a parameter (and, from the store, its newest normal one)."""
        self.latest[parameter] = sample
        if sample.normal or sample.flag.is_lower_bound:  # T: "at least this value" is judged too
            self.latest_normal[parameter] = sample
        elif normal is not None:
            self.latest_normal[parameter] = normal
        if self.watermark_ns is None or sample.time_ns > self.watermark_ns:
            self.watermark_ns = sample.time_ns

    def value(self, parameter: str, at_ns: int, *, window_ns: int | None, max_age_ns: int) -> Evidence | None:
        """The compliance value of a parameter as of `at_ns`.

        Instantaneous (`window_ns` None): the newest normal reading at or before `at_ns`, if it is
        at most `max_age_ns` old. Rolling: the mean of the normal samples in (at - window, at].
        """
        if window_ns is None:
            latest = self.latest_normal.get(parameter)
            if latest is not None and latest.time_ns <= at_ns:
                return _fresh(parameter, latest, at_ns, max_age_ns)
            series = self.series.get(parameter)
            if series is None:
                return None
            earlier = series.between(at_ns - max_age_ns, at_ns)
            return Evidence(parameter, earlier[-1].value, earlier[-1].time_ns) if earlier else None
        series = self.series.get(parameter)
        if series is None:
            return None
        samples = series.between(at_ns - window_ns, at_ns)
        if not samples:
            return None
        mean = sum(s.value for s in samples) / len(samples)
        return Evidence(parameter, mean, samples[-1].time_ns, DataFlag.NORMAL, len(samples))

    def values(
        self, parameters: tuple[str, ...] | None, at_ns: int, *, window_ns: int | None, max_age_ns: int
    ) -> dict[str, Evidence]:
        """`value` of each parameter (all it has seen when None) that has one, by code."""
        codes = parameters if parameters is not None else tuple(self.latest)
        out: dict[str, Evidence] = {}
        for code in codes:
            evidence = self.value(code, at_ns, window_ns=window_ns, max_age_ns=max_age_ns)
            if evidence is not None:
                out[code] = evidence
        return out


def _fresh(parameter: str, sample: Sample, at_ns: int, max_age_ns: int) -> Evidence | None:
    if at_ns - sample.time_ns > max_age_ns:
        return None
    return Evidence(parameter, sample.value, sample.time_ns, sample.flag)
