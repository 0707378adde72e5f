"""The values that flow between stages: equal, hashable and picklable by their fields."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from ingest.model import (
    DATA_KIND_TAG,
    DATA_PROBLEM_FLAGS,
    LOWER_BOUND_FLAGS,
    DataFlag,
    DataKind,
    Message,
    RawReading,
    Reading,
    parse_below_dl,
)
from tests.helpers import T0, T0_NS


def reading(value: float = 7.6) -> Reading:
    return Reading(
        "st-1", "water_quality", "ph", value, "", T0_NS, DataFlag.NORMAL, (("station_id", "st-1"),)
    )


def test_values_compare_and_hash_by_their_fields() -> None:
    """Two readings with the same fields are one value (sets and dict keys treat them alike)."""
    assert reading() == reading()
    assert hash(reading()) == hash(reading())
    assert len({reading(), reading(), reading(7.7)}) == 2
    raw = RawReading("ph", 7.6, T0, station_id="st-1")
    assert {raw, RawReading("ph", 7.6, T0, station_id="st-1")} == {raw}
    assert hash(Message("t", b"p", 1)) == hash(Message("t", b"p", 1))


def test_values_survive_pickling() -> None:
    """Readings, raw readings and messages cross process boundaries unchanged."""
    values = [
        reading(),
        replace(reading(), below_dl=True, time_corrected=True),
        RawReading("ph", 7.6, T0, station_id="st-1", password="pw", below_dl=True, kind="hourly"),
        RawReading("ph", 7.6, T0, mn="MN-1", time_corrected=True),
        Message("t", b"p", 1),
    ]
    assert pickle.loads(pickle.dumps(values)) == values


def test_each_flag_has_one_meaning_downstream() -> None:
    """N is valid data, T a lower bound, B/D/F/M/C data problems; S is neither of the last two."""
    assert {f for f in DataFlag if f.is_lower_bound} == LOWER_BOUND_FLAGS == {DataFlag.OVER_RANGE}
    assert {f.value for f in DataFlag if f.is_data_problem} == {"B", "D", "F", "M", "C"}
    assert DATA_PROBLEM_FLAGS.isdisjoint(LOWER_BOUND_FLAGS)
    for flag in (DataFlag.NORMAL, DataFlag.MANUAL):
        assert (flag.is_lower_bound, flag.is_data_problem) == (False, False)
    saturated, link_down = (
        replace(reading(), flag=DataFlag.OVER_RANGE),
        replace(reading(), flag=DataFlag.COMMS),
    )
    assert (saturated.is_lower_bound, saturated.is_data_problem, saturated.counts_for_compliance) == (
        True,
        False,
        False,
    )
    assert (link_down.is_lower_bound, link_down.is_data_problem, link_down.counts_for_compliance) == (
        False,
        True,
        False,
    )


def test_a_readings_kind_is_its_data_kind_tag_and_realtime_without_one() -> None:
    """`data_kind` reads the tag validation adds; readings without it are real-time."""
    assert reading().data_kind is DataKind.REALTIME
    hourly = replace(reading(), tags=((DATA_KIND_TAG, "hourly"), ("station_id", "st-1")))
    assert hourly.data_kind is DataKind.HOURLY
    assert hourly != reading()


def test_a_value_below_the_detection_limit_is_shown_as_less_than_the_limit() -> None:
    """`shown_value` writes `<0.01` for a limit and the plain shortest number otherwise."""
    assert replace(reading(0.01), below_dl=True).shown_value == "<0.01"
    assert reading(0.01).shown_value == "0.01"
    assert reading(0.1 + 0.2).shown_value == "0.30000000000000004"
    assert reading(1e-05).shown_value == "1e-05"


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("0.01L", 0.01),
        ("10L", 10.0),
        (".5L", 0.5),
        ("1e-3L", 0.001),
        ("0.01", None),
        ("0.01l", None),
        ("-0.01L", None),
        ("<0.01", None),
        ("L", None),
        (" 0.01L", None),
        ("1e999L", None),
        ("1" * 40 + "L", None),
    ],
)
def test_below_detection_texts_are_the_limit_then_l(text: str, limit: float | None) -> None:
    """Only a non-negative decimal (or exponent) followed by `L` is a below-detection text."""
    assert parse_below_dl(text) == limit
