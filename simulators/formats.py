"""Wire formats of the simulator: one station report in, the (topic, payload) pairs to publish out.

- `json` (default): ecowatch JSON schema v1, one message per kind on
  `ecowatch/v1/{district}/{station_id}/{kind}` (kind `water` or `hydro`); flagged readings carry
  their flag as `{"value": v, "flag": "M"}`.
- `senml`: RFC 8428 SenML, on the same topics. SenML has no place for a data flag, so flagged
  readings are sent with their value only.
- `hj212`: one HJ 212-2017 real-time data packet (CN 2011) per report on `hj212/{mn}`, with every
  code's flag; stations need an MN. Water quality only: HJ 212 is the protocol of water-quality
  analysers (hydrology has its own, SL 651), so hydrology-only stations send nothing. Values
  go out in the unit of each HJ 212 code (µg/L for the 2017 metal codes), converted by the
  encoder from the canonical values the signals give.

The encoders live with their decoders in `ingest.decoders` so both sides speak one dialect; they
are imported when a format is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol

from config.registry import Station
from simulators.signals import DEFAULT_ZONE, kind_of

Readings = Mapping[str, tuple[float, str]]
TOPIC_TEMPLATE: Final = "ecowatch/v1/{district}/{station_id}/{kind}"
HJ212_TOPIC_TEMPLATE: Final = "hj212/{mn}"
# HJ 212-2017 command code of real-time data uploads.
HJ212_REALTIME_CN: Final = "2011"
# The PW sent by a data logger whose registry entry states none: the usual factory setting.
HJ212_FACTORY_PW: Final = "123456"


class Format(Protocol):
    name: ClassVar[str]

    def encode(self, station: Station, ts: datetime, readings: Readings) -> list[tuple[str, bytes]]:
        """The messages of one report; `ts` is aware, in the station's local zone."""
        ...

    def oversize(self, payload: bytes, size: int) -> bytes:
        """A payload of at least `size` bytes built from a real one."""
        ...


def _by_kind(readings: Readings) -> dict[str, dict[str, tuple[float, str]]]:
    groups: dict[str, dict[str, tuple[float, str]]] = {}
    for code, reading in readings.items():
        groups.setdefault(kind_of(code), {})[code] = reading
    return groups


def _topic(station: Station, kind: str) -> str:
    return TOPIC_TEMPLATE.format(district=station.district, station_id=station.id, kind=kind)


def _repeat(payload: bytes, size: int, sep: bytes = b"") -> bytes:
    copies = size // (len(payload) + len(sep)) + 1
    return sep.join([payload] * copies)


class JsonFormat:
    name: ClassVar[str] = "json"

    def __init__(self) -> None:
        from ingest.decoders.ecowatch_json import encode

        self._encode = encode

    def encode(self, station: Station, ts: datetime, readings: Readings) -> list[tuple[str, bytes]]:
        out = []
        for kind, group in _by_kind(readings).items():
            values: dict[str, float | dict[str, Any]] = {
                code: value if flag == "N" else {"value": value, "flag": flag}
                for code, (value, flag) in group.items()
            }
            out.append((_topic(station, kind), self._encode(station.id, ts, values)))
        return out

    def oversize(self, payload: bytes, size: int) -> bytes:
        # A valid batch (an array of documents) that is merely too large.
        return b"[" + _repeat(payload, size, b",") + b"]"


class SenmlFormat:
    name: ClassVar[str] = "senml"

    def __init__(self) -> None:
        from ingest.decoders.senml import encode_senml

        self._encode = encode_senml

    def encode(self, station: Station, ts: datetime, readings: Readings) -> list[tuple[str, bytes]]:
        return [
            (
                _topic(station, kind),
                self._encode(station.id, ts, {c: (v, None) for c, (v, _flag) in group.items()}),
            )
            for kind, group in _by_kind(readings).items()
        ]

    def oversize(self, payload: bytes, size: int) -> bytes:
        # SenML packs are JSON arrays: join the records of many copies into one valid pack.
        return b"[" + _repeat(payload.strip()[1:-1], size, b",") + b"]"


class Hj212Format:
    name: ClassVar[str] = "hj212"

    def __init__(self) -> None:
        from ingest.decoders.hj212 import encode_data_packet

        self._encode = encode_data_packet

    def encode(self, station: Station, ts: datetime, readings: Readings) -> list[tuple[str, bytes]]:
        if station.mn is None:
            raise ValueError(f"station {station.id} has no MN: HJ 212 needs one")
        water = {code: reading for code, reading in readings.items() if kind_of(code) == "water"}
        if not water:
            return []
        pw = station.hj212_password.get_secret_value() if station.hj212_password else HJ212_FACTORY_PW
        zone = station.timezone or DEFAULT_ZONE
        packet = self._encode(station.mn, pw, HJ212_REALTIME_CN, ts, water, timezone=zone)
        return [(HJ212_TOPIC_TEMPLATE.format(mn=station.mn), packet)]

    def oversize(self, payload: bytes, size: int) -> bytes:
        return _repeat(payload, size)


FORMATS: Final[Mapping[str, type[Format]]] = {c.name: c for c in (JsonFormat, SenmlFormat, Hj212Format)}


def make_format(name: str) -> Format:
    """The format called `name`; `ValueError` lists the known ones."""
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None
