"""HJ 212 data uploads to raw readings, and back (for the simulator and tests).

The encoder takes canonical values (the catalogue's units) and writes each in the unit of the code
it travels under (`config/hj212/codes.yaml`): Pb 0.01 mg/L is `w20120-Rtd=10.0` (µg/L), which
the decoder reads back, with the code's unit, as 0.01 mg/L after validation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar, Final
from zoneinfo import ZoneInfo

from pydantic import Field

from config.hj212 import CodeTable, DataCommand, default_code_table
from config.parameters import Parameter, default_catalogue
from config.types import StrictModel, TimeZoneName
from ingest.decoders.hj212.crc import CrcChoice, CrcVariant
from ingest.decoders.hj212.packet import (
    FLAG_VERSION_2017,
    FLAG_WANTS_RESPONSE,
    LENGTH_FIELD_LIMIT,
    MAX_SEGMENT_LENGTH,
    TIME_SHIFT_FIELD,
    Packet,
    encode_packet,
    parse_packet,
)
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import DataFlag, DataKind, Decoded, ItemRejection, RawReading, parse_below_dl

# HJ 212 DataTime is the station's local time; Chinese stations keep Beijing time.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
# Decimal numbers as HJ 212 writes them (N3.1 and the like); no `nan`, `inf`, `1_0` or spaces.
# Possessive quantifiers (`++`, `*+`, `?+`) never give back what they took, so a long digit run
# that fails to match costs linear time; `[0-9]+\.?[0-9]*` split a failing run every possible
# way (quadratic: 4 000 digits and a letter took ~0.5 s).
_NUMBER = re.compile(r"[+-]?+(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+")
_DATA_TIME = re.compile(r"[0-9]{14}")
# The gateway's `EcowatchTimeShift`: whole seconds, at most ten digits (317 years either way).
_SHIFT = re.compile(r"[+-]?[0-9]{1,10}")
# HJ/T 212-2005 data flags that HJ 212-2017 dropped, read as the nearest 2017 flag: P, power
# failure (电源故障) of the analyser, is a fault of the instrument (D), not a measurement.
_LEGACY_FLAGS: Final[Mapping[str, DataFlag]] = {"P": DataFlag.FAULT}
_FLAGS: Final[Mapping[str, DataFlag]] = {**{flag.value: flag for flag in DataFlag}, **_LEGACY_FLAGS}


class HJ212Config(StrictModel):
    """Options of the HJ 212 decoder."""

    crc: CrcVariant | tuple[CrcVariant, ...] = Field(
        "hj212",
        description="CRC variants accepted besides the standard's: `modbus` (the Modbus CRC-16 some "
        "loggers send), `modbus_swapped` (the same, low byte first), or a list of both.",
    )
    timezone: TimeZoneName = Field(
        DEFAULT_TIMEZONE, description="IANA zone of DataTime and SampleTime (station local time)."
    )
    max_segment_length: int = Field(
        MAX_SEGMENT_LENGTH,
        ge=0,
        le=LENGTH_FIELD_LIMIT,
        description="Longest data segment accepted; HJ 212-2017 allows 1024, some loggers send more.",
    )


@dataclass(slots=True)
class _Fields:
    """What the CP of a data upload holds: DataTime values, time shifts, each pollutant's fields."""

    data_times: list[str] = field(default_factory=list)
    shifts: list[str] = field(default_factory=list)
    pollutants: dict[str, dict[str, str]] = field(default_factory=dict)
    repeated: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Value:
    value: float
    flag: DataFlag
    below_dl: bool
    sample_time: datetime | None


