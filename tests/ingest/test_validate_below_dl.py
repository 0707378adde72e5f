"""Validation of results below the detection limit, small negative values and kinds of value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.parameters import default_catalogue
from ingest.errors import RejectReason
from ingest.model import DATA_KIND_TAG, DataFlag, DataKind, ItemRejection, RawReading, Reading
from ingest.validate import NegativeValuesConfig, ValidationConfig, Validator
from tests.helpers import T0, T0_NS, registry, station

REGISTRY = registry(station("st-1"))


def validator(**negative_values: object) -> Validator:
    config = ValidationConfig(negative_values=NegativeValuesConfig.model_validate(negative_values))
    return Validator(config, REGISTRY, default_catalogue())


DEFAULT = validator()


def raw(**overrides: object) -> RawReading:
    fields: dict[str, object] = {"parameter": "nh3n", "value": 0.5, "ts": T0, "station_id": "st-1"}
    fields.update(overrides)
    return RawReading(**fields)  # type: ignore[arg-type]


def ok(result: Reading | ItemRejection) -> Reading:
    assert isinstance(result, Reading), result
    return result


def rejected(result: Reading | ItemRejection) -> ItemRejection:
    assert isinstance(result, ItemRejection), result
    return result


def test_a_result_below_the_detection_limit_keeps_its_mark_and_the_limit() -> None:
    """`0.01L` becomes a reading marked below_dl whose value is the limit, never a plain measurement."""
    reading = ok(DEFAULT.validate(raw(value=0.01, below_dl=True), {}, T0_NS))
    assert (reading.value, reading.below_dl, reading.flag) == (0.01, True, DataFlag.NORMAL)
    assert reading.shown_value == "<0.01"
    measured = ok(DEFAULT.validate(raw(value=0.01), {}, T0_NS))
    assert (measured.below_dl, measured.shown_value) == (False, "0.01")
    assert measured != reading


def test_the_detection_limit_is_converted_to_the_canonical_unit() -> None:
    """A limit of 10 µg/L is stored as 0.01 mg/L, still below_dl."""
    reading = ok(DEFAULT.validate(raw(value=10.0, unit="ug/L", below_dl=True), {}, T0_NS))
    assert (reading.value, reading.unit, reading.below_dl) == (0.01, "mg/L", True)


def test_a_detection_limit_outside_the_physical_range_is_out_of_range() -> None:
    """A negative or huge limit is refused, and a negative limit is not taken for analyser noise."""
    for value in (-0.001, 1e6):
        rejection = rejected(DEFAULT.validate(raw(value=value, below_dl=True), {}, T0_NS))
        assert rejection.reason is RejectReason.OUT_OF_RANGE
        assert "(the detection limit)" in rejection.detail


def test_a_small_negative_value_is_below_the_detection_limit_by_default() -> None:
    """NH3-N -0.003 mg/L is kept as below the detection limit (limit not known: 0), its flag kept."""
    reading = ok(DEFAULT.validate(raw(value=-0.003, flag="C"), {}, T0_NS))
    assert (reading.value, reading.below_dl, reading.flag) == (0.0, True, DataFlag.CALIBRATION)
    in_micrograms = ok(DEFAULT.validate(raw(parameter="tp", value=-3.0, unit="ug/L"), {}, T0_NS))
    assert (in_micrograms.value, in_micrograms.below_dl) == (0.0, True)


def test_a_configured_detection_limit_is_what_a_small_negative_value_stores() -> None:
    """With detection_limits: {nh3n: 0.025}, -0.003 is stored as 0.025 below the detection limit."""
    reading = ok(validator(detection_limits={"nh3n": 0.025}).validate(raw(value=-0.003), {}, T0_NS))
    assert (reading.value, reading.below_dl) == (0.025, True)


def test_a_value_further_below_zero_than_the_tolerance_is_out_of_range() -> None:
    """The tolerance is a fraction of the range (NH3-N: 1e-4 of 0-500 = 0.05); beyond it, a fault."""
    assert ok(DEFAULT.validate(raw(value=-0.05), {}, T0_NS)).below_dl
    assert rejected(DEFAULT.validate(raw(value=-0.051), {}, T0_NS)).reason is RejectReason.OUT_OF_RANGE
    # Hg: 1e-4 of 0-1 mg/L = 0.0001 mg/L; a trace metal's noise is small.
    assert rejected(DEFAULT.validate(raw(parameter="hg", value=-0.001), {}, T0_NS)).reason is (
        RejectReason.OUT_OF_RANGE
    )
    wider = validator(tolerances={"nh3n": 0.2}, tolerance=0.0)
    assert ok(wider.validate(raw(value=-0.1), {}, T0_NS)).below_dl
    assert rejected(wider.validate(raw(parameter="tp", value=-0.001), {}, T0_NS)).reason is (
        RejectReason.OUT_OF_RANGE
    )


def test_with_action_reject_small_negative_values_are_out_of_range() -> None:
    """`action: reject` restores the strict range check."""
    strict = validator(action="reject")
    assert rejected(strict.validate(raw(value=-0.003), {}, T0_NS)).reason is RejectReason.OUT_OF_RANGE


def test_parameters_whose_range_reaches_below_zero_keep_their_negative_values() -> None:
    """Water temperature -1 °C and a level below the datum are measurements, not below-DL results."""
    for code, value in (("temp", -1.0), ("level", -3.5)):
        reading = ok(DEFAULT.validate(raw(parameter=code, value=value), {}, T0_NS))
        assert (reading.value, reading.below_dl) == (value, False)


def test_negative_value_settings_name_known_codes_and_sane_numbers() -> None:
    """Unknown codes fail at start-up; negative tolerances and limits fail at load."""
    with pytest.raises(ValueError, match="unknown parameter codes: nh4"):
        validator(tolerances={"nh4": 0.1})
    with pytest.raises(ValidationError):
        NegativeValuesConfig.model_validate({"detection_limits": {"nh3n": -0.01}})
    with pytest.raises(ValidationError):
        NegativeValuesConfig.model_validate({"tolerance": 0.5})


def test_kinds_other_than_realtime_are_a_tag_and_realtime_has_none() -> None:
    """An hourly value gets data_kind=hourly among sorted tags; a real-time one keeps the old tags."""
    realtime = ok(DEFAULT.validate(raw(), {}, T0_NS))
    assert DATA_KIND_TAG not in dict(realtime.tags)
    assert realtime.data_kind is DataKind.REALTIME
    for kind in ("minute", "hourly", "daily", "lab", DataKind.HOURLY):
        reading = ok(DEFAULT.validate(raw(kind=kind), {}, T0_NS))
        assert dict(reading.tags) == dict(realtime.tags) | {DATA_KIND_TAG: str(kind)}
        assert list(reading.tags) == sorted(reading.tags)
        assert reading.data_kind is DataKind(kind)
        assert type(dict(reading.tags)[DATA_KIND_TAG]) is str


def test_an_unknown_kind_is_malformed() -> None:
    """A kind that is not a DataKind value is refused, naming the kinds there are."""
    rejection = rejected(DEFAULT.validate(raw(kind="weekly"), {}, T0_NS))
    assert rejection.reason is RejectReason.MALFORMED
    assert "'weekly'" in rejection.detail
    assert "realtime, minute, hourly, daily, lab" in rejection.detail


def test_a_topic_placeholder_never_sets_the_data_kind() -> None:
    """`{data_kind}` in a topic does not become a tag: the reading's kind decides."""
    realtime = ok(DEFAULT.validate(raw(), {"data_kind": "daily", "kind": "water"}, T0_NS))
    assert DATA_KIND_TAG not in dict(realtime.tags)
    assert dict(realtime.tags)["kind"] == "water"
    hourly = ok(DEFAULT.validate(raw(kind="hourly"), {"data_kind": "daily"}, T0_NS))
    assert dict(hourly.tags)[DATA_KIND_TAG] == "hourly"


