"""The values that flow through ecowatch: raw readings from decoders, readings, rejections.

A decoder turns one message into a `Decoded`: `RawReading`s (not yet checked against the
registry, catalogue or clock) and `ItemRejection`s for parts it could not read. Validation turns a
`RawReading` into a `Reading` (canonical parameter code and unit, aware UTC time, station tags) or
an `ItemRejection`. Everything here is a value; nothing does I/O.

A result below the detection limit (`0.01L`) is `below_dl` with the detection limit as its
`value`: every sink stores the mark beside the value, so it is never read as a measurement. The
kind of value (`DataKind`: real-time, minute, hourly, daily, lab) is a `data_kind` tag on readings
of any kind but real-time, so the kinds are separate series. `DataFlag` says what each HJ 212 flag
means downstream (`is_lower_bound`, `is_data_problem`). A reading whose time the HJ 212 gateway
shifted by its logger's measured clock error is `time_corrected`, and every sink stores that mark
too (its time is the corrected one: the mark says it was not the logger's own).

The values built once per reading or message (`RawReading`, `Reading`, `Message`, `Decoded`) are
slotted but not frozen: a frozen dataclass sets each field through `object.__setattr__`, which
made building one six times slower and was a fifth of the processor's CPU per message. They are
still treated as immutable: decoded readings are shared between consumers, so nothing may assign
to their fields; `RawReading`, `Reading` and `Message` keep the field-wise hash a frozen value has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ingest.errors import RejectReason


class DataFlag(StrEnum):
    """Data flags of HJ 212-2017 (`code-Flag`), which our JSON schema uses too.

    What each means downstream (issue 16, item 4):
    - N: a valid measurement, the only flag that enters means and compliance (`COMPLIANCE_FLAGS`).
    - T (above the analyser's upper range): a lower bound, "at least this value"
      (`is_lower_bound`). Never clean data: it stays out of means, but a T value above a limit
      is an exceedance (the real value is higher still).
    - B (communication fault), D (fault), F (stopped), M (maintenance), C (calibration): no
      valid measurement, a data-availability problem (`is_data_problem`), never a water
      problem: alerts about them go to the maintenance crew, and a section without valid data
      is "not assessable", never compliant.
    - S (entered by hand): neither; it is not valid automatic data (not N), nor a fault.
    """

    NORMAL = "N"
    STOPPED = "F"
    MAINTENANCE = "M"
    MANUAL = "S"
    FAULT = "D"
    CALIBRATION = "C"
    OVER_RANGE = "T"
    COMMS = "B"

    @property
    def is_lower_bound(self) -> bool:
        """The value is "at least this much" (T): the real value lies above the analyser's range."""
        return self in LOWER_BOUND_FLAGS

    @property
    def is_data_problem(self) -> bool:
        """No valid measurement for a reason of the station, not of the water (B, D, F, M, C)."""
        return self in DATA_PROBLEM_FLAGS


class DataKind(StrEnum):
    """What a value is: HJ 212's real-time (2011), minute (2051), hourly (2061) and daily (2031)
    values, or a manual laboratory result. Kinds other than real-time are stored under a
    `data_kind` tag, so an hourly mean never overwrites the real-time value of the same time."""

    REALTIME = "realtime"
    MINUTE = "minute"
    HOURLY = "hourly"
    DAILY = "daily"
    LAB = "lab"


# A result below the detection limit as loggers and laboratories write it: the limit, then `L`
# (HJ 212-2017 and Chinese lab reports: `0.01L` is "below 0.01"). Plain decimal or exponent only.
_BELOW_DL_TEXT = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?L")


def parse_below_dl(text: str) -> float | None:
    """The detection limit of a below-detection text (`"0.01L"` -> 0.01), else None."""
    if len(text) > 32 or _BELOW_DL_TEXT.fullmatch(text) is None:
        return None
    limit = float(text[:-1])
    return limit if limit != math.inf else None  # `1e999L`


# The tag that carries a kind other than real-time (`Reading.tags`); real-time readings have none,
# so the series of deployments from before kinds existed stay what they were.
DATA_KIND_TAG = "data_kind"


# HJ 212-2017, data flags: only normal values take part in compliance assessment.
# Flagged values are still stored, with their flag, so operators see them.
COMPLIANCE_FLAGS: frozenset[DataFlag] = frozenset({DataFlag.NORMAL})
# T: above the analyser's upper range, so the value is a lower bound ("at least this value").
LOWER_BOUND_FLAGS: frozenset[DataFlag] = frozenset({DataFlag.OVER_RANGE})
# No valid measurement because of the station (communication, fault, stopped, maintenance,
# calibration): a data-availability problem, to be told apart from a water problem everywhere.
DATA_PROBLEM_FLAGS: frozenset[DataFlag] = frozenset(
    {DataFlag.COMMS, DataFlag.FAULT, DataFlag.STOPPED, DataFlag.MAINTENANCE, DataFlag.CALIBRATION}
)
# Flags that mean the instrument itself is not measuring: the instrument-fault rule watches these.
INSTRUMENT_FAULT_FLAGS: frozenset[DataFlag] = frozenset(
    {DataFlag.FAULT, DataFlag.MAINTENANCE, DataFlag.CALIBRATION, DataFlag.STOPPED}
)


@dataclass(slots=True, unsafe_hash=True)
class RawReading:
    """One value as a decoder read it (an immutable value by convention, see the module docstring).

    `station_id` or `mn` (HJ 212 device id) names the station; validation resolves either through
    the registry. `parameter` is a canonical code when the decoder could map it, else the foreign
    code as sent (validation rejects it as unknown, keeping the code in the reason). `ts` may be
    naive; `assume_tz` is the zone the protocol defines for naive times (HJ 212: station local time).
    """

    parameter: str
    value: float
    ts: datetime
    station_id: str | None = None
    mn: str | None = None
    unit: str | None = None
    flag: str = DataFlag.NORMAL
    assume_tz: str | None = None
    # HJ 212 access password (PW) as sent; validation compares it with the station's.
    password: str | None = field(default=None, repr=False)
    # Below the detection limit (`0.01L`): `value` is then the detection limit, never a measurement.
    below_dl: bool = False
    # The kind of value (`DataKind`): real-time, a minute/hourly/daily aggregate, a lab result.
    kind: str = "realtime"
    time_corrected: bool = False  # `ts` was shifted by the logger's measured clock error (HJ 212 gateway)


@dataclass(frozen=True, slots=True)
class ItemRejection:
    """One part of a message that was rejected while the rest went on."""

    reason: RejectReason
    detail: str
    station_id: str | None = None
    parameter: str | None = None


@dataclass(slots=True)
class Decoded:
    """What a decoder made of one message (the decoder fills the lists, nothing changes them after)."""

    readings: list[RawReading] = field(default_factory=list)
    rejections: list[ItemRejection] = field(default_factory=list)


@dataclass(slots=True, unsafe_hash=True)
class Reading:
    """A validated reading: canonical code and unit, UTC time in ns, station tags attached.

    An immutable value by convention (see the module docstring): consumers share decoded readings.

    `tags` are sorted (key, value) pairs: the registry's station_id, district, basin and river,
    plus any topic placeholders. Sinks use (measurement, tags, time_ns) as the point identity, so
    writing a reading twice stores it once.
    """

    station_id: str
    measurement: str
    parameter: str
    value: float
    unit: str
    time_ns: int
    flag: DataFlag = DataFlag.NORMAL
    tags: tuple[tuple[str, str], ...] = ()
    # Below the detection limit: `value` is the detection limit (see `RawReading.below_dl`).
    below_dl: bool = False
    # `time_ns` is the logger's time corrected by its measured clock error (`RawReading.time_corrected`).
    time_corrected: bool = False

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=UTC)

    @property
    def counts_for_compliance(self) -> bool:
        return self.flag in COMPLIANCE_FLAGS

    @property
    def is_lower_bound(self) -> bool:
        """Flag T: the value is "at least this much" (see `DataFlag`)."""
        return self.flag in LOWER_BOUND_FLAGS

    @property
    def is_data_problem(self) -> bool:
        """Flag B, D, F, M or C: no valid measurement, for a reason of the station (see `DataFlag`)."""
        return self.flag in DATA_PROBLEM_FLAGS

    @property
    def data_kind(self) -> DataKind:
        """The kind of value, from the `data_kind` tag validation adds (absent: real-time)."""
        for key, value in self.tags:
            if key == DATA_KIND_TAG:
                return DataKind(value)
        return DataKind.REALTIME

    @property
    def shown_value(self) -> str:
        """The value as a report writes it: `<0.01` below the detection limit, else `0.01`."""
        short = f"{self.value:g}"
        text = short if float(short) == self.value else repr(self.value)
        return f"<{text}" if self.below_dl else text


@dataclass(slots=True, unsafe_hash=True)
class Message:
    """A message as received, before decoding: what the raw write-ahead log holds (a value)."""

    topic: str
    payload: bytes
    received_ns: int
    format: str | None = None
