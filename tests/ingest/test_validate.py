"""Validation: station, parameter, unit, range, flag and time checks, each with its own reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from config.parameters import default_catalogue
from config.times import to_ns
from ingest.errors import RejectReason
from ingest.model import DataFlag, ItemRejection, RawReading, Reading
from ingest.validate import ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station

VALIDATOR = Validator(
    ValidationConfig(),
    registry(station("st-1", mn="MN001", timezone="Asia/Shanghai"), station("st-2")),
    default_catalogue(),
)


def raw(**overrides: object) -> RawReading:
    fields: dict[str, object] = {"parameter": "do", "value": 8.0, "ts": T0, "station_id": "st-1"}
    fields.update(overrides)
    return RawReading(**fields)  # type: ignore[arg-type]


def ok(result: Reading | ItemRejection) -> Reading:
    assert isinstance(result, Reading), result
    return result


def rejected(result: Reading | ItemRejection) -> RejectReason:
    assert isinstance(result, ItemRejection), result
    return result.reason


def test_a_good_reading_gets_canonical_fields_and_station_tags() -> None:
    """Measurement, unit, time in ns and the registry's tags are attached."""
    reading = ok(VALIDATOR.validate(raw(), {}, T0_NS))
    assert (reading.station_id, reading.measurement, reading.parameter, reading.unit) == (
        "st-1",
        "water_quality",
        "do",
        "mg/L",
    )
    assert reading.time_ns == T0_NS
    assert dict(reading.tags) == {
        "station_id": "st-1",
        "district": "Yuzhong",
        "basin": "Yangtze",
        "river": "Jialing, upper",
    }
    assert reading.flag is DataFlag.NORMAL


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("do", 8100, "ug/L", 8.1),
        ("cond", 0.5, "mS/cm", 500),
        ("chla", 0.002, "mg/L", 2),
        ("temp", 293.15, "K", 20),
        ("level", 250, "cm", 2.5),
        ("flow", 3600, "m3/h", 1),
    ],
)
def test_units_are_converted_to_the_canonical_unit(
    code: str, value: float, unit: str, expected: float
) -> None:
    """Known units convert (µg/L → mg/L, mS/cm → µS/cm, K → °C, ...)."""
    assert ok(
        VALIDATOR.validate(raw(parameter=code, value=value, unit=unit), {}, T0_NS)
    ).value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"station_id": "nowhere"}, RejectReason.UNKNOWN_STATION),
        ({"station_id": None, "mn": "MN999"}, RejectReason.UNKNOWN_STATION),
        ({"parameter": "xyz"}, RejectReason.UNKNOWN_PARAMETER),
        ({"value": float("nan")}, RejectReason.NOT_A_NUMBER),
        ({"value": float("inf")}, RejectReason.NOT_A_NUMBER),
        ({"unit": "furlongs"}, RejectReason.UNKNOWN_UNIT),
        ({"value": -1.0}, RejectReason.OUT_OF_RANGE),
        ({"parameter": "ph", "value": 14.5}, RejectReason.OUT_OF_RANGE),
        ({"flag": "Z"}, RejectReason.UNKNOWN_FLAG),
        ({"ts": T0 + timedelta(minutes=6)}, RejectReason.CLOCK_SKEW),
        ({"station_id": "st-2", "ts": T0.replace(tzinfo=None)}, RejectReason.NAIVE_TIMESTAMP),
    ],
)
def test_each_problem_is_rejected_with_its_own_reason(
    overrides: dict[str, object], reason: RejectReason
) -> None:
    """Every check has its own machine-readable reason."""
    assert rejected(VALIDATOR.validate(raw(**overrides), {}, T0_NS)) == reason


def test_skew_within_the_limit_is_accepted() -> None:
    """A clock a little ahead (under max_future_skew) is tolerated."""
    ok(VALIDATOR.validate(raw(ts=T0 + timedelta(minutes=4)), {}, T0_NS))


def test_naive_time_takes_the_station_zone_then_the_protocol_zone() -> None:
    """A station's own zone applies first; without one, the zone the decoder states (HJ 212)."""
    local = datetime(2026, 11, 25, 16, 0)
    assert ok(VALIDATOR.validate(raw(ts=local), {}, T0_NS)).time_ns == T0_NS  # st-1 is Asia/Shanghai
    from_protocol = ok(
        VALIDATOR.validate(raw(station_id="st-2", ts=local, assume_tz="Asia/Shanghai"), {}, T0_NS)
    )
    assert from_protocol.time_ns == T0_NS


