"""Decoder vectors: every folder under cases/<format>/<case>/ (see cases/README.md) is one test."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from ingest.decoders import DECODERS, Decoder
from ingest.errors import RejectedPayload, RejectReason
from ingest.model import RawReading

CASES_DIR = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class Case:
    format: str
    name: str
    payload: bytes
    expected: dict[str, Any]


def _load_cases() -> list[Case]:
    cases = []
    for folder in sorted(CASES_DIR.glob("*/*/")):
        payloads = [p for p in (folder / "payload.txt", folder / "payload.bin") if p.exists()]
        assert len(payloads) == 1, f"{folder}: needs exactly one payload.txt or payload.bin"
        expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        cases.append(Case(folder.parent.name, folder.name, payloads[0].read_bytes(), expected))
    return cases


CASES = _load_cases()


def _reading(entry: dict[str, Any]) -> RawReading:
    return RawReading(**(entry | {"ts": datetime.fromisoformat(entry["ts"])}))


def test_cases_cover_every_owned_format() -> None:
    """The vector folders hold cases for the SenML and HJ 212 decoders, under registered names only."""
    formats = {case.format for case in CASES}
    assert {"senml", "hj212"} <= formats
    assert formats <= set(DECODERS)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.format}/{c.name}" for c in CASES])
def test_case(case: Case) -> None:
    """The payload decodes to exactly the expected readings and rejections, or to the expected rejection."""
    assert case.expected.get("description"), "every case says what it pins"
    factory = cast(Callable[..., Decoder], DECODERS[case.format])
    decoder = factory(**case.expected.get("options", {}))
    if "rejected" in case.expected:
        with pytest.raises(RejectedPayload) as caught:
            decoder.decode("test/topic", case.payload)
        assert caught.value.reason is RejectReason(case.expected["rejected"]["reason"])
        assert case.expected["rejected"]["detail"] in caught.value.detail
        return
    decoded = decoder.decode("test/topic", case.payload)
    # The HJ 212 PW rides along for validation to check; the vectors pin the readings themselves.
    assert [replace(r, password=None) for r in decoded.readings] == [
        _reading(entry) for entry in case.expected.get("readings", [])
    ]
    expected_rejections = case.expected.get("rejections", [])
    assert len(decoded.rejections) == len(expected_rejections), decoded.rejections
    for rejection, expected in zip(decoded.rejections, expected_rejections, strict=True):
        assert rejection.reason is RejectReason(expected["reason"])
        assert expected["detail"] in rejection.detail
        assert rejection.station_id == expected.get("station_id")
        assert rejection.parameter == expected.get("parameter")
