"""Validating a message's readings together gives what validating each reading alone gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.parameters import default_catalogue
from ingest.errors import RejectReason
from ingest.model import DataFlag, DataKind, ItemRejection, RawReading, Reading
from ingest.validate import NegativeValuesConfig, ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station

REGISTRY = registry(
    station("st-1", mn="MN001", timezone="Asia/Shanghai"),
    station("st-2"),
    station("st-9", mn="MN009", hj212_password="123456"),
)
VALIDATORS = [
    Validator(ValidationConfig(), REGISTRY, default_catalogue()),
    Validator(
        ValidationConfig(
            unknown_stations="accept",
            default_timezone="Asia/Tokyo",
            negative_values=NegativeValuesConfig(action="reject"),
        ),
        REGISTRY,
        default_catalogue(),
    ),
]
# (station_id, mn, password): known, by MN, right and wrong passwords, unknown, unnamed, bad ids.
SENDERS = [
    ("st-1", None, None),
    ("st-2", None, None),
    (None, "MN001", None),
    (None, "MN009", "123456"),
    (None, "MN009", "654321"),
    (None, "MN009", None),
    ("nowhere", None, None),
    ("bad id\n", None, None),
    ("x" * 100, None, None),
    (None, "MN999", None),
    (None, None, None),
]
NAIVE = datetime(2026, 11, 25, 16, 0)
# Equal instants as distinct objects and in other zones, naive times, times too far ahead.
TIMES = [
    T0,
    T0.replace(),
    T0.astimezone(timezone(timedelta(hours=8))),
    T0 + timedelta(minutes=10),
    NAIVE,
    NAIVE.replace(),
    NAIVE + timedelta(hours=1),
]
TOPIC_TAGS: list[dict[str, str]] = [
    {},
    {"kind": "water"},
    {"station_id": "st-1", "kind": "water"},
    {"station_id": "st-2"},
    {"mn": "MN009"},
    {"district": "elsewhere", "basin": "spoofed"},
    {"data_kind": "daily", "kind": "water"},
]


@st.composite
def messages(draw: st.DrawFn) -> list[RawReading]:
    """Readings that mostly share one sender and time, as a message's do, with every kind of exception."""
    sender, ts = draw(st.sampled_from(SENDERS)), draw(st.sampled_from(TIMES))
    raws = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            sender = draw(st.sampled_from(SENDERS))
        if draw(st.booleans()):
            ts = draw(st.sampled_from(TIMES))
        station_id, mn, password = sender
        raws.append(
            RawReading(
                parameter=draw(st.sampled_from(["do", "ph", "temp", "xyz", "q" * 50])),
                value=draw(st.sampled_from([8.0, 7.2, 0.01, -0.001, -1.0, 1e9, float("nan"), float("inf")])),
                ts=ts,
                station_id=station_id,
                mn=mn,
                unit=draw(st.sampled_from([None, "mg/L", "ug/L", "K", "furlongs"])),
                flag=draw(st.sampled_from(["N", "C", "Z", "", DataFlag.NORMAL])),
                assume_tz=draw(st.sampled_from([None, "Asia/Shanghai", "UTC"])),
                password=password,
                below_dl=draw(st.booleans()),
                kind=draw(st.sampled_from(["realtime", "hourly", "lab", "weekly", DataKind.DAILY])),
            )
        )
    return raws


@given(
    raws=messages(),
    topic_tags=st.sampled_from(TOPIC_TAGS),
    validator=st.sampled_from(VALIDATORS),
)
def test_a_message_validates_as_its_readings_do_one_by_one(
    raws: list[RawReading], topic_tags: dict[str, str], validator: Validator
) -> None:
    """Readings and rejections (reasons, details, stations, codes) match reading-by-reading validation, in order."""
    readings, rejections = validator.validate_many(raws, topic_tags, T0_NS)
    alone = [validator.validate(raw, topic_tags, T0_NS) for raw in raws]
    assert readings == [r for r in alone if isinstance(r, Reading)]
    assert rejections == [r for r in alone if isinstance(r, ItemRejection)]


def test_a_mixed_message_keeps_each_readings_own_verdict_in_order() -> None:
    """Two stations, two times and bad values in one message: each reading gets its own result."""
    validator = VALIDATORS[0]
    raws = [
        RawReading("do", 8.0, T0, station_id="st-1"),
        RawReading("ph", 7.2, T0 + timedelta(minutes=10), station_id="st-1"),
        RawReading("do", 8.1, NAIVE, station_id="st-2"),
        RawReading("do", 8.2, NAIVE, station_id="st-1"),
        RawReading("ph", 7.3, T0, station_id="nowhere"),
        RawReading("xyz", 1.0, T0, station_id="st-2"),
        RawReading("ph", 7.4, T0, station_id="st-2"),
    ]
    readings, rejections = validator.validate_many(raws, {}, T0_NS)
    assert [(r.station_id, r.parameter, r.value, r.time_ns) for r in readings] == [
        ("st-1", "do", 8.0, T0_NS),
        ("st-1", "do", 8.2, T0_NS),  # st-1's zone is Asia/Shanghai: 16:00 there is T0
        ("st-2", "ph", 7.4, T0_NS),
    ]
    assert [(r.reason, r.station_id, r.parameter) for r in rejections] == [
        (RejectReason.CLOCK_SKEW, "st-1", "ph"),
        (RejectReason.NAIVE_TIMESTAMP, "st-2", "do"),
        (RejectReason.UNKNOWN_STATION, "nowhere", "ph"),
        (RejectReason.UNKNOWN_PARAMETER, "st-2", "xyz"),
    ]


@pytest.mark.parametrize(
    ("senders", "resolutions"),
    [
        (["st-1"] * 8, 1),
        (["st-1"] * 4 + ["st-2"] * 4, 2),
        (["st-1", "st-2"] * 2, 4),
    ],
)
def test_the_station_is_resolved_once_per_run_of_readings_that_share_it(
    senders: list[str], resolutions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readings in a row from one station share one registry lookup and identity check."""
    validator = Validator(ValidationConfig(), REGISTRY, default_catalogue())
    calls: list[RawReading] = []
    resolve = validator.resolve_station

    def counting(raw: RawReading) -> object:
        calls.append(raw)
        return resolve(raw)

    monkeypatch.setattr(validator, "resolve_station", counting)
    readings, rejections = validator.validate_many(
        [RawReading("do", 8.0, T0, station_id=s) for s in senders], {}, T0_NS
    )
    assert (len(readings), rejections) == (len(senders), [])
    assert len(calls) == resolutions
