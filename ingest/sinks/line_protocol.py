r"""InfluxDB line protocol for readings: one line per (measurement, tags, time), two fields per reading.

    water_quality,basin=长江,station_id=cq-cj-cuntan ph=7.6,ph_flag="N",do=8.1,do_flag="N" 1795600000000000000

Readings that share measurement, tags and time become one line with the fields `<parameter>`
(float) and `<parameter>_flag` (string, the HJ 212 data flag); when a batch holds one parameter
twice for the same point, the later reading wins, as the database would. Tags are written in the
order of `Reading.tags`, which the model keeps sorted; a tag with an empty value is left out
(line protocol has no empty tag values, and the databases treat a missing tag as empty). The kind
of value is the tag `data_kind` (minute, hourly, daily, lab; none for real-time values), so each
kind is a series of its own.

A reading below the detection limit adds a third field, `<parameter>_dl=1i`, its value being
the limit:

    water_quality,data_kind=lab,station_id=st-1 nh3n=0.025,nh3n_flag="N",nh3n_dl=1i 1795600000000000000

An integer, not a boolean or a string, so that it survives everywhere as a number: VictoriaMetrics
stores it as the metric `water_quality_nh3n_dl` = 1 (a string field would be 0 there, see
DESIGN.md), InfluxDB 1.x and 2 as an integer field that `sum()` and `max()` can aggregate (a
boolean field they cannot). Readings at or above the limit write no `_dl` field (absent means
measured), which costs nothing for the readings that are measured; a point first written below
the limit and later overwritten, same series and time, with a measured value keeps its `_dl`
field in InfluxDB, which merges fields (a logger that corrects a result resends it as it was).

A reading whose time the HJ 212 gateway corrected by its logger's measured clock error adds
`<parameter>_tc=1i` the same way (an integer for the same reasons; absent: the logger's own time):

    water_quality,station_id=st-1 ph=7.1,ph_flag="N",ph_tc=1i 1795600000000000000

Escaping follows the line protocol reference and the official influxdb-client: a backslash
before `,`, `=` and space in tag keys, tag values and field keys, before `,` and space in the
measurement, before `"` in string field values; backslashes themselves are doubled everywhere.
VictoriaMetrics reads `\\` back as one backslash; InfluxDB 1.x keeps both, so a tag value with a
backslash reads back doubled there (registry names never contain one). Newlines and other
control characters cannot be escaped at all, nor can a measurement's leading `#` (the line would
be a comment): validation keeps them out, and `encode` raises `ValueError` rather than write a
line that splits or vanishes. Floats are written in their shortest form that reads back exactly
(`repr`'s, written by orjson, which is faster); NaN and
infinities have no line protocol form and raise `ValueError`.

This runs for every reading stored (~100 000 per second), in the processor worker
(`LineEncoder`, whose caches of escaped series keys and field fragments last from message to
message) and in the sinks for batches without pre-rendered lines (`encode`, caches per call).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

from ingest.errors import SinkError, SinkReason
from ingest.model import Reading

# C0 and C1 control characters, DEL included: none of them may reach a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_MEASUREMENT_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})
_KEY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})

_Tags = tuple[tuple[str, str], ...]


def encode(readings: Iterable[Reading]) -> str:
    """The line protocol text of the readings, one line per point, each ending in a newline."""
    return LineEncoder().encode(readings)


def request_body(readings: Iterable[Reading]) -> bytes:
    """The readings as a write request's body.

    A reading with no line protocol form raises SinkError(REJECTED, not retryable), which the
    delivery loop narrows down to the readings at fault and dead-letters.
    """
    try:
        return encode(readings).encode()
    except ValueError as exc:
        raise SinkError(SinkReason.REJECTED, f"cannot encode: {exc}", retryable=False) from None


class LineEncoder:
    """`encode` with its escaped series keys and field fragments kept from call to call.

    The processor renders each readings record's lines as it logs it (`ingest.records`), one
    message at a time: the same stations, parameters and flags come back message after message.
    The caches are bounded, as series keys come from sender-controlled topic placeholders.
    """

    def __init__(self, max_cached: int = 100_000) -> None:
        self._max_cached = max_cached
        self._series_keys: dict[tuple[str, _Tags], str] = {}
        self._templates: dict[tuple[str, str, bool, bool], tuple[str, str]] = {}

    def encode(self, readings: Iterable[Reading]) -> str:
        """The line protocol text of the readings, one line per point, each ending in a newline."""
        if len(self._series_keys) > self._max_cached or len(self._templates) > self._max_cached:
            self._series_keys.clear()
            self._templates.clear()
        readings = readings if isinstance(readings, list) else list(readings)
        if not readings:
            return ""
        # A message's readings are usually one point (same measurement, tags and time): one line.
        first = readings[0]
        measurement, tags, time_ns = first.measurement, first.tags, first.time_ns
        for reading in readings:
            if reading.time_ns != time_ns or reading.tags != tags or reading.measurement != measurement:
                break
        else:
            fields = {reading.parameter: reading for reading in readings}  # the later reading wins
            return self._line(measurement, tags, time_ns, list(fields.values()))

        points: dict[tuple[str, _Tags, int], dict[str, Reading]] = {}
        for reading in readings:
            key = (reading.measurement, reading.tags, reading.time_ns)
            point = points.get(key)
            if point is None:
                points[key] = {reading.parameter: reading}
            else:
                point[reading.parameter] = reading
        return "".join(self._line(*key, list(point.values())) for key, point in points.items())

    def _line(self, measurement: str, tags: _Tags, time_ns: int, readings: list[Reading]) -> str:
        """One point's line, from escaped series keys and field fragments built once each."""
        series = self._series_keys.get((measurement, tags))
        if series is None:
            series = self._series_keys[(measurement, tags)] = _series_key(measurement, tags)
        values = [float(reading.value) for reading in readings]
        for value in values:
            if value - value != 0:  # NaN and the infinities; cheaper than math.isfinite here
                raise ValueError(f"{value!r} has no line protocol form")
        templates = self._templates
        field_set: list[str] = []
        for reading, text in zip(readings, _float_texts(values), strict=True):
            key = (reading.parameter, reading.flag, reading.below_dl, reading.time_corrected)
            around = templates.get(key)
            if around is None:
                around = templates[key] = _fragments(*key)
            field_set.append(around[0] + text + around[1])
        return f"{series} {','.join(field_set)} {time_ns}\n"


