"""ecowatch JSON schema v1: one station, one time, several parameters.

    {"station_id": "cq-cj-cuntan", "ts": "2026-11-25T08:00:00+08:00",
     "readings": {"ph": 7.6, "do": {"value": 8.1, "unit": "mg/L", "flag": "N"}}}

A bare number is a value in the parameter's canonical unit with flag N. A reading object carries
`value` and optionally `unit` (else the canonical unit), `flag` (an HJ 212 data flag, else N) and
`below_dl`. The document may also be a JSON array of such objects (a batch from one station's
logger). The envelope is checked with pydantic; each reading is read on its own, so one bad value
rejects that reading, not the message.

Below the detection limit: the limit followed by `L`, as loggers and laboratories write it, as a
bare string (`"nh3n": "0.01L"`) or as an object's value (`{"value": "10L", "unit": "ug/L"}`), or
the limit as a number with `"below_dl": true` (`{"value": 0.01, "below_dl": true}`). Either way
the reading is marked below the detection limit with the limit as its value, and is stored so,
never as a measurement. `"below_dl": false` with an `L` value contradicts itself and is refused;
any other string value is not a number.

Kind of value: an optional top-level `"kind"` says what every value of the document is:
`realtime` (the default), `minute`, `hourly`, `daily` (means over the period starting at `ts`, as
HJ 212's 2051/2061/2031 uploads) or `lab` (a laboratory result for a sample taken at `ts`). Kinds
other than real-time are stored as series of their own (a `data_kind` tag), so an hourly mean
never overwrites the real-time value of the same time. An unknown kind rejects the document.

    {"station_id": "cq-cj-cuntan", "ts": "2026-11-25T08:00:00+08:00", "kind": "lab",
     "readings": {"nh3n": "0.025L", "tp": {"value": 0.01, "below_dl": true}, "codmn": 2.1}}

Well-formed documents take a plain-dict fast path that accepts exactly what the models accept in
the common shapes (ISO 8601 `ts`, integer `v`); anything else goes through pydantic, which also
words the rejection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from math import isfinite
from typing import Any, ClassVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from ingest.decoders.shown import shown
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import DataKind, Decoded, ItemRejection, RawReading, parse_below_dl

# A logger that batches more than this in one message is misconfigured or hostile.
MAX_DOCUMENTS_PER_MESSAGE = 1000
MAX_READINGS_PER_DOCUMENT = 256
# The timestamps the fast path parses itself; pydantic reads (or refuses) every other form.
_ISO_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")
_ENVELOPE_KEYS = frozenset({"station_id", "ts", "readings", "v", "kind"})
_OBJECT_KEYS = frozenset({"value", "unit", "flag", "below_dl"})
_KINDS = frozenset(kind.value for kind in DataKind)
_REALTIME = DataKind.REALTIME.value
# (value, unit, flag, below the detection limit) of one reading.
_Value = tuple[float, str | None, str, bool]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station_id: str = Field(min_length=1, max_length=64)
    ts: datetime
    readings: dict[str, Any] = Field(min_length=1, max_length=MAX_READINGS_PER_DOCUMENT)
    v: int | None = Field(None, description="Schema version; 1 when given.")
    kind: DataKind = Field(DataKind.REALTIME, description="The kind of every value of the document.")


class _ReadingObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: StrictFloat | StrictInt | StrictStr
    unit: str | None = Field(None, max_length=16)
    flag: str = Field("N", min_length=1, max_length=2)
    below_dl: StrictBool | None = None


class EcowatchJsonDecoder:
    name: ClassVar[str] = "json"

    def decode(self, topic: str, payload: bytes) -> Decoded:  # noqa: ARG002 - the topic is not needed here
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RejectedPayload(RejectReason.MALFORMED, f"not JSON: {exc}") from None
        decoded = Decoded()
        if not isinstance(document, list):
            self._decode_document(document, None, decoded)
        elif not document or len(document) > MAX_DOCUMENTS_PER_MESSAGE:
            raise RejectedPayload(
                RejectReason.MALFORMED, f"a batch holds 1..{MAX_DOCUMENTS_PER_MESSAGE} documents"
            )
        else:
            several = len(document) > 1
            for index, item in enumerate(document):
                self._decode_document(item, index if several else None, decoded)
        if not decoded.readings and not decoded.rejections:
            raise RejectedPayload(RejectReason.MALFORMED, "no readings")
        return decoded

    def _decode_document(self, item: object, index: int | None, out: Decoded) -> None:
        where = "" if index is None else f"document {index}: "
        fast = _fast_envelope(item)
        if fast is not None:
            station_id, ts, readings, version, kind = fast
        else:
            try:
                envelope = _Envelope.model_validate(item)
            except ValidationError as exc:
                detail = where + _first_error(exc)
                if index is None:
                    raise RejectedPayload(RejectReason.MALFORMED, detail) from None
                out.rejections.append(ItemRejection(RejectReason.MALFORMED, detail))
                return
            station_id, ts, readings, version, kind = (
                envelope.station_id,
                envelope.ts,
                envelope.readings,
                envelope.v,
                envelope.kind.value,
            )
        if version not in (None, 1):
            out.rejections.append(
                ItemRejection(RejectReason.MALFORMED, f"{where}unsupported schema version {version}")
            )
            return
        append = out.readings.append
        realtime = kind == _REALTIME
        for code, raw in readings.items():
            # The common case first: a bare real-time number in the canonical unit, flag N.
            if type(raw) is float and isfinite(raw) and realtime:
                # Positional: a dataclass takes keywords at twice the cost, eight times a message.
                append(RawReading(code, raw, ts, station_id, None, None, "N"))
                continue
            reading = _read_value(code, raw)
            if isinstance(reading, ItemRejection):
                out.rejections.append(ItemRejection(reading.reason, where + reading.detail, station_id, code))
                continue
            value, unit, flag, below_dl = reading
            append(
                RawReading(code, value, ts, station_id, unit=unit, flag=flag, below_dl=below_dl, kind=kind)
            )


def _fast_envelope(item: object) -> tuple[str, datetime, dict[str, Any], int | None, str] | None:
    """The envelope's fields when the document is in a common well-formed shape, else None."""
    if type(item) is not dict or not item.keys() <= _ENVELOPE_KEYS:
        return None
    station_id, ts, readings, version, kind = (
        item.get("station_id"),
        item.get("ts"),
        item.get("readings"),
        item.get("v"),
        item.get("kind", _REALTIME),
    )
    if (
        type(station_id) is not str
        or not 1 <= len(station_id) <= 64
        or type(ts) is not str
        or type(readings) is not dict
        or not 1 <= len(readings) <= MAX_READINGS_PER_DOCUMENT
        or (version is not None and type(version) is not int)
        or type(kind) is not str
        or kind not in _KINDS
    ):
        return None
    moment = _parse_ts(ts)
    if moment is None:
        return None
    return station_id, moment, readings, version, kind


