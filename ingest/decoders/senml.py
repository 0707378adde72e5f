"""SenML (RFC 8428) JSON packs: one record per reading, names carrying station and parameter.

    [{"bn": "cq-cj-cuntan/", "bt": 1795564800, "n": "ph", "v": 7.6},
     {"n": "temp", "u": "Cel", "v": 18.2}, {"n": "do", "u": "mg/L", "v": 8.1, "t": 60}]

Base fields resolve as RFC 8428 §4.6 says: bn + n is the name, bt + t the time, u else bu the
unit, bv + v the value (bv alone when the record has no value); a base field applies from its
record to the next record that sets it again. The resolved name gives the station and parameter:
`<station_id>/<parameter>` (e.g. bn `cq-cj-cuntan/` + n `ph`) or
`urn:dev:ecowatch:<station_id>:<parameter>`. Parameter names are our codes (ph, do, temp...);
other names go through as sent, so validation rejects them as unknown with the name in the reason.
Units go through as sent (`Cel`, `S/m`, `m3/s`...); validation converts them.

Kind of value: values other than real-time name their kind between station and parameter,
`<station_id>/<kind>/<parameter>` or `urn:dev:ecowatch:<station_id>:<kind>:<parameter>`, with
kind one of `realtime`, `minute`, `hourly`, `daily`, `lab` (`ingest.model.DataKind`); the base
name carries it for a whole pack (bn `cq-cj-cuntan/hourly/`). In SenML a name is a series, so an
hourly mean is another sensor's value, as it is in our stores: a SenML tool that knows nothing of
ecowatch keeps the kinds apart too. A name with an unknown kind names no station (MALFORMED).

Below the detection limit: the string value `"vs": "0.01L"` (the limit, then `L`, as loggers and
laboratories write it), in the unit `u` else `bu` (bv does not apply: it adds to numeric values
only). The reading is marked below the detection limit with the limit as its value. A string
value, not a number with an extension field: an extension a receiver does not know may be ignored
(RFC 8428 §4.4), which would turn the limit into a measurement, and a must-understand `..._`
field would need registering; a SenML tool that does not know the convention sees a string, never
a number. Any other `vs` is NOT_A_NUMBER.

Decoders have no clock, so times relative to "now" (below 2**28 s, including a record with no
time at all) are rejected per record as BAD_TIMESTAMP: send absolute times (seconds since 1970).
Only numeric values (`v`) and below-detection strings (`vs`, above) are readings; other string,
boolean and data values and sums are rejected per record as NOT_A_NUMBER, as is a name that
names no station. What changes the meaning of the whole
pack rejects it whole (MALFORMED): a base field of the wrong type (later records would resolve
wrongly), a must-understand field (name ending in `_`, RFC 8428 §4.4), a version above 10 or
versions differing between records. Readings carry flag N: SenML has no data flags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, NamedTuple

import orjson

from ingest.decoders.shown import shown
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import DataKind, Decoded, ItemRejection, RawReading, parse_below_dl

# A logger that packs more records than this in one message is misconfigured or hostile.
MAX_RECORDS_PER_PACK: Final = 1000
# RFC 8428 §4.5.3: times below 2**28 are relative to "now", which a pure decoder cannot know.
RELATIVE_TIME_LIMIT: Final = 2**28
# RFC 8428 §4.4: the format version this decoder implements; packs of a newer one MUST NOT be used.
SENML_VERSION: Final = 10
URN_PREFIX: Final = "urn:dev:ecowatch:"
# RFC 8428 §4.5.1: the characters of a resolved name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_VALUE_FIELDS: Final = ("v", "vs", "vb", "vd")
_KINDS: Final = frozenset(kind.value for kind in DataKind)
_KINDS_SHOWN: Final = ", ".join(kind.value for kind in DataKind)
_BASE_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "bn": (str,),
    "bt": (int, float),
    "bu": (str,),
    "bv": (int, float),
    "bs": (int, float),
    "bver": (int,),
}


class _Refusal(NamedTuple):
    """Why a record gives no reading."""

    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class _Base:
    """The base fields in force at a record."""

    name: str = ""
    time: float = 0.0
    unit: str | None = None
    value: float | None = None
    version: int = SENML_VERSION


class SenMLDecoder:
    name: ClassVar[str] = "senml"

    def decode(self, topic: str, payload: bytes) -> Decoded:  # noqa: ARG002 - the names carry the station
        try:
            pack = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RejectedPayload(RejectReason.MALFORMED, f"not JSON: {exc}") from None
        if not isinstance(pack, list) or not pack:
            raise RejectedPayload(RejectReason.MALFORMED, "a SenML pack is a non-empty JSON array of records")
        if len(pack) > MAX_RECORDS_PER_PACK:
            raise RejectedPayload(
                RejectReason.TOO_LARGE, f"{len(pack)} records; a pack holds at most {MAX_RECORDS_PER_PACK}"
            )
        decoded = Decoded()
        base = _Base()
        for index, record in enumerate(pack):
            if not isinstance(record, dict):
                decoded.rejections.append(
                    ItemRejection(RejectReason.MALFORMED, f"record {index}: not a JSON object")
                )
                continue
            base = _apply_base(record, base, index)
            reading = _read_record(record, base, index)
            if isinstance(reading, ItemRejection):
                decoded.rejections.append(reading)
            else:
                decoded.readings.append(reading)
        return decoded


def _apply_base(record: dict[str, Any], base: _Base, index: int) -> _Base:
    for key in record:
        if key.endswith("_"):
            raise RejectedPayload(
                RejectReason.MALFORMED,
                f"record {index}: must-understand field {shown(key, 20)} is not supported",
            )
    present = [key for key in _BASE_TYPES if key in record]
    if not present:
        return base
    for key in present:
        value = record[key]
        if not isinstance(value, _BASE_TYPES[key]) or isinstance(value, bool):
            raise RejectedPayload(
                RejectReason.MALFORMED, f"record {index}: base field {key} is {shown(value, 30)}"
            )
    version = record.get("bver", base.version)
    if not 1 <= version <= SENML_VERSION:
        raise RejectedPayload(
            RejectReason.MALFORMED, f"SenML version {version} is not supported (up to {SENML_VERSION})"
        )
    if index > 0 and version != base.version:
        raise RejectedPayload(
            RejectReason.MALFORMED, f"record {index}: version {version} differs from the pack's"
        )
    return _Base(
        name=record.get("bn", base.name),
        time=float(record.get("bt", base.time)),
        unit=record.get("bu", base.unit),
        value=float(record["bv"]) if "bv" in record else base.value,
        version=version,
    )


def _read_record(record: dict[str, Any], base: _Base, index: int) -> RawReading | ItemRejection:
    where = f"record {index}"
    name = record.get("n", "")
    if not isinstance(name, str):
        return ItemRejection(RejectReason.MALFORMED, f"{where}: n is {shown(name, 30)}, not a string")
    full_name = base.name + name
    station_id, kind, parameter = _split_name(full_name)
    if station_id is None or parameter is None:
        return ItemRejection(
            RejectReason.MALFORMED,
            f"{where}: name {shown(full_name, 80)} names no station: use '<station_id>/<parameter>' "
            f"or '{URN_PREFIX}<station_id>:<parameter>', with '<kind>' ({_KINDS_SHOWN}) before "
            "'<parameter>' for values other than real-time",
        )

    def reject(reason: RejectReason, detail: str) -> ItemRejection:
        return ItemRejection(reason, f"{where} ({full_name}): {detail}", station_id, parameter)

    unit = record.get("u", base.unit)
    if unit is not None and not isinstance(unit, str):
        return reject(RejectReason.MALFORMED, f"u is {shown(unit, 30)}, not a string")
    value = _value(record, base)
    if isinstance(value, _Refusal):
        return reject(value.reason, value.detail)
    ts = _time(record, base)
    if isinstance(ts, str):
        return reject(RejectReason.BAD_TIMESTAMP, ts)
    return RawReading(parameter, value[0], ts, station_id, unit=unit, below_dl=value[1], kind=kind)


def _split_name(name: str) -> tuple[str | None, str, str | None]:
    """(station, kind, parameter) of a resolved name; None for the station when it names none."""
    if _NAME.fullmatch(name) is None:
        return None, "", None
    urn = name.startswith(URN_PREFIX)
    parts = name[len(URN_PREFIX) :].split(":") if urn else name.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        return None, "", None
    if len(parts) == 2:
        return parts[0], DataKind.REALTIME.value, parts[1]
    if parts[1] not in _KINDS:
        return None, "", None
    return parts[0], parts[1], parts[2]


def _value(record: dict[str, Any], base: _Base) -> tuple[float, bool] | _Refusal:
    """(the resolved numeric value, False), (the detection limit, True) for a below-detection
    `vs`, or why there is no value."""
    present = [key for key in _VALUE_FIELDS if key in record]
    if len(present) > 1:
        return _Refusal(RejectReason.MALFORMED, f"more than one value field ({', '.join(present)})")
    if not present:
        if base.value is not None:
            return base.value, False  # RFC 8428 §4.5.4: a missing value counts as zero, added to bv
        return _Refusal(RejectReason.NOT_A_NUMBER, "a sum, not a value" if "s" in record else "no value")
    raw = record[present[0]]
    if present[0] == "vs" and isinstance(raw, str):
        limit = parse_below_dl(raw)
        if limit is not None:
            return limit, True
    if present[0] != "v" or isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return _Refusal(RejectReason.NOT_A_NUMBER, f"{present[0]}={shown(raw, 30)} is not a numeric value")
    value = float(raw) + (base.value or 0.0)
    if not math.isfinite(value):
        return _Refusal(RejectReason.NOT_A_NUMBER, f"v={shown(raw, 30)} + bv is not finite")
    return value, False


def _time(record: dict[str, Any], base: _Base) -> datetime | str:
    """The resolved absolute time, or why there is none."""
    offset = record.get("t", 0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)):
        return f"t={shown(offset, 30)} is not a number"
    seconds = base.time + float(offset)
    if not math.isfinite(seconds):
        return "the time is not finite"
    if seconds < RELATIVE_TIME_LIMIT:
        return (
            f"time {seconds:g} is relative to 'now' (below 2**28 s), which the decoder cannot resolve; "
            "send absolute times (seconds since 1970)"
        )
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"time {seconds:g} s is out of range"


def encode_senml(
    station_id: str,
    ts: datetime,
    readings: Mapping[str, tuple[float | str, str | None]],
    *,
    kind: DataKind | str | None = None,
) -> bytes:
    """A pack of `readings` (our code -> (value, unit or None)) with bn `<station_id>/` (or
    `<station_id>/<kind>/`) and bt `ts`; a string value (`"0.01L"`) is sent as `vs`."""
    if ts.tzinfo is None:
        raise ValueError("SenML times are absolute: give an aware datetime")
    if not readings:
        raise ValueError("a SenML pack needs at least one reading")
    seconds = ts.timestamp()
    base_name = f"{station_id}/" if kind is None else f"{station_id}/{kind}/"
    records: list[dict[str, Any]] = [
        {"bn": base_name, "bt": int(seconds) if seconds.is_integer() else seconds}
    ]
    for code, (value, unit) in readings.items():
        if isinstance(value, str):
            record: dict[str, Any] = {"n": code, "vs": value}
        elif not math.isfinite(value):
            raise ValueError(f"{code}: {value} cannot be sent in SenML JSON")
        else:
            record = {"n": code, "v": value}
        if unit is not None:
            record["u"] = unit
        records.append(record)
    # The base fields ride on the first reading's record rather than on a record of their own.
    records[:2] = [records[0] | records[1]]
    return orjson.dumps(records)
