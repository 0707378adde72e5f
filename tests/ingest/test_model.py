"""The values that flow between stages: equal, hashable and picklable by their fields."""

from __future__ import annotations

import pickle

from ingest.model import DataFlag, Message, RawReading, Reading
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
    values = [reading(), RawReading("ph", 7.6, T0, station_id="st-1", password="pw"), Message("t", b"p", 1)]
    assert pickle.loads(pickle.dumps(values)) == values