# Loggers report on a schedule, so many messages in a row carry the same time: parse it once.
# The datetimes are immutable and may be shared; the bound keeps sender-chosen strings in check.
@lru_cache(maxsize=4096)
def _parse_ts(ts: str) -> datetime | None:
    """The time of an ISO 8601 string in the forms the fast path reads, else None."""
    if _ISO_TS.fullmatch(ts) is None:
        return None
    try:
        return datetime.fromisoformat(ts)
    except ValueError:  # out of range fields (month 13): pydantic words the error
        return None


def _read_value(code: str, raw: object) -> _Value | ItemRejection:
    # bool is an int in Python but never a measurement.
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        number: float | str = float(raw)
        unit, flag, below_dl = None, "N", None
    elif isinstance(raw, str):
        number, unit, flag, below_dl = raw, None, "N", None
    elif isinstance(raw, dict):
        fast = _fast_object(raw)
        if fast is not None:
            number, unit, flag, below_dl = fast
        else:
            try:
                obj = _ReadingObject.model_validate(raw)
            except ValidationError as exc:
                return ItemRejection(RejectReason.NOT_A_NUMBER, f"{code}: {_first_error(exc)}")
            number = obj.value if isinstance(obj.value, str) else float(obj.value)
            unit, flag, below_dl = obj.unit, obj.flag, obj.below_dl
    else:
        return ItemRejection(
            RejectReason.NOT_A_NUMBER, f"{code}: expected a number or an object, got {shown(raw, 40)}"
        )
    if isinstance(number, str):
        # Only a below-detection text is a string value: the limit, then `L`.
        limit = parse_below_dl(number)
        if limit is None:
            return ItemRejection(
                RejectReason.NOT_A_NUMBER,
                f"{code}: {shown(number, 40)} is neither a number nor a detection limit like '0.01L'",
            )
        if below_dl is False:
            return ItemRejection(
                RejectReason.NOT_A_NUMBER,
                f"{code}: {shown(number, 40)} is below the detection limit, yet below_dl is false",
            )
        number, below_dl = limit, True
    if not isfinite(number):
        return ItemRejection(RejectReason.NOT_A_NUMBER, f"{code}: value is not finite")
    return number, unit, flag, bool(below_dl)


def _fast_object(raw: dict[str, Any]) -> tuple[float | str, str | None, str, bool | None] | None:
    """A reading object's fields when they are plainly valid, else None (pydantic decides)."""
    if not raw.keys() <= _OBJECT_KEYS:
        return None
    value, unit, flag = raw.get("value"), raw.get("unit"), raw.get("flag", "N")
    below_dl = raw.get("below_dl")
    if (
        type(value) not in (int, float, str)
        or (unit is not None and (type(unit) is not str or len(unit) > 16))
        or type(flag) is not str
        or not 1 <= len(flag) <= 2
        or (below_dl is not None and type(below_dl) is not bool)
    ):
        return None
    assert isinstance(value, (int, float, str))
    return value if isinstance(value, str) else float(value), unit, flag, below_dl


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{location}: {error['msg']}"


def encode(
    station_id: str,
    ts: datetime,
    readings: Mapping[str, float | str | dict[str, Any]],
    *,
    kind: DataKind | str | None = None,
) -> bytes:
    """One v1 document (with `"kind"` when given); the simulator and tests use it to speak our schema."""
    document: dict[str, Any] = {"station_id": station_id, "ts": ts.isoformat(), "readings": dict(readings)}
    if kind is not None:
        document["kind"] = str(kind)
    return orjson.dumps(document)
