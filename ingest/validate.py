"""Validation: a decoder's raw reading becomes a `Reading` or an `ItemRejection` with its reason.

Checks, in order: the station is in the registry (by id or HJ 212 MN; unknown stations are
rejected unless `unknown_stations: accept`), a station named by the topic agrees with the payload,
the parameter is in the catalogue, the value is finite, the unit converts to the canonical unit,
the converted value lies within the parameter's physical range, the data flag is an HJ 212 flag,
the timestamp is aware (a naive one takes the station's zone, else the configured default, else the
protocol's zone; with none of these it is rejected) and not further in the future than the skew.
Pure: `now_ns` is passed in.

Example:
    validation:
      unknown_stations: reject
      max_payload_bytes: 65536
      max_future_skew: PT5M
      default_timezone: Asia/Shanghai
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from config.parameters import Parameter
from config.registry import Registry, Station, is_valid_station_id
from config.types import StrictModel
from ingest.errors import RejectReason
from ingest.model import DataFlag, ItemRejection, RawReading, Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLAGS = {flag.value: flag for flag in DataFlag}
# Merged tag sets cached per (station, topic tags); a few per station in practice.
MAX_MERGED_TAGS = 65536


class ValidationConfig(StrictModel):
    unknown_stations: Literal["reject", "accept"] = Field(
        "reject",
        description="Readings from stations missing in the registry: dead-letter them, or accept them.",
    )
    max_payload_bytes: int = Field(
        65536, gt=0, le=16 * 2**20, description="Messages above this size are rejected."
    )
    max_future_skew: timedelta = Field(
        timedelta(minutes=5), description="How far ahead of the daemon's clock a timestamp may be."
    )
    default_timezone: str | None = Field(
        None, description="Zone for naive timestamps of stations without their own `timezone`."
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            _zone(value)
        return value


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _identity_problem(
    raw: RawReading, resolved: Station | str, topic_tags: Mapping[str, str]
) -> tuple[RejectReason, str] | None:
    """The sender's claims that do not hold: HJ 212 password, topic versus payload station."""
    station_id = resolved if isinstance(resolved, str) else resolved.id
    if isinstance(resolved, Station) and resolved.hj212_password is not None and raw.mn is not None:
        expected = resolved.hj212_password.get_secret_value().encode()
        if not hmac.compare_digest((raw.password or "").encode(), expected):
            return RejectReason.WRONG_PASSWORD, f"wrong HJ 212 password for MN {raw.mn}"
    topic_station = topic_tags.get("station_id")
    if topic_station is not None and topic_station != station_id:
        return RejectReason.TOPIC_MISMATCH, f"topic names station {topic_station!r}, payload {station_id!r}"
    topic_mn = topic_tags.get("mn")
    if topic_mn is not None and raw.mn is not None and topic_mn != raw.mn:
        return RejectReason.TOPIC_MISMATCH, f"topic names MN {topic_mn!r}, payload {raw.mn!r}"
    return None


