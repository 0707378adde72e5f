"""Validation: a decoder's raw reading becomes a `Reading` or an `ItemRejection` with its reason.

Checks, in order: the station is in the registry (by id or HJ 212 MN; unknown stations are
rejected unless `unknown_stations: accept`), a station named by the topic agrees with the payload,
the parameter is in the catalogue, the value is finite, the unit converts to the canonical unit,
the converted value lies within the parameter's physical range, the data flag is an HJ 212 flag,
the timestamp is aware (a naive one takes the station's zone, else the configured default, else the
protocol's zone; with none of these it is rejected), not further in the future than the skew and
not older than `max_past_age`; a time that int64 ns cannot hold (before 1677 or after 2262, the
range of every store's timestamps) is always rejected, whatever the window says.
A message's readings are validated together (`validate_many`), so what they share (station,
identity, tags, time) is worked out once per message. Pure: `now_ns` is passed in.

Below the detection limit: a raw reading marked `below_dl` (`0.01L`) carries the detection limit
as its value; it is converted to the canonical unit and range-checked like a value, and the
reading keeps the mark (`Reading.below_dl`), so no sink stores it as a measurement. A raw
reading whose time the HJ 212 gateway shifted by its logger's clock error (`time_corrected`) is
checked at the shifted time and keeps that mark too (`Reading.time_corrected`).

Values a little below zero: analysers report noise around a blank as small negative values
(NH3-N -0.003 mg/L). For a parameter whose physical range starts at 0, a value in
[-tolerance, 0) is not a measurement of anything but "below what the analyser can detect": by
default (`negative_values.action: below_dl`) it becomes a below-detection reading whose value is
the parameter's configured detection limit (`detection_limits`, canonical unit), or 0 when none
is configured ("below the detection limit, limit not known"), its flag kept. The tolerance is a
fraction of the parameter's physical range (default 1e-4: NH3-N 0.05 mg/L, TP 0.01 mg/L, Hg
0.0001 mg/L, conductivity 10 µS/cm), or an absolute value per parameter (`tolerances`); a value
further below zero is an instrument fault and stays `out_of_range`, as every value does with
`action: reject`. Neither HJ 212-2017 nor the 2011 assessment method says what to do with
negative values (the reference is silent): the rule and its defaults are ours.

Kind of value: a raw reading's `kind` (a `DataKind` value; anything else is `malformed`) other
than real-time adds the tag `data_kind=<kind>` to the reading, so minute, hourly, daily and lab
values are series of their own and never overwrite the real-time value of the same time; real-time
readings get no tag, so their series are what they were before kinds existed. A topic placeholder
named `data_kind` never becomes a tag: the reading's kind decides.

Example:
    validation:
      unknown_stations: reject
      max_payload_bytes: 65536
      max_future_skew: PT5M
      max_past_age: P3650D
      default_timezone: Asia/Shanghai
      workers: 2
      negative_values:
        action: below_dl
        tolerance: 0.0001
        tolerances: {codmn: 0.3}
        detection_limits: {nh3n: 0.025, tp: 0.01}
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from math import isfinite
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import Field, NonNegativeFloat

from config.parameters import Parameter
from config.registry import Registry, Station, is_valid_station_id
from config.times import INT64_NS_MAX, INT64_NS_MIN, ns, to_ns
from config.types import StrictModel, TimeZoneName, known_time_zone
from ingest.errors import RejectReason
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, ItemRejection, RawReading, Reading

Tags = tuple[tuple[str, str], ...]
_FLAGS = {flag.value: flag for flag in DataFlag}
_KINDS = frozenset(kind.value for kind in DataKind)
_KINDS_SHOWN = tuple(kind.value for kind in DataKind)
_REALTIME = DataKind.REALTIME.value
# Merged tag sets cached per (station, topic tags); a few per station in practice.
MAX_MERGED_TAGS = 65536
# Topic placeholders that never become tags: they name the station, or are set by validation.
_NOT_TOPIC_TAGS = frozenset({"station_id", "mn", "district", DATA_KIND_TAG})


class NegativeValuesConfig(StrictModel):
    """Small negative values of parameters whose physical range starts at 0 (module docstring)."""

    action: Literal["below_dl", "reject"] = Field(
        "below_dl",
        description="`below_dl`: a value in [-tolerance, 0) is kept as a result below the detection "
        "limit (value: the configured detection limit, else 0); `reject`: it is out_of_range like "
        "any value outside the physical range. The reference says nothing on this; the default is ours.",
    )
    tolerance: float = Field(
        1e-4,
        ge=0,
        le=0.01,
        description="How far below zero a value may be, as a fraction of the parameter's physical "
        "range (1e-4: NH3-N 0.05 mg/L of its 0-500 mg/L); further below is an instrument fault.",
    )
    tolerances: dict[str, NonNegativeFloat] = Field(
        default_factory=dict,
        description="Per parameter code, the tolerance in the canonical unit, instead of `tolerance`.",
    )
    detection_limits: dict[str, NonNegativeFloat] = Field(
        default_factory=dict,
        description="Per parameter code, the detection limit (canonical unit) a small negative value "
        "is stored as; 0 (limit not known) for codes not listed.",
    )


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
    max_past_age: timedelta = Field(
        timedelta(days=30 * 365),
        gt=timedelta(0),
        description="How far behind the daemon's clock a timestamp may be. The default (about 30 "
        "years) lets archives and loggers' backlogs be backfilled, while a corrupt year (1000, 1500) "
        "is rejected as `too_old`; narrow it where stations only ever send current data.",
    )
    default_timezone: TimeZoneName | None = Field(
        None, description="Zone for naive timestamps of stations without their own `timezone`."
    )
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Worker processes that decode and validate messages, batches in turn; "
        "each can use a core of its own.",
    )
    negative_values: NegativeValuesConfig = Field(
        default_factory=NegativeValuesConfig,
        description="What becomes of analyser values a little below zero (NH3-N -0.003 mg/L).",
    )


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(known_time_zone(name))


class _Problem(NamedTuple):
    reason: RejectReason
    detail: str


@dataclass(slots=True)
class _Sender:
    """What the readings of one station, MN and password share, worked out once per message."""

    station_id: str
    tags: Tags = ()
    # The zone for naive times: the station's, else the configured default (else the protocol's).
    zone_name: str | None = None
    # Why every reading of this sender is refused (an unknown station, claims that do not hold);
    # `rejection` adds each reading's parameter code, cut to `code_limit`.
    refusal: ItemRejection | None = None
    code_limit: int | None = 32

    def rejection(self, code: str) -> ItemRejection:
        assert self.refusal is not None
        refusal = self.refusal
        return ItemRejection(refusal.reason, refusal.detail, refusal.station_id, code[: self.code_limit])


# Stands in until the first reading, whose key always differs from None, sets the real one.
_NO_SENDER = _Sender("")


def _identity_problem(
    raw: RawReading, resolved: Station | str, topic_tags: Mapping[str, str]
) -> _Problem | None:
    """The sender's claims that do not hold: HJ 212 password, topic versus payload station."""
    station_id = resolved if isinstance(resolved, str) else resolved.id
    if isinstance(resolved, Station) and resolved.hj212_password is not None and raw.mn is not None:
        expected = resolved.hj212_password.get_secret_value().encode()
        if not hmac.compare_digest((raw.password or "").encode(), expected):
            return _Problem(RejectReason.WRONG_PASSWORD, f"wrong HJ 212 password for MN {raw.mn}")
    topic_station = topic_tags.get("station_id")
    if topic_station is not None and topic_station != station_id:
        return _Problem(
            RejectReason.TOPIC_MISMATCH, f"topic names station {topic_station!r}, payload {station_id!r}"
        )
    topic_mn = topic_tags.get("mn")
    if topic_mn is not None and raw.mn is not None and topic_mn != raw.mn:
        return _Problem(RejectReason.TOPIC_MISMATCH, f"topic names MN {topic_mn!r}, payload {raw.mn!r}")
    return None


