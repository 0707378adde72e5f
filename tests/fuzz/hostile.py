"""Hostile atoms the generators and strategies draw from, and a JSON writer that can emit any token.

`Raw` is a literal JSON token written as is: what no JSON library writes but a publisher can send
(`1e309`, `NaN`, a 400-digit integer, `-0`, 100 000 nested brackets, a broken escape). `dumps`
writes a Python value holding `Raw` tokens as JSON text, choosing per string whether to escape
non-ASCII, so one document can mix both.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from config.parameters import default_catalogue
from ingest.model import DataFlag

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
MQTT_TOPIC_MAX_BYTES: Final = 65535  # MQTT 3.1.1 §1.5.3: a UTF-8 string with a 16-bit length


@dataclass(frozen=True, slots=True)
class Raw:
    """A literal JSON token, written as is."""

    text: str


JsonValue = None | bool | int | float | str | Raw | list["JsonValue"] | dict[str, "JsonValue"]

NUMBER_TOKENS: Final[tuple[str, ...]] = (
    "0", "-0", "-0.0", "0.0", "7.5", "7", "1", "-1", "14", "14.000000000000002", "1e2", "1E2",
    "1e309", "-1e309", "1E400", "1e-400", "5e-324", "2.2250738585072014e-308",
    "1.7976931348623157e308", "-1.7976931348623157e308", "1e16", "1e308", "123456789012345678",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "1" + "0" * 400, "-" + "9" * 400,
    "0." + "0" * 400 + "1", "1" + "0" * 20 + ".5", "NaN", "nan", "Infinity", "-Infinity", "inf",
    "0x10", "01", "1.", ".5", "+1", "1e", "--1", "1_000", "1.0e+", "true", "false", "null",
    '"7.5"', '""', "[]", "{}", "[7.5]", '{"value": 7.5}', "1e-7", "0.1", "100000", "99999.99",
    "-273.15", "25.000001", "1e5", "3.4028235e38",
)  # fmt: skip

STRING_ATOMS: Final[tuple[str, ...]] = (
    "", " ", "\x00", "a\x00b", "\x01", "\x07", "\x1b[31m", "\t", "\n", "\r\n", "\x7f", "\x85",
    "\x9f", "\u2028", "\u2029", "\u202e", "\ufeff", "\ufffd", "\uffff", "长江", "寸滩", "🌊",
    "e\u0301", "Ω", "ß", "İ", "a" * 64, "a" * 65, "x" * 300, "x" * 5000, "../../etc/passwd",
    "'; DROP TABLE readings; --", '"', "\\", "\\u0000", "=", ",", ";", "&", "&&", "#", "+", "/",
    "%s%n%x", "${jndi:ldap://x}", "{{7*7}}", "NaN", "null", "None", "true", "0", "-0", "1e309",
    "ph", "PH", "ph ", " ph", "w01001", "w01001-Rtd", "water", "hydro", "status", "N", "n", "X",
    "NN", "mg/L", "MG/L", "µg/L", "°C", "K", "Cel", "S/m", "ppm", "\udcff",
)  # fmt: skip

CATALOGUE: Final = default_catalogue()
PARAMETER_CODES: Final[tuple[str, ...]] = tuple(CATALOGUE)
UNITS: Final[tuple[str, ...]] = tuple(
    sorted({u for p in CATALOGUE.values() for u in (p.unit, *p.conversions)})
)
FLAGS: Final[tuple[str, ...]] = tuple(flag.value for flag in DataFlag)
OFFSETS: Final[tuple[str, ...]] = (
    "Z", "z", "+00:00", "-00:00", "+08:00", "+14:00", "-12:00", "+23:59", "-23:59", "+24:00",
    "+99:99", "+0800", "+08", "", "+08:00:30", "+08:00:00.5", " UTC", "Z[Asia/Shanghai]",
)  # fmt: skip
# Timestamps that do not depend on today: far outside any window, or malformed.
FIXED_TIMESTAMPS: Final[tuple[str, ...]] = (
    "1500-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999-23:59", "9999-12-31T23:59:59+14:00", "1677-09-21T00:12:43.145224Z",
    "1677-09-21T00:12:43.145225Z", "1677-09-21T00:12:44Z", "2262-04-11T23:47:16.854775Z",
    "2262-04-11T23:47:16.854776Z", "2262-04-12T00:00:00Z", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z", "10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z",
    "+2026-11-25T08:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z",
    "2026-11-25T08:00:60Z", "2026-11-25T08:00:00.1234567890Z", "2026-11-25", "2026-11-25 08:00:00",
    "2026-W48-3T08:00:00Z", "20261125T080000Z", "2026-11-25T08:00:00", "T08:00:00Z", "now",
    "yesterday", "", " ", "0", "-1", "1e309", "1795564800", "1795564800000", "99999999999999999999",
)  # fmt: skip
DATA_TIMES: Final[tuple[str, ...]] = (
    "10000101000000", "15000101000000", "00000101000000", "00010101000000", "99991231235959",
    "16770921001243", "16770921001244", "22620411234716", "22620412000000", "19700101000000",
    "20261301000000", "20260230000000", "20261125240000", "20261125086000", "2026112508000",
    "202611250800000", "", "abcdefghijklmn", "-2026112508000", "+2026112508000", "2026-11-25T08",
    "00000000000000", "99999999999999",
)  # fmt: skip
HJ212_NUMBERS: Final[tuple[str, ...]] = (
    "7.62", "0", "-0", "+0", "-0.0", ".5", "+.5", "5.", ".", "-", "+", "1e309", "-1e309", "1E400",
    "1e-400", "1.7976931348623157e308", "9" * 400, "0" * 300 + "1", "9" * 40 + "." + "9" * 40,
    "nan", "NaN", "inf", "Infinity", "1_0", " 1", "0x1F", "7.62.1", "1e", "e5", "--1", "9e999999999",
    "1e-99999999999", "", "7,62", "1/2", "-273.15", "25", "14", "100000", "1e5", "1e+5", "1e-5",
)  # fmt: skip


# What Python's json module writes for the floats JSON has no form for.
_FLOAT_TOKENS: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def dumps(value: JsonValue, rng: random.Random | None = None) -> bytes:
    """JSON text of `value` with its `Raw` tokens as they are; `rng` varies the escaping."""
    out: list[str] = []
    _write(value, out, rng)
    return "".join(out).encode("utf-8", "surrogatepass")


def _write(value: JsonValue, out: list[str], rng: random.Random | None) -> None:
    if isinstance(value, Raw):
        out.append(value.text)
    elif isinstance(value, str):
        if rng is not None and rng.random() < 0.5:
            try:
                out.append(orjson.dumps(value).decode())  # non-ASCII as UTF-8
                return
            except TypeError:  # a lone surrogate: json writes it as an escape
                pass
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            _write(key, out, rng)
            out.append(":")
            _write(item, out, rng)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, rng)
        out.append("]")
    elif isinstance(value, float):
        out.append(_FLOAT_TOKENS.get(repr(value), repr(value)))
    else:
        out.append(json.dumps(value))


def nested(depth: int, inner: str = "7.5", brackets: str = "[]") -> Raw:
    """`depth` nested arrays (or objects, with `brackets="{}"`) around `inner`."""
    if brackets == "{}":
        return Raw('{"a":' * depth + inner + "}" * depth)
    return Raw("[" * depth + inner + "]" * depth)


def deep(rng: random.Random) -> Raw:
    """Nesting around the depths where parsers (1024 for orjson) and `repr` (~1000 frames) give up."""
    depth = rng.randrange(940, 1030) if rng.random() < 0.7 else rng.choice((2, 100, 5000, 100_000))
    return nested(depth, inner=rng.choice(("7.5", "[]", '"x"')), brackets=rng.choice(("[]", "[]", "{}")))


def recent_timestamp(rng: random.Random, now: datetime) -> str:
    """An RFC 3339 time within the last 30 days of `now`, in a random zone offset (aware)."""
    moment = now - timedelta(seconds=rng.randrange(60, 30 * 86400))
    offset = timedelta(minutes=rng.choice((0, 0, 480, -300, 330, 840, -720)))
    local = moment.astimezone(UTC) + offset
    text = local.replace(tzinfo=None).isoformat(timespec=rng.choice(("seconds", "milliseconds", "auto")))
    if not offset:
        return text + rng.choice(("Z", "+00:00"))
    sign = "+" if offset > timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def hostile_timestamp(rng: random.Random, now: datetime) -> JsonValue:
    """A `ts` value: recent, near the window's edges, naive, far out, malformed or not a string."""
    pick = rng.random()
    if pick < 0.3:
        return recent_timestamp(rng, now)
    if pick < 0.45:
        edge = now + timedelta(
            seconds=rng.choice((-1, 1, 299, 301, 3600, 86400 * 365 * 31, -(86400 * 365 * 31)))
        )
        return edge.replace(tzinfo=None).isoformat() + rng.choice(OFFSETS)
    if pick < 0.55:
        return (now - timedelta(days=rng.randrange(0, 40))).replace(tzinfo=None).isoformat()  # naive
    if pick < 0.85:
        return rng.choice(FIXED_TIMESTAMPS)
    if pick < 0.95:
        return Raw(rng.choice(NUMBER_TOKENS))
    return any_value(rng, depth=1)