def test_a_message_of_mixed_kinds_keeps_each_readings_kind() -> None:
    """validate_many gives each reading its own kind, below-DL mark and flag, in order."""
    raws = [
        raw(parameter="nh3n", value=0.01, below_dl=True, kind="hourly"),
        raw(parameter="tp", value=0.2, flag="T"),
        raw(parameter="do", value=8.0, kind="hourly", flag="B"),
        raw(parameter="codmn", value=-0.01, kind="lab"),
    ]
    readings, rejections = DEFAULT.validate_many(raws, {}, T0_NS)
    assert rejections == []
    assert [(r.parameter, r.data_kind, r.below_dl, r.flag) for r in readings] == [
        ("nh3n", DataKind.HOURLY, True, DataFlag.NORMAL),
        ("tp", DataKind.REALTIME, False, DataFlag.OVER_RANGE),
        ("do", DataKind.HOURLY, False, DataFlag.COMMS),
        ("codmn", DataKind.LAB, True, DataFlag.NORMAL),
    ]


def test_a_time_corrected_reading_keeps_its_mark_on_the_common_and_the_checked_path() -> None:
    """The gateway's time-corrected mark reaches the reading, whether the value needed converting or not."""
    raws = [
        raw(parameter="ph", value=7.1, unit=None, time_corrected=True),
        raw(parameter="nh3n", value=25.0, unit="ug/L", below_dl=True, time_corrected=True),
        raw(parameter="codmn", value=-0.01, time_corrected=True),  # below DL by the negative-value rule
        raw(parameter="do", value=8.0),
    ]
    readings, rejections = DEFAULT.validate_many(raws, {}, T0_NS)
    assert rejections == []
    assert [(r.parameter, r.value, r.below_dl, r.time_corrected) for r in readings] == [
        ("ph", 7.1, False, True),
        ("nh3n", 0.025, True, True),
        ("codmn", 0.0, True, True),
        ("do", 8.0, False, False),
    ]