def _checked_value(
    raw: RawReading, parameter: Parameter | None, negatives: Mapping[str, tuple[float, float]]
) -> tuple[float, DataFlag, bool] | _Problem:
    """The value in the parameter's canonical unit, the data flag and whether it is below the
    detection limit; or why the reading is refused. `negatives`: code -> (tolerance, limit)."""
    code = raw.parameter
    if parameter is None:
        return _Problem(RejectReason.UNKNOWN_PARAMETER, f"unknown parameter code {code!r:.40}")
    if not isfinite(raw.value):
        return _Problem(RejectReason.NOT_A_NUMBER, f"{code}: value is not finite")
    value = parameter.to_canonical(raw.value, raw.unit)
    if value is None:
        return _Problem(
            RejectReason.UNKNOWN_UNIT,
            f"{code}: unit {raw.unit!r:.20} is not accepted (canonical {parameter.unit})",
        )
    below_dl = raw.below_dl
    if not parameter.in_range(value):
        negative = None if below_dl or not value < 0 else negatives.get(code)
        if negative is not None and -negative[0] <= value:
            value, below_dl = negative[1], True  # noise around a blank: below the detection limit
        else:
            what = " (the detection limit)" if below_dl else ""
            return _Problem(
                RejectReason.OUT_OF_RANGE,
                f"{code}={value:g} {parameter.unit}{what} outside the physical range "
                f"[{parameter.min:g}, {parameter.max:g}]",
            )
    flag = _FLAGS.get(raw.flag)
    if flag is None:
        return _Problem(RejectReason.UNKNOWN_FLAG, f"{code}: data flag {raw.flag!r:.8} is not an HJ 212 flag")
    return value, flag, below_dl