def _float_texts(values: list[float]) -> list[str]:
    """Each finite float as the shortest text that reads back exactly (`7.6`, `1e-5`, `1e+16`).

    orjson writes the shortest round-trip form as `repr` does, in C and for the whole list at
    once: a `repr` per value was half the cost of rendering a message.
    """
    return orjson.dumps(values)[1:-1].decode().split(",")


def _fragments(parameter: str, flag: str, below_dl: bool, time_corrected: bool) -> tuple[str, str]:
    """What goes before and after a value: `ph=` and `,ph_flag="N"` (then `,ph_dl=1i` below the
    detection limit, `,ph_tc=1i` at a corrected time)."""
    key = _key(parameter)
    after = f',{key}_flag="{_string(flag)}"'
    if below_dl:
        after += f",{key}_dl=1i"
    if time_corrected:
        after += f",{key}_tc=1i"
    return f"{key}=", after


def _series_key(measurement: str, tags: _Tags) -> str:
    if not measurement or measurement.startswith("#"):
        # A line that starts with `#` is a comment: the point would vanish without an error.
        raise ValueError(f"measurement {measurement!r} cannot be written")
    _refuse_control(measurement)
    parts = [measurement.translate(_MEASUREMENT_ESCAPES)]
    for tag_key, tag_value in tags:
        if not tag_value:
            continue
        parts.append(f"{_key(tag_key)}={_key(tag_value)}")
    return ",".join(parts)


def _key(text: str) -> str:
    """A tag key, tag value or field key, escaped."""
    if not text:
        raise ValueError("empty tag or field key")
    _refuse_control(text)
    return text.translate(_KEY_ESCAPES)


def _string(text: str) -> str:
    _refuse_control(text)
    return text.translate(_STRING_ESCAPES)


def _refuse_control(text: str) -> None:
    if _CONTROL.search(text) is not None:
        raise ValueError(f"control character in {text!r}")