class HJ212Decoder:
    name: ClassVar[str] = "hj212"

    def __init__(
        self,
        *,
        crc: CrcChoice = "hj212",
        timezone: str = DEFAULT_TIMEZONE,
        max_segment_length: int = MAX_SEGMENT_LENGTH,
        codes: CodeTable | None = None,
    ) -> None:
        self.config = HJ212Config(
            crc=crc if isinstance(crc, str) else tuple(crc),
            timezone=timezone,
            max_segment_length=max_segment_length,
        )
        self._codes = codes if codes is not None else default_code_table()

    def decode(self, topic: str, payload: bytes) -> Decoded:  # noqa: ARG002 - the MN names the station
        packet = parse_packet(payload, crc=self.config.crc, max_segment_length=self.config.max_segment_length)
        return self.decode_packet(packet)

    def decode_packet(self, packet: Packet) -> Decoded:
        """The readings of a parsed data upload (the TCP gateway parses once, answers, then decodes)."""
        command = self._codes.data_commands.get(packet.cn)
        if command is None:
            known = ", ".join(sorted(self._codes.data_commands))
            raise RejectedPayload(
                RejectReason.UNSUPPORTED_COMMAND,
                f"CN={packet.cn} carries no readings (data commands: {known})",
            )
        found = _collect(packet)
        ts = _data_time(found.data_times)
        shift = _time_shift(found.shifts)
        if not found.pollutants:
            raise RejectedPayload(RejectReason.MALFORMED, "the CP holds no pollutant fields")
        decoded = Decoded()
        for code, fields in found.pollutants.items():
            pollutant = self._codes.lookup(code)
            parameter = code if pollutant is None else pollutant.parameter
            read = (
                ItemRejection(RejectReason.MALFORMED, f"{code}: a field is given twice", parameter=parameter)
                if code in found.repeated
                else _read(code, parameter, fields, command)
            )
            if isinstance(read, ItemRejection):
                decoded.rejections.append(read)
                continue
            reading_ts = read.sample_time if read.sample_time is not None else ts
            if shift:
                try:
                    reading_ts += shift
                except OverflowError:
                    detail = f"{code}: {reading_ts.isoformat()} shifted by {shift} leaves the calendar"
                    decoded.rejections.append(
                        ItemRejection(RejectReason.BAD_TIMESTAMP, detail, parameter=parameter)
                    )
                    continue
            decoded.readings.append(
                RawReading(
                    parameter=parameter,
                    value=read.value,
                    ts=reading_ts,
                    mn=packet.mn,
                    unit=None if pollutant is None else pollutant.unit,
                    flag=read.flag,
                    assume_tz=self.config.timezone,
                    password=packet.pw,
                    below_dl=read.below_dl,
                    kind=DataKind(command.kind),
                    time_corrected=bool(shift),
                )
            )
        return decoded


def _collect(packet: Packet) -> _Fields:
    """DataTime values, time shifts, the fields of each pollutant (`code-Suffix=value`), repeats."""
    found = _Fields()
    for group in packet.cp:
        for key, value in group:
            if key == "DataTime":
                found.data_times.append(value)
                continue
            if key == TIME_SHIFT_FIELD:
                found.shifts.append(value)
                continue
            code, dash, suffix = key.rpartition("-")
            if not dash or not code:
                continue  # other CP fields (RtdInterval, SystemTime...) carry no readings
            fields = found.pollutants.setdefault(code, {})
            if suffix in fields:
                found.repeated.add(code)
            fields[suffix] = value
    return found


def _parse_time(text: str) -> datetime | None:
    """A `YYYYMMDDhhmmss` time (naive, station local), or None when it is not one."""
    if _DATA_TIME.fullmatch(text) is None:
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
        )
    except ValueError:
        return None


def _data_time(values: list[str]) -> datetime:
    if not values:
        raise RejectedPayload(RejectReason.BAD_TIMESTAMP, "the CP has no DataTime")
    if len(set(values)) > 1:
        raise RejectedPayload(
            RejectReason.BAD_TIMESTAMP,
            f"the CP gives DataTime different values: {', '.join(sorted(set(values)))!s:.60}",
        )
    parsed = _parse_time(values[0])
    if parsed is None:
        raise RejectedPayload(
            RejectReason.BAD_TIMESTAMP, f"DataTime={values[0]!r:.30} is not a YYYYMMDDhhmmss time"
        )
    return parsed


def _time_shift(values: list[str]) -> timedelta:
    """The gateway's shift of the packet's times (zero when it left none)."""
    if not values:
        return timedelta(0)
    if len(values) > 1:
        raise RejectedPayload(RejectReason.BAD_TIMESTAMP, f"{TIME_SHIFT_FIELD} is given twice")
    if _SHIFT.fullmatch(values[0]) is None:
        raise RejectedPayload(
            RejectReason.BAD_TIMESTAMP, f"{TIME_SHIFT_FIELD}={values[0]!r:.20} is not whole seconds"
        )
    return timedelta(seconds=int(values[0]))