class Validator:
    def __init__(
        self, config: ValidationConfig, registry: Registry, catalogue: Mapping[str, Parameter]
    ) -> None:
        self._config = config
        self._registry = registry
        self._catalogue = catalogue
        self._max_skew_ns = ns(config.max_future_skew)
        self._max_age_ns = ns(config.max_past_age)
        self._tags_by_station: dict[str, tuple[tuple[str, str], ...]] = {
            station.id: station.tags() for station in registry.values()
        }
        self._merged_tags: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[tuple[str, str], ...]] = {}
        self._kind_tags: dict[tuple[Tags, str], Tags] = {}
        self._negatives = _negative_rule(config.negative_values, catalogue)

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
        """One raw reading checked on its own; `validate_many` checks a message's readings."""
        readings, rejections = self.validate_many((raw,), topic_tags, now_ns)
        return readings[0] if readings else rejections[0]

    def validate_many(
        self, raws: Iterable[RawReading], topic_tags: Mapping[str, str], now_ns: int
    ) -> tuple[list[Reading], list[ItemRejection]]:
        """The readings that passed and the rejections, each in the order of `raws`.

        Each result is what `validate` gives for that raw reading alone. A message's readings
        nearly always share their sender (station, MN, password) and timestamp, so the station,
        the identity checks, the merged tags and the time in ns are worked out once for each run
        of readings that share them, not once per reading.
        """
        readings: list[Reading] = []
        rejections: list[ItemRejection] = []
        catalogue, flags, negatives, realtime = self._catalogue, _FLAGS, self._negatives, _REALTIME
        sender_key: tuple[str | None, str | None, str | None] | None = None
        sender = _NO_SENDER
        ts_seen: datetime | None = None
        zone_seen: str | None = None
        time_ns: int | _Problem = 0
        for raw in raws:
            key = (raw.station_id, raw.mn, raw.password)
            if key != sender_key:
                sender_key, sender, ts_seen = key, self._sender(raw, topic_tags), None
            code = raw.parameter
            if sender.refusal is not None:
                rejections.append(sender.rejection(code))
                continue
            parameter = catalogue.get(code)
            value, flag, below_dl = raw.value, flags.get(raw.flag), raw.below_dl
            # The common case inline (canonical unit, in range, known flag); `_checked_value`
            # decides, and words, everything else.
            if (
                parameter is None
                or flag is None
                or (raw.unit is not None and raw.unit != parameter.unit)
                or not (isfinite(value) and parameter.min <= value <= parameter.max)
            ):
                checked = _checked_value(raw, parameter, negatives)
                if isinstance(checked, _Problem):
                    rejections.append(
                        ItemRejection(checked.reason, checked.detail, sender.station_id, code[:32])
                    )
                    continue
                value, flag, below_dl = checked
                assert parameter is not None
            tags = sender.tags
            if raw.kind != realtime:
                if raw.kind not in _KINDS:
                    rejections.append(
                        ItemRejection(
                            RejectReason.MALFORMED,
                            f"{code}: data kind {raw.kind!r:.20} is not one of {', '.join(_KINDS_SHOWN)}",
                            sender.station_id,
                            code[:32],
                        )
                    )
                    continue
                tags = self._with_kind(tags, raw.kind)
            if raw.ts is not ts_seen or raw.assume_tz != zone_seen:
                ts_seen, zone_seen = raw.ts, raw.assume_tz
                time_ns = self._time_ns(raw.ts, sender.zone_name or raw.assume_tz, now_ns)
            if isinstance(time_ns, _Problem):
                rejections.append(ItemRejection(time_ns.reason, time_ns.detail, sender.station_id, code[:32]))
                continue
            readings.append(
                Reading(
                    sender.station_id,
                    parameter.measurement,
                    code,
                    value,
                    parameter.unit,
                    time_ns,
                    flag,
                    tags,
                    below_dl,
                    raw.time_corrected,
                )
            )
        return readings, rejections

    def _sender(self, raw: RawReading, topic_tags: Mapping[str, str]) -> _Sender:
        """What every reading with `raw`'s station, MN and password shares."""
        resolved = self.resolve_station(raw)
        if isinstance(resolved, ItemRejection):
            return _Sender("", refusal=resolved, code_limit=None)  # as `resolve_station` words it
        station_id = resolved if isinstance(resolved, str) else resolved.id
        problem = _identity_problem(raw, resolved, topic_tags)
        if problem is not None:
            return _Sender(station_id, refusal=ItemRejection(problem.reason, problem.detail, station_id))
        zone = resolved.timezone if isinstance(resolved, Station) else None
        return _Sender(station_id, self._tags(station_id, topic_tags), zone or self._config.default_timezone)

    def _time_ns(self, ts: datetime, zone_name: str | None, now_ns: int) -> int | _Problem:
        """Ns since the epoch, a naive time taken in `zone_name`; or why the time is refused."""
        if ts.tzinfo is None or ts.utcoffset() is None:
            if zone_name is None:
                return _Problem(RejectReason.NAIVE_TIMESTAMP, f"timestamp {ts.isoformat()} has no time zone")
            ts = ts.replace(tzinfo=_zone(zone_name))
        time_ns = to_ns(ts)
        if not INT64_NS_MIN <= time_ns <= INT64_NS_MAX:
            return _Problem(
                RejectReason.TIME_OUT_OF_RANGE,
                f"timestamp {ts.isoformat()} does not fit 64-bit ns since 1970 (years 1678-2261)",
            )
        if time_ns < now_ns - self._max_age_ns:
            age_days = (now_ns - time_ns) / 86_400e9
            return _Problem(
                RejectReason.TOO_OLD,
                f"timestamp {ts.isoformat()} is {age_days:.0f} days old (validation.max_past_age)",
            )
        if time_ns > now_ns + self._max_skew_ns:
            ahead = (time_ns - now_ns) / 1e9
            return _Problem(
                RejectReason.CLOCK_SKEW, f"timestamp {ts.isoformat()} is {ahead:.0f} s in the future"
            )
        return time_ns

    def _tags(self, station_id: str, topic_tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """The station's registry tags plus the topic's placeholders, merged once per combination."""
        key = (station_id, tuple(topic_tags.items()))
        tags = self._merged_tags.get(key)
        if tags is None:
            tags = self._tags_by_station.get(station_id) or (("station_id", station_id),)
            extra = [(k, v) for k, v in topic_tags.items() if k not in _NOT_TOPIC_TAGS]
            if extra:
                # Registry tags are authoritative; topic placeholders only add new keys.
                tags = tuple(sorted((dict(extra) | dict(tags)).items()))
            if len(self._merged_tags) >= MAX_MERGED_TAGS:
                self._merged_tags.clear()  # topic placeholders are sender-controlled: bound the cache
            self._merged_tags[key] = tags
        return tags

    def _with_kind(self, tags: Tags, kind: str) -> Tags:
        """`tags` with `data_kind=<kind>`, kept in order; built once per tag set and kind."""
        key = (tags, kind)
        with_kind = self._kind_tags.get(key)
        if with_kind is None:
            with_kind = tuple(
                sorted((*(t for t in tags if t[0] != DATA_KIND_TAG), (DATA_KIND_TAG, str(kind))))
            )
            if len(self._kind_tags) >= MAX_MERGED_TAGS:
                self._kind_tags.clear()  # tag sets follow sender-controlled topics: bound the cache
            self._kind_tags[key] = with_kind
        return with_kind


def _negative_rule(
    config: NegativeValuesConfig, catalogue: Mapping[str, Parameter]
) -> dict[str, tuple[float, float]]:
    """Code -> (tolerance, detection limit) of the parameters whose small negatives are below DL."""
    unknown = sorted((set(config.tolerances) | set(config.detection_limits)) - set(catalogue))
    if unknown:
        raise ValueError(f"validation.negative_values names unknown parameter codes: {', '.join(unknown)}")
    if config.action == "reject":
        return {}
    rule = {}
    for code, parameter in catalogue.items():
        if parameter.min != 0:
            continue  # a range reaching below zero (water level, temperature) holds its negatives
        limit = config.detection_limits.get(code, 0.0)
        if limit > parameter.max:
            raise ValueError(
                f"validation.negative_values.detection_limits.{code} is above the range of {code}"
            )
        tolerance = config.tolerances.get(code, config.tolerance * (parameter.max - parameter.min))
        rule[code] = (tolerance, limit)
    return rule
