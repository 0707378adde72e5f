"""The JSON decoder's plain-dict fast path decides exactly as the pydantic models do."""

from __future__ import annotations

import orjson
import pytest

from ingest.decoders import ecowatch_json
from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.errors import RejectedPayload
from ingest.model import Decoded

DOCUMENTS: list[object] = [
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00+08:00", "readings": {"ph": 7.6, "do": 8}},
    {"station_id": "st-1", "ts": "2026-11-25T00:00:00Z", "readings": {"ph": 7.6}, "v": 1},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00.25", "readings": {"ph": 7.6}},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00.123456-03:30", "readings": {"ph": 7.6}, "v": None},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "v": 2},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "v": True},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "v": "1"},
    {"station_id": "st-1", "ts": "2026-13-25T08:00:00Z", "readings": {"ph": 7.6}},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00+25:00", "readings": {"ph": 7.6}},
    {"station_id": "st-1", "ts": "2026-11-25 08:00:00", "readings": {"ph": 7.6}},
    {"station_id": "st-1", "ts": 1764028800, "readings": {"ph": 7.6}},
    {"station_id": "", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}},
    {"station_id": "x" * 65, "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}},
    {"station_id": 7, "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {}},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": [7.6]},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "extra": 1},
    {"ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}},
    {
        "station_id": "st-1",
        "ts": "2026-11-25T08:00:00Z",
        "readings": {
            "a": {"value": 1.5, "unit": "mg/L", "flag": "N"},
            "b": {"value": 2},
            "c": {"value": True},
            "d": {"value": "3"},
            "e": {"value": 1.0, "unit": "x" * 17},
            "f": {"value": 1.0, "flag": ""},
            "g": {"value": 1.0, "flag": "NNN"},
            "h": {"value": 1.0, "other": 1},
            "i": {"unit": "mg/L"},
            "j": {"value": 1.0, "unit": None, "flag": "T"},
            "k": {"value": 1.0, "unit": 5},
            "l": "7",
            "m": None,
        },
    },
    {
        "station_id": "st-1",
        "ts": "2026-11-25T08:00:00Z",
        "readings": {
            "a": "0.01L",
            "b": {"value": "10L", "unit": "ug/L"},
            "c": {"value": 0.01, "below_dl": True},
            "d": {"value": 0.01, "below_dl": False},
            "e": {"value": "0.01L", "below_dl": False},
            "f": {"value": "0.01L", "below_dl": True, "flag": "T"},
            "g": {"value": 0.01, "below_dl": 1},
            "h": {"value": 0.01, "below_dl": None},
            "i": "0.01",
            "j": "1e999L",
            "k": "-0.01L",
            "l": "x" * 100,
            "m": {"value": "L"},
        },
    },
    {
        "station_id": "st-1",
        "ts": "2026-11-25T08:00:00Z",
        "readings": {"ph": 7.6, "tp": "0.01L"},
        "kind": "hourly",
    },
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": "realtime"},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": "weekly"},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": None},
    {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": 2},
    [
        {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}},
        {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": "lab"},
        {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "kind": "Lab"},
        {"station_id": "st-1", "ts": "2026-11-25T08:00:00Z", "readings": {"ph": 7.6}, "v": 3},
        {"station_id": "st-1", "ts": "not a time", "readings": {"ph": 7.6}},
    ],
]


def decode(document: object) -> Decoded | str:
    try:
        return EcowatchJsonDecoder().decode("t", orjson.dumps(document))
    except RejectedPayload as exc:
        return f"{exc.reason}: {exc.detail}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_fast_path_and_models_agree(document: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each document decodes (or is rejected, with the same words) alike with and without the fast path."""
    fast = decode(document)
    monkeypatch.setattr(ecowatch_json, "_fast_envelope", lambda item: None)
    monkeypatch.setattr(ecowatch_json, "_fast_object", lambda raw: None)
    assert fast == decode(document)


def test_well_formed_documents_skip_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """A well-formed document with bare numbers and reading objects never reaches pydantic."""

    def refuse(value: object) -> None:
        raise AssertionError(f"pydantic asked about {value!r}")

    monkeypatch.setattr(ecowatch_json._Envelope, "model_validate", refuse)
    monkeypatch.setattr(ecowatch_json._ReadingObject, "model_validate", refuse)
    document = {"station_id": "st-1", "ts": "2026-11-25T08:00:00+08:00", "v": 1}
    decoded = decode(document | {"readings": {"ph": 7.6, "do": {"value": 8.1, "unit": "mg/L"}}})
    assert isinstance(decoded, Decoded)
    assert [(r.parameter, r.value, r.unit) for r in decoded.readings] == [
        ("ph", 7.6, None),
        ("do", 8.1, "mg/L"),
    ]