def test_mn_resolves_through_the_registry() -> None:
    """An HJ 212 MN names its registered station."""
    assert ok(VALIDATOR.validate(raw(station_id=None, mn="MN001"), {}, T0_NS)).station_id == "st-1"


def test_topic_station_must_agree_with_the_payload() -> None:
    """A payload claiming another station than its topic is a mismatch."""
    assert rejected(VALIDATOR.validate(raw(), {"station_id": "st-2"}, T0_NS)) == RejectReason.TOPIC_MISMATCH


def test_topic_placeholders_add_tags_but_never_override_the_registry() -> None:
    """Extra placeholders become tags; registry tags win over topic values."""
    reading = ok(
        VALIDATOR.validate(raw(), {"kind": "water", "district": "elsewhere", "basin": "spoofed"}, T0_NS)
    )
    tags = dict(reading.tags)
    assert tags["kind"] == "water"
    assert tags["district"] == "Yuzhong"
    assert tags["basin"] == "Yangtze"


def test_merged_tags_stay_per_station_and_topic_when_cached() -> None:
    """Repeated and alternating (station, topic tags) combinations each keep their own tag set."""
    validator = Validator(ValidationConfig(), registry(station("st-1"), station("st-2")), default_catalogue())
    combos = [
        ("st-1", {"kind": "water"}),
        ("st-2", {"kind": "water"}),
        ("st-1", {"kind": "air"}),
        ("st-1", {}),
    ]
    first = [ok(validator.validate(raw(station_id=s), topic, T0_NS)).tags for s, topic in combos]
    again = [ok(validator.validate(raw(station_id=s), topic, T0_NS)).tags for s, topic in combos]
    assert again == first
    assert [dict(tags).get("kind") for tags in first] == ["water", "water", "air", None]
    assert [dict(tags)["station_id"] for tags in first] == ["st-1", "st-2", "st-1", "st-1"]
    assert all(list(tags) == sorted(tags) for tags in first)


def test_unknown_stations_can_be_accepted_by_configuration() -> None:
    """`unknown_stations: accept` stores readings of unregistered stations, tagged by id only."""
    lenient = Validator(ValidationConfig(unknown_stations="accept"), registry(), default_catalogue())
    reading = ok(lenient.validate(raw(station_id="new-st"), {}, T0_NS))
    assert dict(reading.tags) == {"station_id": "new-st"}
    # An id that could not be a tag is still refused.
    assert rejected(lenient.validate(raw(station_id="bad id\n"), {}, T0_NS)) == RejectReason.UNKNOWN_STATION


def test_to_ns_is_exact_to_the_microsecond() -> None:
    """Timestamps keep their microseconds (float timestamps would round them)."""
    ts = datetime(2262, 1, 1, 0, 0, 0, 123457, tzinfo=timezone(timedelta(hours=8)))
    assert to_ns(ts) % 1_000_000_000 == 123_457_000


def test_flags_are_kept() -> None:
    """A calibration flag is kept on the reading and excludes it from compliance."""
    reading = ok(VALIDATOR.validate(raw(flag="C"), {}, T0_NS))
    assert reading.flag is DataFlag.CALIBRATION
    assert not reading.counts_for_compliance


def test_hj212_password_is_checked_against_the_station() -> None:
    """A station with an HJ 212 password refuses packets carrying another one."""
    secured = Validator(
        ValidationConfig(),
        registry(station("st-9", mn="MN009", hj212_password="123456")),
        default_catalogue(),
    )
    good = raw(station_id=None, mn="MN009", password="123456")
    assert ok(secured.validate(good, {}, T0_NS)).station_id == "st-9"
    assert rejected(secured.validate(raw(station_id=None, mn="MN009", password="654321"), {}, T0_NS)) == (
        RejectReason.WRONG_PASSWORD
    )
    assert (
        rejected(secured.validate(raw(station_id=None, mn="MN009"), {}, T0_NS)) == RejectReason.WRONG_PASSWORD
    )