def _read(
    code: str, parameter: str, fields: Mapping[str, str], command: DataCommand
) -> _Value | ItemRejection:
    key = f"{code}-{command.value_field}"
    raw = fields.get(command.value_field)
    if raw is None:
        detail = f"{code}: no {key} in {command.name} (CN={command.cn})"
        return ItemRejection(RejectReason.MALFORMED, detail, parameter=parameter)
    # HJ/T 91-2002: a result below the method's detection limit is the limit and `L` (`0.01L`).
    limit = parse_below_dl(raw) if raw.endswith("L") else None  # the test spares plain values a regex
    if limit is not None:
        value, below_dl = limit, True
    elif _NUMBER.fullmatch(raw) is not None and math.isfinite(value := float(raw)):
        below_dl = False
    else:
        return ItemRejection(
            RejectReason.NOT_A_NUMBER, f"{key}={raw!r:.30} is not a number", parameter=parameter
        )
    flag_text = fields.get("Flag", DataFlag.NORMAL)
    flag = _FLAGS.get(flag_text)
    if flag is None:
        detail = (
            f"{code}-Flag={flag_text!r:.10} is not an HJ 212 data flag ({' '.join(DataFlag)}, or 2005's P)"
        )
        return ItemRejection(RejectReason.UNKNOWN_FLAG, detail, parameter=parameter)
    sample_text = fields.get("SampleTime")
    sample_time = None if sample_text is None else _parse_time(sample_text)
    if sample_text is not None and sample_time is None:
        detail = f"{code}-SampleTime={sample_text!r:.30} is not a YYYYMMDDhhmmss time"
        return ItemRejection(RejectReason.BAD_TIMESTAMP, detail, parameter=parameter)
    return _Value(value, flag, below_dl, sample_time)


def encode_data_packet(
    mn: str,
    pw: str,
    cn: str,
    data_time: datetime,
    values: Mapping[str, tuple[float, str]],
    *,
    qn: str | None = None,
    st: str = "21",
    want_response: bool = False,
    crc: CrcVariant = "hj212",
    timezone: str = DEFAULT_TIMEZONE,
    codes: CodeTable | None = None,
    catalogue: Mapping[str, Parameter] | None = None,
) -> bytes:
    """A data upload of `values` (our parameter code -> (canonical value, flag)) at `data_time`.

    Parameters map to 2017 codes through the code table, each value converted from the catalogue's
    unit to the unit of its code (mg/L to µg/L for the metals); other codes are sent as given, the
    value unchanged. An aware `data_time` is written in `timezone`; a naive one as it is. QN
    defaults to DataTime + 000 ms.
    """
    table = codes if codes is not None else default_code_table()
    parameters = catalogue if catalogue is not None else default_catalogue()
    command = table.data_commands.get(cn)
    if command is None:
        raise ValueError(f"CN={cn} is not a data command ({', '.join(sorted(table.data_commands))})")
    if data_time.tzinfo is not None:
        data_time = data_time.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    stamp = (
        f"{data_time.year:04d}{data_time.month:02d}{data_time.day:02d}"
        f"{data_time.hour:02d}{data_time.minute:02d}{data_time.second:02d}"
    )
    groups: list[Mapping[str, str]] = [{"DataTime": stamp}]
    for parameter, (value, flag) in values.items():
        pollutant = table.by_parameter.get(parameter)
        code = parameter if pollutant is None else pollutant.code
        sent = value if pollutant is None else _in_code_unit(parameters, parameter, value, pollutant.unit)
        groups.append({f"{code}-{command.value_field}": _format_number(sent), f"{code}-Flag": str(flag)})
    flag_field = FLAG_VERSION_2017 | (FLAG_WANTS_RESPONSE if want_response else 0)
    return encode_packet(
        qn=qn if qn is not None else stamp + "000",
        st=st,
        cn=cn,
        pw=pw,
        mn=mn,
        flag=flag_field,
        cp=groups,
        crc=crc,
    )


def _in_code_unit(parameters: Mapping[str, Parameter], code: str, value: float, unit: str | None) -> float:
    """A canonical value of our parameter `code` written in `unit`, the unit of its HJ 212 code."""
    parameter = parameters.get(code)
    if parameter is None:
        raise ValueError(f"{code} is in the HJ 212 code table but not in the parameter catalogue")
    if not math.isfinite(value):
        return value  # `_format_number` refuses it with the value in the message
    converted = parameter.from_canonical(value, unit)
    if converted is None:
        raise ValueError(f"{code}: the catalogue cannot convert {parameter.unit} to {unit}, its HJ 212 unit")
    return converted


def _format_number(value: float) -> str:
    # Positional notation (HJ 212 has no exponents) of the shortest repr, so the value reads back exactly.
    if not math.isfinite(value):
        raise ValueError(f"{value} cannot be sent in HJ 212")
    return format(Decimal(repr(float(value))), "f")
