"""Hypothesis strategies of (topic, payload) per format: the structured part of the fuzzing.

They draw from the same hostile atoms as the plain-loop generators (`hostile`) and add what
hypothesis explores and shrinks well: arbitrary floats and integers, datetimes from year 1 to 9999
in any zone or none, arbitrary text. `mutated(fmt, universe)` drives the byte-level mutators with a
random seeded by hypothesis (a failing example is reproduced by its seed, not shrunk).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, cast

from hypothesis import strategies as st

from tests.fuzz.generators import (
    DATA_COMMANDS,
    HJ212_CODES,
    KINDS,
    VALID,
    Universe,
    clip_topic,
    hj212_frame,
    hostile_topic,
)
from tests.fuzz.hostile import (
    DATA_TIMES,
    FIXED_TIMESTAMPS,
    FLAGS,
    HJ212_NUMBERS,
    NUMBER_TOKENS,
    PARAMETER_CODES,
    STRING_ATOMS,
    UNITS,
    JsonValue,
    Raw,
    dumps,
    nested,
)
from tests.fuzz.mutators import mutate, mutate_hj212

Message = tuple[str, bytes]

_strings = st.sampled_from(STRING_ATOMS) | st.text(max_size=20)
_numbers: st.SearchStrategy[JsonValue] = (
    st.floats()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from(NUMBER_TOKENS).map(Raw)
    | st.integers(min_value=300, max_value=400).map(lambda digits: Raw("9" * digits))
)
_deep = st.integers(min_value=900, max_value=1030).map(nested) | st.just(nested(100_000))
_json_any: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | _numbers | _strings | _deep,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strings, inner, max_size=3),
    max_leaves=8,
)
# A plain Random from a drawn seed: hypothesis' own `randoms()` costs a draw per call, and the
# generators and mutators call it hundreds of times a message (the seed still reproduces it).
_seeded = st.integers(min_value=0, max_value=2**32).map(random.Random)
_zones: st.SearchStrategy[tzinfo | None] = (
    st.none()
    | st.timezones()
    | st.integers(min_value=-1439, max_value=1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
)


def _times(universe: Universe) -> st.SearchStrategy[JsonValue]:
    """`ts` values: recent (aware or naive), any datetime of years 1..9999, fixed oddities, numbers."""
    recent = st.integers(min_value=60, max_value=30 * 86400).map(
        lambda seconds: (universe.now - timedelta(seconds=seconds)).isoformat()
    )
    anywhen = st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=_zones,  # type: ignore[arg-type]  # the stubs take only SearchStrategy[None]
    )
    return recent | anywhen.map(datetime.isoformat) | st.sampled_from(FIXED_TIMESTAMPS) | _numbers | _json_any


def _json_topics(universe: Universe) -> st.SearchStrategy[str]:
    ids = [s.id for s in universe.stations]
    good = st.builds(
        "ecowatch/v1/{}/{}/{}".format,
        st.sampled_from([s.district for s in universe.stations]) | _strings,
        st.sampled_from(ids) | _strings,
        st.sampled_from(KINDS) | _strings,
    )
    return good | st.text(max_size=80) | st.builds(hostile_topic, _seeded, good)


def json_messages(universe: Universe) -> st.SearchStrategy[Message]:
    """JSON schema v1 documents and batches of them, with hostile values anywhere."""
    ids = [s.id for s in universe.stations]
    value = (
        _numbers
        | st.fixed_dictionaries(
            {"value": _numbers},
            optional={"unit": st.sampled_from(UNITS) | _strings, "flag": st.sampled_from(FLAGS) | _strings},
        )
        | _json_any
    )
    readings = st.dictionaries(st.sampled_from(PARAMETER_CODES) | _strings, value, max_size=10) | _json_any
    # A dict of JSON values (fixed_dictionaries is typed as giving dict[str, object]).
    document = cast(
        "st.SearchStrategy[JsonValue]",
        st.fixed_dictionaries(
            {
                "station_id": st.sampled_from(ids) | _strings | _json_any,
                "ts": _times(universe),
                "readings": readings,
            },
            optional={"v": st.sampled_from((1, 2, 0, "1")) | _numbers, "extra": _json_any},
        ),
    )
    payload = (document | st.lists(document, max_size=5) | _json_any).map(dumps)
    return st.tuples(_json_topics(universe).map(clip_topic), payload)


def senml_messages(universe: Universe) -> st.SearchStrategy[Message]:
    """SenML packs with base fields, values, times and names drawn hostile."""
    ids = [s.id for s in universe.stations]
    epoch = int(universe.now.timestamp())
    times = st.integers(min_value=epoch - 30 * 86400, max_value=epoch) | _numbers
    names = st.sampled_from([f"{i}/" for i in ids]) | st.sampled_from(PARAMETER_CODES) | _strings | _json_any
    record = st.fixed_dictionaries(
        {},
        optional={
            "bn": names,
            "bt": times,
            "bu": st.sampled_from(UNITS) | _strings | _json_any,
            "bv": _numbers,
            "bver": st.integers(min_value=-2, max_value=12) | _numbers,
            "n": names,
            "u": st.sampled_from(UNITS) | _strings | _json_any,
            "v": _numbers | _json_any,
            "vs": _strings,
            "vb": st.booleans(),
            "t": times,
            "s": _numbers,
            "x_": _json_any,
        },
    )
    pack = st.lists(record | _json_any, max_size=8) | _json_any
    topic = st.builds("ecowatch/senml/{}".format, st.sampled_from(ids) | _strings) | st.text(max_size=60)
    return st.tuples(topic.map(clip_topic), pack.map(dumps))


def _hj212_segment(draw: Any, universe: Universe) -> bytes:
    mns = [s.mn for s in universe.stations if s.mn]
    mn = draw(st.sampled_from(mns) | st.text(alphabet="0123456789AZaz-", max_size=30))
    local = universe.now - timedelta(seconds=draw(st.integers(min_value=60, max_value=30 * 86400)))
    data_time = draw(
        st.just(local.strftime("%Y%m%d%H%M%S"))
        | st.sampled_from(DATA_TIMES)
        | st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: f"{d:%Y%m%d%H%M%S}")
    )
    cn = draw(st.sampled_from(DATA_COMMANDS) | st.text(alphabet="0123456789", max_size=5))
    field_text = (
        st.sampled_from(HJ212_NUMBERS)
        | st.floats().map(repr)
        | st.text(alphabet="0123456789.eE+-", max_size=30)
    )
    pollutant = st.builds(
        "{0}-{1}={2},{0}-Flag={3}".format,
        st.sampled_from(HJ212_CODES) | st.text(alphabet="abw0123456789", max_size=8),
        st.sampled_from(("Rtd", "Avg", "Min", "Max", "Cou", "")),
        field_text,
        st.sampled_from(FLAGS) | st.text(max_size=3),
    )
    fields = draw(st.lists(pollutant, max_size=6))
    flag = draw(st.sampled_from(("4", "5", "6", "7", "255", "256")))
    segment = f"QN={data_time}000;ST=21;CN={cn};PW=123456;MN={mn};Flag={flag};CP=&&DataTime={data_time};{';'.join(fields)}&&"
    return segment.encode("utf-8", "replace")


def hj212_messages(universe: Universe) -> st.SearchStrategy[Message]:
    """HJ 212 uploads with hostile DataTime, numbers, codes and flags, framed with a valid CRC."""

    @st.composite
    def packets(draw: Any) -> Message:
        segment = _hj212_segment(draw, universe)
        mns = [s.mn for s in universe.stations if s.mn]
        topic = draw(st.builds("hj212/{}".format, st.sampled_from(mns) | _strings) | st.text(max_size=40))
        return clip_topic(topic), hj212_frame(segment)

    return packets()


def mutated(fmt: str, universe: Universe) -> st.SearchStrategy[Message]:
    """Valid messages of `fmt` mutated byte by byte (HJ 212 reframed), from a seed hypothesis draws."""

    def build(rng: random.Random) -> Message:
        topic, payload = VALID[fmt](universe, rng)
        _, other = VALID[fmt](universe, rng)
        return topic, (mutate_hj212 if fmt == "hj212" else mutate)(rng, payload, other)

    return _seeded.map(build)


def messages(fmt: str, universe: Universe) -> st.SearchStrategy[Message]:
    structured = {"json": json_messages, "senml": senml_messages, "hj212": hj212_messages}[fmt](universe)
    return structured | mutated(fmt, universe)
