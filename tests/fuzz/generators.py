"""Seeded generators of (topic, payload) per format: valid messages and valid-ish hostile ones.

A `Universe` knows what a publisher could know (the registry's stations, MNs and districts, the
parameter catalogue, the time), so most messages get past the outer checks and reach the code
behind them. `valid` builds a message that must be accepted whole; `hostile` keeps the shape
of a message and puts hostile values where the format has values, topics included. Everything
draws from one `random.Random`, so a seed reproduces a run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from config.hj212 import default_code_table
from config.registry import Registry, Station
from ingest.decoders.hj212 import crc16_hj212, crc16_modbus, encode_data_packet
from tests.fuzz.hostile import (
    CATALOGUE,
    DATA_TIMES,
    FLAGS,
    HJ212_NUMBERS,
    MQTT_TOPIC_MAX_BYTES,
    NUMBER_TOKENS,
    PARAMETER_CODES,
    UNITS,
    JsonValue,
    Raw,
    any_value,
    dumps,
    hostile_number,
    hostile_string,
    hostile_timestamp,
    nested,
    recent_timestamp,
)

FORMATS: Final = ("json", "senml", "hj212")
KINDS: Final = ("water", "hydro", "status")
CODES: Final = default_code_table()
HJ212_CODES: Final[tuple[str, ...]] = tuple(CODES.by_code)
DATA_COMMANDS: Final[tuple[str, ...]] = tuple(CODES.data_commands)
BEIJING: Final = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Universe:
    """What publishers know: the registry and the time the processor will be given."""

    stations: tuple[Station, ...]
    now: datetime

    @classmethod
    def of(cls, registry: Registry, now: datetime) -> Universe:
        return cls(tuple(registry.values()), now)

    def station(self, rng: random.Random) -> Station:
        return rng.choice(self.stations)

    def station_id(self, rng: random.Random) -> str:
        pick = rng.random()
        if pick < 0.75:
            return self.station(rng).id
        if pick < 0.85:
            return f"unknown-{rng.randrange(10**6)}"
        return hostile_string(
            rng, [s.id.upper() for s in self.stations] + [s.id + " " for s in self.stations]
        )

    def mn(self, rng: random.Random) -> str:
        pick = rng.random()
        mns = [s.mn for s in self.stations if s.mn]
        if pick < 0.75:
            return rng.choice(mns)
        if pick < 0.85:
            return str(rng.randrange(10**13, 10**14))
        return rng.choice(("", "A" * 24, "A" * 25, "-", "5000000000000a", "50000000000001;PW=1", "5" * 200))

    def value(self, rng: random.Random, code: str) -> float:
        parameter = CATALOGUE[code]
        return round(rng.uniform(parameter.min, parameter.max), rng.randrange(0, 6))


def hostile_topic(rng: random.Random, base: str) -> str:
    """`base` with its levels broken: wildcards, empty, huge, unicode, control characters, too many."""
    levels = base.split("/")
    pick = rng.randrange(12)
    if pick == 0:
        return rng.choice(("", "/", "//", "#", "+", "$SYS/broker/load", " ", "\x00", "ecowatch", "hj212"))
    if pick == 1:
        levels[rng.randrange(len(levels))] = rng.choice(("", "+", "#", "*", ">", ".", "..", " "))
    elif pick == 2:
        size = rng.choice((65, 256, 4096, MQTT_TOPIC_MAX_BYTES - len(base)))
        levels[rng.randrange(len(levels))] = rng.choice("xé长🌊") * max(1, size // 4)
    elif pick == 3:
        levels[rng.randrange(len(levels))] = hostile_string(rng)
    elif pick == 4:
        levels.append(rng.choice(("", "extra", "#", "+")))
    elif pick == 5:
        del levels[rng.randrange(len(levels))]
    elif pick == 6:
        levels = levels + ["x"] * rng.choice((10, 1000, 20000))
    elif pick == 7:
        return "/" + base if rng.random() < 0.5 else base + "/"
    elif pick == 8:
        return base.upper()
    elif pick == 9:
        levels[rng.randrange(len(levels))] += rng.choice(
            ("\x00", "\x85", "\u2028", "\x7f", "\ufeff", "\t", "\udcff")
        )
    elif pick == 10:
        return rng.choice(
            ("ecowatch/v1/d/cq-cj-cuntan/water", "ecowatch/senml/cq-cj-cuntan", "hj212/50000000000003")
        )
    else:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 40)))
    return "/".join(levels)


def clip_topic(topic: str) -> str:
    """The topic cut to what MQTT can carry (its UTF-8, with lone surrogates replaced as the source does)."""
    data = topic.encode("utf-8", "replace")
    if len(data) <= MQTT_TOPIC_MAX_BYTES:
        return topic
    return data[:MQTT_TOPIC_MAX_BYTES].decode("utf-8", "ignore")


# --- JSON schema v1 -----------------------------------------------------------------------------


def json_topic(station: Station | None, station_id: str, rng: random.Random) -> str:
    district = station.district if station is not None else "d"
    kind = rng.choice(KINDS) if rng.random() < 0.3 else "water"
    return f"ecowatch/v1/{district}/{station_id}/{kind}"


def json_valid(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    station = universe.station(rng)
    codes = rng.sample(PARAMETER_CODES, rng.randrange(1, 9))
    readings: dict[str, JsonValue] = {}
    for code in codes:
        value = universe.value(rng, code)
        if rng.random() < 0.3:
            readings[code] = {"value": value, "unit": CATALOGUE[code].unit, "flag": rng.choice(FLAGS)}
        else:
            readings[code] = value
    document: JsonValue = {
        "station_id": station.id,
        "ts": recent_timestamp(rng, universe.now),
        "readings": readings,
    }
    return json_topic(station, station.id, rng), dumps(document, rng)


def _json_reading(rng: random.Random, code: str, universe: Universe) -> JsonValue:
    pick = rng.random()
    if pick < 0.25:
        return universe.value(rng, code) if code in CATALOGUE else 7.5
    if pick < 0.55:
        return hostile_number(rng)
    obj: dict[str, JsonValue] = {}
    if rng.random() < 0.9:
        obj["value"] = hostile_number(rng)
    if rng.random() < 0.6:
        obj["unit"] = hostile_string(rng, UNITS)
    if rng.random() < 0.6:
        obj["flag"] = hostile_string(rng, FLAGS)
    if rng.random() < 0.1:
        obj[hostile_string(rng)] = any_value(rng)
    return obj if rng.random() < 0.95 else any_value(rng)


def _json_document(universe: Universe, rng: random.Random, station_id: str) -> JsonValue:
    readings: dict[str, JsonValue] = {}
    for _ in range(rng.choice((0, 1, 2, 3, 8, 16, 256, 257)) if rng.random() < 0.2 else rng.randrange(1, 9)):
        code = rng.choice(PARAMETER_CODES) if rng.random() < 0.8 else hostile_string(rng, HJ212_CODES)
        readings[code] = _json_reading(rng, code, universe)
    document: dict[str, JsonValue] = {"station_id": station_id, "ts": hostile_timestamp(rng, universe.now)}
    document["readings"] = readings if rng.random() < 0.93 else any_value(rng)
    if rng.random() < 0.1:
        document["v"] = rng.choice((1, 2, 0, -1, "1", 1.0, None, Raw("1e309"), 2**64))
    if rng.random() < 0.05:
        del document[rng.choice(("station_id", "ts", "readings"))]
    if rng.random() < 0.05:
        document[hostile_string(rng)] = any_value(rng)
    if rng.random() < 0.05:
        document["station_id"] = any_value(rng)
    return document


def _huge_json(universe: Universe, rng: random.Random) -> bytes:
    """A batch near the payload limit: unknown stations, many readings, or many tiny documents."""
    pick = rng.randrange(4)
    if pick == 0:  # the 60 KB array of readings of unknown stations
        ts = recent_timestamp(rng, universe.now)
        docs: list[dict[str, Any]] = []
        size = 0
        while size < rng.choice((20_000, 60_000, 65_000)):
            doc = {
                "station_id": f"nowhere-{len(docs)}",
                "ts": ts,
                "readings": dict.fromkeys(PARAMETER_CODES, 7),
            }
            docs.append(doc)
            size += len(orjson.dumps(doc))
        return orjson.dumps(docs)
    if pick == 1:  # one registered station, every document a different recent time
        station = universe.station(rng)
        docs = [
            {
                "station_id": station.id,
                "ts": recent_timestamp(rng, universe.now),
                "readings": {"ph": 7.1, "do": 99.0},
            }
            for _ in range(rng.choice((10, 999, 1000, 1001)))
        ]
        return orjson.dumps(docs)
    if pick == 2:  # more readings than a document may hold
        station = universe.station(rng)
        readings = {f"p{i}": i for i in range(rng.choice((256, 257, 3000)))}
        return orjson.dumps(
            {"station_id": station.id, "ts": recent_timestamp(rng, universe.now), "readings": readings}
        )
    return orjson.dumps([{}] * rng.choice((1000, 1001, 20000)))


def json_hostile(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    station_id = universe.station_id(rng)
    station = (
        universe.stations[0]
        if rng.random() < 0.1
        else next((s for s in universe.stations if s.id == station_id), None)
    )
    topic_id = station.id if station is not None and rng.random() < 0.9 else station_id
    topic = json_topic(station, topic_id, rng)
    if rng.random() < 0.15:
        topic = hostile_topic(rng, topic)
    pick = rng.random()
    if pick < 0.75:
        payload = dumps(_json_document(universe, rng, station_id), rng)
    elif pick < 0.87:
        payload = dumps([_json_document(universe, rng, station_id) for _ in range(rng.randrange(0, 6))], rng)
    elif pick < 0.92:
        payload = _huge_json(universe, rng)
    elif pick < 0.97:
        depth = rng.choice((10, 1000, 1024, 1025, 100_000))
        payload = dumps(
            nested(depth, inner=rng.choice(("7.5", "{}", '"x"')), brackets=rng.choice(("[]", "{}")))
        )
    else:
        payload = dumps(any_value(rng), rng)
    return clip_topic(topic), payload


# --- SenML ----------------------------------------------------------------------------------------


def senml_topic(station_id: str) -> str:
    return f"ecowatch/senml/{station_id}"


def senml_valid(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    station = universe.station(rng)
    moment = universe.now - timedelta(seconds=rng.randrange(60, 30 * 86400))
    codes = rng.sample(PARAMETER_CODES, rng.randrange(1, 9))
    records: list[JsonValue] = []
    for index, code in enumerate(codes):
        record: dict[str, JsonValue] = {"n": code, "v": universe.value(rng, code)}
        if rng.random() < 0.3:
            record["u"] = CATALOGUE[code].unit
        if index == 0:
            record = {"bn": f"{station.id}/", "bt": int(moment.timestamp()), **record}
        records.append(record)
    if rng.random() < 0.3:
        records = [
            {
                "n": f"urn:dev:ecowatch:{station.id}:{code}",
                "v": universe.value(rng, code),
                "t": int(moment.timestamp()),
            }
            for code in codes
        ]
    return senml_topic(station.id), dumps(records, rng)


def _senml_record(universe: Universe, rng: random.Random, index: int, station_id: str) -> JsonValue:
    record: dict[str, JsonValue] = {}
    epoch = (universe.now - timedelta(seconds=rng.randrange(60, 30 * 86400))).timestamp()
    if index == 0 or rng.random() < 0.1:
        if rng.random() < 0.9:
            record["bn"] = f"{station_id}/" if rng.random() < 0.85 else hostile_string(rng)
        if rng.random() < 0.9:
            record["bt"] = int(epoch) if rng.random() < 0.5 else Raw(rng.choice(NUMBER_TOKENS))
        for key in ("bu", "bv", "bs", "bver"):
            if rng.random() < 0.05:
                record[key] = any_value(rng) if rng.random() < 0.5 else Raw(rng.choice(NUMBER_TOKENS))
    code = rng.choice(PARAMETER_CODES) if rng.random() < 0.8 else hostile_string(rng)
    record["n"] = code if rng.random() < 0.95 else any_value(rng)
    value_key = "v" if rng.random() < 0.85 else rng.choice(("vs", "vb", "vd", "s"))
    record[value_key] = (
        universe.value(rng, code) if code in CATALOGUE and rng.random() < 0.3 else hostile_number(rng)
    )
    if rng.random() < 0.3:
        record["u"] = hostile_string(rng, UNITS) if rng.random() < 0.9 else any_value(rng)
    if rng.random() < 0.3:
        record["t"] = (
            rng.choice((0, 1, -1, 60, int(epoch))) if rng.random() < 0.4 else Raw(rng.choice(NUMBER_TOKENS))
        )
    if rng.random() < 0.03:
        record[rng.choice(("x_", "bn_", "n", "ut", hostile_string(rng)))] = any_value(rng)
    return record


def senml_hostile(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    station_id = universe.station_id(rng)
    topic = senml_topic(station_id if rng.random() < 0.9 else universe.station(rng).id)
    if rng.random() < 0.15:
        topic = hostile_topic(rng, topic)
    pick = rng.random()
    if pick < 0.8:
        count = rng.choice((1000, 1001, 5000)) if rng.random() < 0.02 else rng.randrange(0, 10)
        records = [_senml_record(universe, rng, i, station_id) for i in range(count)]
        if records and rng.random() < 0.05:
            records[rng.randrange(len(records))] = any_value(rng)
        payload = dumps(records, rng)
    elif pick < 0.9:
        payload = dumps(_senml_record(universe, rng, 0, station_id), rng)  # a record, not a pack
    elif pick < 0.95:
        depth = rng.choice((10, 1000, 1024, 1025, 100_000))
        payload = dumps(nested(depth, inner=rng.choice(("7.5", "{}")), brackets=rng.choice(("[]", "{}"))))
    else:
        payload = dumps(any_value(rng), rng)
    return clip_topic(topic), payload


# --- HJ 212 ---------------------------------------------------------------------------------------


def hj212_frame(segment: bytes, rng: random.Random | None = None) -> bytes:
    """A packet around `segment` with the right length and CRC (the HJ 212 CRC, or Modbus at times)."""
    crc = crc16_modbus(segment) if rng is not None and rng.random() < 0.05 else crc16_hj212(segment)
    return b"##%04d%b%04X\r\n" % (len(segment) % 10000, segment, crc)


def _data_time(universe: Universe, rng: random.Random) -> str:
    moment = (universe.now - timedelta(seconds=rng.randrange(60, 30 * 86400))).astimezone(BEIJING)
    return moment.strftime("%Y%m%d%H%M%S")


def hj212_valid(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    station = rng.choice([s for s in universe.stations if s.mn])
    assert station.mn is not None
    moment = universe.now - timedelta(seconds=rng.randrange(60, 30 * 86400))
    values: dict[str, tuple[float, str]] = {}
    for code in rng.sample(sorted(CODES.by_parameter), rng.randrange(1, 6)):
        # Canonical values: the encoder writes each in its code's unit (µg/L for the metals).
        values[code] = (universe.value(rng, code), rng.choice(FLAGS))
    packet = encode_data_packet(station.mn, "123456", rng.choice(DATA_COMMANDS), moment, values)
    return f"hj212/{station.mn}", packet


def _hj212_field(rng: random.Random, value_field: str) -> str:
    code = (
        rng.choice(HJ212_CODES)
        if rng.random() < 0.85
        else hostile_string(rng, ("w99999", "w01001-x", "-", "a-b"))
    )
    suffix = (
        value_field
        if rng.random() < 0.85
        else rng.choice(("Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "", "rtd"))
    )
    number = (
        rng.choice(HJ212_NUMBERS) if rng.random() < 0.6 else f"{rng.uniform(0, 20):.{rng.randrange(0, 5)}f}"
    )
    parts = [f"{code}-{suffix}={number}"]
    if rng.random() < 0.6:
        parts.append(
            f"{code}-Flag={rng.choice(FLAGS) if rng.random() < 0.8 else hostile_string(rng, ('X', 'NN', ''))}"
        )
    if rng.random() < 0.05:
        parts.append(parts[0])  # a repeated field
    return ",".join(parts)


def hj212_hostile(universe: Universe, rng: random.Random) -> tuple[str, bytes]:
    mn = universe.mn(rng)
    cn = (
        rng.choice(DATA_COMMANDS)
        if rng.random() < 0.85
        else rng.choice(("9014", "1062", "2021", "0000", "20111", "x"))
    )
    command = CODES.data_commands.get(cn)
    value_field = command.value_field if command is not None else "Rtd"
    data_time = _data_time(universe, rng) if rng.random() < 0.5 else rng.choice(DATA_TIMES)
    cp: list[str] = []
    if rng.random() < 0.95:
        cp.append(f"DataTime={data_time}")
    if rng.random() < 0.05:
        cp.append(f"DataTime={rng.choice(DATA_TIMES)}")
    cp.extend(
        _hj212_field(rng, value_field)
        for _ in range(rng.choice((0, 1, 2, 4, 8, 50)) if rng.random() < 0.2 else rng.randrange(1, 6))
    )
    header = {
        "QN": f"{data_time}000" if rng.random() < 0.8 else rng.choice(("", "1" * 21, "x", "0")),
        "ST": "21" if rng.random() < 0.9 else rng.choice(("32", "91", "2", "ab")),
        "CN": cn,
        "PW": "123456" if rng.random() < 0.9 else rng.choice(("", "x" * 64, "x" * 65, "p w", "\x00")),
        "MN": mn,
        "Flag": "4" if rng.random() < 0.8 else rng.choice(("5", "6", "7", "0", "255", "256", "999", "")),
    }
    if rng.random() < 0.05:
        header["PNUM"], header["PNO"] = rng.choice((("2", "1"), ("1", "2"), ("0", "0"), ("9999", "9999")))
    items = [f"{key}={value}" for key, value in header.items() if rng.random() < 0.97]
    segment = ";".join(items) + f";CP=&&{';'.join(cp)}&&"
    data = segment.encode("utf-8", "replace")
    pick = rng.random()
    if pick < 0.85:
        packet = hj212_frame(data, rng)
    elif pick < 0.9:
        packet = b"##%04d%b%04X\r\n" % (len(data) % 10000, data, rng.randrange(0x10000))  # wrong CRC (mostly)
    elif pick < 0.95:
        packet = b"##%04d%b%04x\r\n" % (len(data) % 10000, data, crc16_hj212(data))  # lower-case CRC
    else:
        packet = hj212_frame(data)[: rng.randrange(0, len(data) + 12)]  # truncated
    topic = f"hj212/{mn}" if rng.random() < 0.9 else f"hj212/{universe.mn(rng)}"
    if rng.random() < 0.1:
        topic = hostile_topic(rng, topic)
    return clip_topic(topic), packet


VALID = {"json": json_valid, "senml": senml_valid, "hj212": hj212_valid}
HOSTILE = {"json": json_hostile, "senml": senml_hostile, "hj212": hj212_hostile}


def universe_now() -> datetime:
    """The processor's `now` for a run: the wall clock, so nothing depends on a fixed date."""
    return datetime.now(UTC).replace(microsecond=0)