def to_ns(ts: datetime) -> int:
    """Exact ns since the epoch of an aware datetime (float timestamps lose the microseconds)."""
    delta = ts - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class Validator:
    def __init__(
        self, config: ValidationConfig, registry: Registry, catalogue: Mapping[str, Parameter]
    ) -> None:
        self._config = config
        self._registry = registry
        self._catalogue = catalogue
        self._max_skew_ns = int(config.max_future_skew.total_seconds() * 1e9)
        self._tags_by_station: dict[str, tuple[tuple[str, str], ...]] = {
            station.id: station.tags() for station in registry.values()
        }
        self._merged_tags: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[tuple[str, str], ...]] = {}

    @property
    def registry(self) -> Registry:
        return self._registry

    def resolve_station(self, raw: RawReading) -> Station | str | ItemRejection:
        """The registered station, the bare id of an accepted unknown station, or a rejection."""
        station = None
        if raw.station_id is not None:
            station = self._registry.get(raw.station_id)
        elif raw.mn is not None:
            station = self._registry.by_mn(raw.mn)
        else:
            return ItemRejection(
                RejectReason.UNKNOWN_STATION, "the message names no station", None, raw.parameter
            )
        if station is not None:
            return station
        name = raw.station_id or raw.mn or ""
        if self._config.unknown_stations == "accept" and is_valid_station_id(name):
            return name
        kind = "station" if raw.station_id is not None else "MN"
        return ItemRejection(
            RejectReason.UNKNOWN_STATION,
            f"{kind} {name!r:.80} is not in the registry",
            name[:64],
            raw.parameter,
        )

    def validate(
        self, raw: RawReading, topic_tags: Mapping[str, str], now_ns: int
    ) -> Reading | ItemRejection:
        resolved = self.resolve_station(raw)
        if isinstance(resolved, ItemRejection):
            return resolved
        station_id = resolved if isinstance(resolved, str) else resolved.id
        code = raw.parameter

        def reject(reason: RejectReason, detail: str) -> ItemRejection:
            return ItemRejection(reason, detail, station_id, code[:32])

        identity_problem = _identity_problem(raw, resolved, topic_tags)
        if identity_problem is not None:
            return reject(*identity_problem)

        parameter = self._catalogue.get(code)
        if parameter is None:
            return reject(RejectReason.UNKNOWN_PARAMETER, f"unknown parameter code {code!r:.40}")
        if not math.isfinite(raw.value):
            return reject(RejectReason.NOT_A_NUMBER, f"{code}: value is not finite")
        value = parameter.to_canonical(raw.value, raw.unit)
        if value is None:
            return reject(
                RejectReason.UNKNOWN_UNIT,
                f"{code}: unit {raw.unit!r:.20} is not accepted (canonical {parameter.unit})",
            )
        if not parameter.in_range(value):
            return reject(
                RejectReason.OUT_OF_RANGE,
                f"{code}={value:g} {parameter.unit} outside the physical range "
                f"[{parameter.min:g}, {parameter.max:g}]",
            )
        flag = _FLAGS.get(raw.flag)
        if flag is None:
            return reject(
                RejectReason.UNKNOWN_FLAG, f"{code}: data flag {raw.flag!r:.8} is not an HJ 212 flag"
            )

        ts = raw.ts
        if ts.tzinfo is None or ts.utcoffset() is None:
            zone_name = (
                (resolved.timezone if isinstance(resolved, Station) else None)
                or self._config.default_timezone
                or raw.assume_tz
            )
            if zone_name is None:
                return reject(RejectReason.NAIVE_TIMESTAMP, f"timestamp {ts.isoformat()} has no time zone")
            ts = ts.replace(tzinfo=_zone(zone_name))
        time_ns = to_ns(ts)
        if time_ns > now_ns + self._max_skew_ns:
            ahead = (time_ns - now_ns) / 1e9
            return reject(
                RejectReason.CLOCK_SKEW, f"timestamp {ts.isoformat()} is {ahead:.0f} s in the future"
            )

        return Reading(
            station_id=station_id,
            measurement=parameter.measurement,
            parameter=code,
            value=value,
            unit=parameter.unit,
            time_ns=time_ns,
            flag=flag,
            tags=self._tags(station_id, topic_tags),
        )

    def _tags(self, station_id: str, topic_tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """The station's registry tags plus the topic's placeholders, merged once per combination."""
        key = (station_id, tuple(topic_tags.items()))
        tags = self._merged_tags.get(key)
        if tags is None:
            tags = self._tags_by_station.get(station_id) or (("station_id", station_id),)
            extra = [(k, v) for k, v in topic_tags.items() if k not in ("station_id", "mn", "district")]
            if extra:
                # Registry tags are authoritative; topic placeholders only add new keys.
                tags = tuple(sorted((dict(extra) | dict(tags)).items()))
            if len(self._merged_tags) >= MAX_MERGED_TAGS:
                self._merged_tags.clear()  # topic placeholders are sender-controlled: bound the cache
            self._merged_tags[key] = tags
        return tags
