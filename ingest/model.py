"""The values that flow through ecowatch: raw readings from decoders, readings, rejections.

A decoder turns one message into a `Decoded`: `RawReading`s (not yet checked against the
registry, catalogue or clock) and `ItemRejection`s for parts it could not read. Validation turns a
`RawReading` into a `Reading` (canonical parameter code and unit, aware UTC time, station tags) or
an `ItemRejection`. Everything here is a value; nothing does I/O.

The values built once per reading or message (`RawReading`, `Reading`, `Message`, `Decoded`) are
slotted but not frozen: a frozen dataclass sets each field through `object.__setattr__`, which
made building one six times slower and was a fifth of the processor's CPU per message. They are
still treated as immutable: decoded readings are shared between consumers, so nothing may assign
to their fields; `RawReading`, `Reading` and `Message` keep the field-wise hash a frozen value has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ingest.errors import RejectReason


class DataFlag(StrEnum):
    """Data flags of HJ 212-2017 (`code-Flag`), which our JSON schema uses too."""

    NORMAL = "N"
    STOPPED = "F"
    MAINTENANCE = "M"
    MANUAL = "S"
    FAULT = "D"
    CALIBRATION = "C"
    OVER_RANGE = "T"
    COMMS = "B"


# HJ 212-2017, data flags: only normal values take part in compliance assessment.
# Flagged values are still stored, with their flag, so operators see them.
COMPLIANCE_FLAGS: frozenset[DataFlag] = frozenset({DataFlag.NORMAL})
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

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=UTC)

    @property
    def counts_for_compliance(self) -> bool:
        return self.flag in COMPLIANCE_FLAGS


@dataclass(slots=True, unsafe_hash=True)
class Message:
    """A message as received, before decoding: what the raw write-ahead log holds (a value)."""

    topic: str
    payload: bytes
    received_ns: int
    format: str | None = None
