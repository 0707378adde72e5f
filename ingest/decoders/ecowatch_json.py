"""ecowatch JSON schema v1: one station, one time, several parameters.

    {"station_id": "cq-cj-cuntan", "ts": "2026-11-25T08:00:00+08:00",
     "readings": {"ph": 7.6, "do": {"value": 8.1, "unit": "mg/L", "flag": "N"}}}

A bare number is a value in the parameter's canonical unit with flag N. The document may also be
a JSON array of such objects (a batch from one station's logger). The envelope is checked with
pydantic; each reading is read on its own, so one bad value rejects that reading, not the message.
Well-formed documents take a plain-dict fast path that accepts exactly what the models accept in
the common shapes (ISO 8601 `ts`, integer `v`); anything else goes through pydantic, which also
words the rejection.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from math import isfinite
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from ingest.decoders.shown import shown
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import Decoded, ItemRejection, RawReading

# A logger that batches more than this in one message is misconfigured or hostile.
MAX_DOCUMENTS_PER_MESSAGE = 1000
MAX_READINGS_PER_DOCUMENT = 256
# The timestamps the fast path parses itself; pydantic reads (or refuses) every other form.
_ISO_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")
_ENVELOPE_KEYS = frozenset({"station_id", "ts", "readings", "v"})
_OBJECT_KEYS = frozenset({"value", "unit", "flag"})


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station_id: str = Field(min_length=1, max_length=64)
    ts: datetime
    readings: dict[str, Any] = Field(min_length=1, max_length=MAX_READINGS_PER_DOCUMENT)
    v: int | None = Field(None, description="Schema version; 1 when given.")


class _ReadingObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: StrictFloat | StrictInt
    unit: str | None = Field(None, max_length=16)
    flag: str = Field("N", min_length=1, max_length=2)


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
            station_id, ts, readings, version = fast
        else:
            try:
                envelope = _Envelope.model_validate(item)
            except ValidationError as exc:
                detail = where + _first_error(exc)
                if index is None:
                    raise RejectedPayload(RejectReason.MALFORMED, detail) from None
                out.rejections.append(ItemRejection(RejectReason.MALFORMED, detail))
                return
            station_id, ts, readings, version = (
                envelope.station_id,
                envelope.ts,
                envelope.readings,
                envelope.v,
            )
        if version not in (None, 1):
            out.rejections.append(
                ItemRejection(RejectReason.MALFORMED, f"{where}unsupported schema version {version}")
            )
            return
        append = out.readings.append
        for code, raw in readings.items():
            # The common case first: a bare number in the canonical unit, flag N.
            if type(raw) is float and isfinite(raw):
                # Positional: a dataclass takes keywords at twice the cost, eight times a message.
                append(RawReading(code, raw, ts, station_id, None, None, "N"))
                continue
            reading = _read_value(code, raw)
            if isinstance(reading, ItemRejection):
                out.rejections.append(ItemRejection(reading.reason, where + reading.detail, station_id, code))
                continue
            value, unit, flag = reading
            append(RawReading(code, value, ts, station_id, None, unit, flag))


def _fast_envelope(item: object) -> tuple[str, datetime, dict[str, Any], int | None] | None:
    """The envelope's fields when the document is in a common well-formed shape, else None."""
    if type(item) is not dict or not item.keys() <= _ENVELOPE_KEYS:
        return None
    station_id, ts, readings, version = (
        item.get("station_id"),
        item.get("ts"),
        item.get("readings"),
        item.get("v"),
    )
    if (
        type(station_id) is not str
        or not 1 <= len(station_id) <= 64
        or type(ts) is not str
        or type(readings) is not dict
        or not 1 <= len(readings) <= MAX_READINGS_PER_DOCUMENT
        or (version is not None and type(version) is not int)
    ):
        return None
    moment = _parse_ts(ts)
    if moment is None:
        return None
    return station_id, moment, readings, version


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


def _read_value(code: str, raw: object) -> tuple[float, str | None, str] | ItemRejection:
    # bool is an int in Python but never a measurement.
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value, unit, flag = float(raw), None, "N"
    elif isinstance(raw, dict):
        fast = _fast_object(raw)
        if fast is not None:
            value, unit, flag = fast
        else:
            try:
                obj = _ReadingObject.model_validate(raw)
            except ValidationError as exc:
                return ItemRejection(RejectReason.NOT_A_NUMBER, f"{code}: {_first_error(exc)}")
            value, unit, flag = float(obj.value), obj.unit, obj.flag
    else:
        return ItemRejection(
            RejectReason.NOT_A_NUMBER, f"{code}: expected a number or an object, got {shown(raw, 40)}"
        )
    if not isfinite(value):
        return ItemRejection(RejectReason.NOT_A_NUMBER, f"{code}: value is not finite")
    return value, unit, flag


def _fast_object(raw: dict[str, Any]) -> tuple[float, str | None, str] | None:
    """A reading object's fields when they are plainly valid, else None (pydantic decides)."""
    if not raw.keys() <= _OBJECT_KEYS:
        return None
    value, unit, flag = raw.get("value"), raw.get("unit"), raw.get("flag", "N")
    if (
        type(value) not in (int, float)
        or (unit is not None and (type(unit) is not str or len(unit) > 16))
        or type(flag) is not str
        or not 1 <= len(flag) <= 2
    ):
        return None
    assert isinstance(value, (int, float))
    return float(value), unit, flag


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{location}: {error['msg']}"


def encode(station_id: str, ts: datetime, readings: dict[str, float | dict[str, Any]]) -> bytes:
    """One v1 document; the simulator and tests use it to speak our schema."""
    return orjson.dumps({"station_id": station_id, "ts": ts.isoformat(), "readings": readings})