def hostile_number(rng: random.Random) -> JsonValue:
    """A reading value: mostly a number token, sometimes anything at all."""
    pick = rng.random()
    if pick < 0.35:
        return round(rng.uniform(-5, 60), rng.randrange(0, 8))
    if pick < 0.85:
        return Raw(rng.choice(NUMBER_TOKENS))
    if pick < 0.9:
        return deep(rng)
    return any_value(rng, depth=2)


def hostile_string(rng: random.Random, usual: Sequence[str] = ()) -> str:
    """A string: one of `usual` half the time, else a hostile atom or random characters."""
    pick = rng.random()
    if usual and pick < 0.5:
        return rng.choice(usual)
    if pick < 0.85:
        return rng.choice(STRING_ATOMS)
    return "".join(
        chr(rng.choice((rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000))))
        for _ in range(rng.randrange(1, 12))
    )


def any_value(rng: random.Random, depth: int = 0) -> JsonValue:
    """Any JSON value, a few levels deep at most (deep nesting is drawn on purpose elsewhere)."""
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return Raw(rng.choice(NUMBER_TOKENS))
    if pick == 3:
        return hostile_string(rng)
    if pick == 4:
        return rng.randrange(-(2**70), 2**70)
    if pick == 5:
        return deep(rng)
    if pick == 6:
        return [any_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {hostile_string(rng): any_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
