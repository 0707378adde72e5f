"""Line protocol encoding: escaping, grouping into points, float and timestamp formatting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.model import DataFlag, Reading
from ingest.sinks.line_protocol import LineEncoder, encode

T0 = 1_795_600_000_123_456_789
TAGS = (("basin", "长江"), ("district", "渝中区"), ("river", "长江"), ("station_id", "cq-cj-cuntan"))


def reading(
    parameter: str = "ph",
    value: float = 7.6,
    *,
    time_ns: int = T0,
    measurement: str = "water_quality",
    tags: tuple[tuple[str, str], ...] = TAGS,
    flag: DataFlag = DataFlag.NORMAL,
    below_dl: bool = False,
    time_corrected: bool = False,
) -> Reading:
    return Reading(
        station_id=dict(tags).get("station_id", "cq-cj-cuntan"),
        measurement=measurement,
        parameter=parameter,
        value=value,
        unit="",
        time_ns=time_ns,
        flag=flag,
        tags=tags,
        below_dl=below_dl,
        time_corrected=time_corrected,
    )


@dataclass
class Point:
    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, float | int | str] = field(default_factory=dict)
    time_ns: int = 0


class _Scanner:
    """A reference reader of one line, written from the line protocol reference, not from `encode`."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.at = 0

    def token(self, escapable: str, stops: str) -> str:
        out: list[str] = []
        while self.at < len(self.line) and self.line[self.at] not in stops:
            char = self.line[self.at]
            if char == "\\" and self.at + 1 < len(self.line) and self.line[self.at + 1] in escapable + "\\":
                out.append(self.line[self.at + 1])
                self.at += 2
            else:
                out.append(char)
                self.at += 1
        return "".join(out)

    def expect(self, char: str) -> None:
        assert self.line[self.at] == char, f"expected {char!r} at {self.at} of {self.line!r}"
        self.at += 1

    def string(self) -> str:
        self.expect('"')
        value = self.token('"', '"')
        self.expect('"')
        return value


def parse(text: str) -> list[Point]:
    assert text.endswith("\n")
    points = []
    for line in text[:-1].split("\n"):
        scan = _Scanner(line)
        point = Point(scan.token(", ", ", "))
        while scan.line[scan.at] == ",":
            scan.expect(",")
            key = scan.token(",= ", "=")
            scan.expect("=")
            point.tags[key] = scan.token(",= ", ", ")
        scan.expect(" ")
        while True:
            key = scan.token(",= ", "=")
            scan.expect("=")
            if scan.line[scan.at] == '"':
                point.fields[key] = scan.string()
            else:
                number = scan.token("", ", ")
                point.fields[key] = int(number[:-1]) if number.endswith("i") else float(number)
            if scan.line[scan.at] == " ":
                break
            scan.expect(",")
        scan.expect(" ")
        point.time_ns = int(line[scan.at :])
        points.append(point)
    return points


def test_one_reading_is_one_line_with_value_flag_tags_and_time() -> None:
    """A reading becomes measurement, sorted tags, a float and a flag field, and its ns time."""
    text = encode([reading(flag=DataFlag.CALIBRATION)])

    assert text == (
        "water_quality,basin=长江,district=渝中区,river=长江,station_id=cq-cj-cuntan "
        f'ph=7.6,ph_flag="C" {T0}\n'
    )


def test_readings_of_one_point_share_a_line() -> None:
    """Readings with the same measurement, tags and time are one line; any difference starts another."""
    other_station = (("station_id", "cq-jlj-beiwenquan"),)
    readings = [
        reading("ph", 7.6),
        reading("do", 8.1),
        reading("ph", 7.7, time_ns=T0 + 1),
        reading("ph", 7.8, tags=other_station),
        reading("level", 3.5, measurement="hydrology"),
        reading("temp", 18.5),
    ]

    points = parse(encode(readings))

    assert [(p.measurement, p.tags.get("station_id"), p.time_ns, p.fields) for p in points] == [
        (
            "water_quality",
            "cq-cj-cuntan",
            T0,
            {"ph": 7.6, "ph_flag": "N", "do": 8.1, "do_flag": "N", "temp": 18.5, "temp_flag": "N"},
        ),
        ("water_quality", "cq-cj-cuntan", T0 + 1, {"ph": 7.7, "ph_flag": "N"}),
        ("water_quality", "cq-jlj-beiwenquan", T0, {"ph": 7.8, "ph_flag": "N"}),
        ("hydrology", "cq-cj-cuntan", T0, {"level": 3.5, "level_flag": "N"}),
    ]


def test_the_later_reading_of_a_parameter_wins_within_a_point() -> None:
    """Two values of one parameter for the same point write one field: the later one, as a re-write would."""
    points = parse(encode([reading("ph", 7.1, flag=DataFlag.FAULT), reading("ph", 7.2)]))

    assert points[0].fields == {"ph": 7.2, "ph_flag": "N"}


def test_special_characters_are_escaped_where_each_part_needs_it() -> None:
    """Measurement escapes comma and space; keys and tag values also `=`; strings escape `"`; `\\` doubles."""
    text = encode(
        [
            reading(
                'p h,=x"\\',
                1.0,
                measurement='water quality,=x"\\',
                tags=(("river name", 'a,b=c d"e\\f'),),
                flag=DataFlag.NORMAL,
            )
        ]
    )

    assert text == (
        r'water\ quality\,=x"\\,river\ name=a\,b\=c\ d"e\\f p\ h\,\=x"\\=1.0,p\ h\,\=x"\\_flag="N" '
        + f"{T0}\n"
    )


def test_string_fields_escape_quotes_and_backslashes() -> None:
    """A flag text with `"` and `\\` stays inside its quotes and reads back unchanged."""
    odd = Reading("s", "water_quality", "ph", 7.0, "", T0, flag='x"\\y', tags=TAGS)  # type: ignore[arg-type]

    text = encode([odd])

    assert 'ph_flag="x\\"\\\\y"' in text
    assert parse(text)[0].fields["ph_flag"] == 'x"\\y'


def test_empty_tag_values_are_left_out() -> None:
    """Line protocol has no empty tag value; the tag is omitted instead of making the line invalid."""
    points = parse(encode([reading(tags=(("district", ""), ("station_id", "s1")))]))

    assert points[0].tags == {"station_id": "s1"}


def _with_text_in(where: str, text: str) -> Reading:
    if where == "flag":
        return Reading("s", "water_quality", "ph", 7.0, "", T0, flag=text, tags=TAGS)  # type: ignore[arg-type]
    if where == "measurement":
        return reading(measurement=text)
    if where == "tag_key":
        return reading(tags=((text, "v"),))
    if where == "tag_value":
        return reading(tags=(("k", text),))
    return reading(parameter=text)


@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85"])
@pytest.mark.parametrize("where", ["measurement", "tag_key", "tag_value", "parameter", "flag"])
def test_control_characters_are_refused(bad: str, where: str) -> None:
    """A control character anywhere would split or corrupt the line, so encoding refuses it."""
    with pytest.raises(ValueError, match="control character"):
        encode([_with_text_in(where, f"a{bad}b")])


@pytest.mark.parametrize("measurement", ["", "#water_quality"])
def test_measurements_that_cannot_be_written_are_refused(measurement: str) -> None:
    """An empty measurement is invalid and a leading `#` would turn the line into a comment."""
    with pytest.raises(ValueError, match="cannot be written"):
        encode([reading(measurement=measurement)])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(value: float) -> None:
    """NaN and infinities have no line protocol form; encoding raises instead of writing `nan`."""
    with pytest.raises(ValueError, match="no line protocol form"):
        encode([reading(value=value)])


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (7.0, "7.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e-05, "0.00001"),
        (5e-324, "5e-324"),
        (1.5e16, "1.5e+16"),
        (123456789.123, "123456789.123"),
    ],
)
def test_floats_are_written_in_their_shortest_exact_form(value: float, written: str) -> None:
    """Values are written in the shortest text that reads back exactly, always as floats."""
    assert f"ph={written}," in encode([reading(value=value)])


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips(value: float) -> None:
    """Any finite float reads back bit for bit."""
    assert parse(encode([reading(value=value)]))[0].fields["ph"] == value


printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
measurements = printable.filter(lambda text: not text.startswith("#"))


@given(measurement=measurements, key=printable, value=printable, parameter=printable)
def test_any_printable_names_round_trip(measurement: str, key: str, value: str, parameter: str) -> None:
    """Measurement, tag key and value and field key of printable characters read back unchanged."""
    points = parse(encode([reading(parameter, 1.5, measurement=measurement, tags=((key, value),))]))

    assert len(points) == 1
    assert points[0].measurement == measurement
    assert points[0].tags == {key: value}
    assert points[0].fields == {parameter: 1.5, f"{parameter}_flag": "N"}


def test_nothing_encodes_to_nothing() -> None:
    """An empty batch is the empty string, so a sink can skip the request."""
    assert encode([]) == ""


def test_a_hundred_thousand_readings_make_one_line_per_point() -> None:
    """100 000 readings of 12 500 points encode to 12 500 lines (speed is measured in bench/, not here)."""
    parameters = ["ph", "temp", "do", "cond", "turb", "codmn", "nh3n", "tp"]
    readings = [
        reading(p, 7.25, time_ns=T0 + minute * 60_000_000_000, tags=(("station_id", f"cq-{station}"),))
        for station in range(250)
        for minute in range(50)
        for p in parameters
    ]
    text = encode(readings)

    assert text.count("\n") == 250 * 50


def test_a_reading_below_the_detection_limit_adds_an_integer_dl_field() -> None:
    """`nh3n_dl=1i` follows the flag of a below-DL reading only; measured readings write no `_dl`."""
    text = encode([reading("nh3n", 0.025, below_dl=True), reading("tp", 0.2)])

    assert text == (
        "water_quality,basin=长江,district=渝中区,river=长江,station_id=cq-cj-cuntan "
        f'nh3n=0.025,nh3n_flag="N",nh3n_dl=1i,tp=0.2,tp_flag="N" {T0}\n'
    )
    assert parse(text)[0].fields == {"nh3n": 0.025, "nh3n_flag": "N", "nh3n_dl": 1, "tp": 0.2, "tp_flag": "N"}


def test_the_mark_follows_each_reading_through_the_field_cache() -> None:
    """One encoder, the same parameter and flag measured then below DL then measured: each line is right."""
    encoder = LineEncoder()
    lines = [
        encoder.encode([reading("nh3n", value, time_ns=T0 + i, below_dl=below)])
        for i, (value, below) in enumerate(((0.3, False), (0.025, True), (0.31, False)))
    ]
    assert ["nh3n_dl" in line for line in lines] == [False, True, False]


def test_a_reading_at_a_corrected_time_adds_an_integer_tc_field() -> None:
    """`ph_tc=1i` follows the flag (and `_dl`) of a reading whose time was corrected; others write no `_tc`."""
    corrected = [
        reading("ph", 7.1, time_corrected=True),
        reading("nh3n", 0.025, below_dl=True, time_corrected=True),
    ]
    text = encode([*corrected, reading("do", 8.0)])

    assert text == (
        "water_quality,basin=长江,district=渝中区,river=长江,station_id=cq-cj-cuntan "
        'ph=7.1,ph_flag="N",ph_tc=1i,nh3n=0.025,nh3n_flag="N",nh3n_dl=1i,nh3n_tc=1i,'
        f'do=8.0,do_flag="N" {T0}\n'
    )
    assert parse(text)[0].fields["ph_tc"] == 1


def test_the_time_corrected_mark_follows_each_reading_through_the_field_cache() -> None:
    """One encoder, the same parameter and flag as sent, corrected, then as sent again: each line is right."""
    encoder = LineEncoder()
    lines = [
        encoder.encode([reading("ph", 7.1, time_ns=T0 + i, time_corrected=corrected)])
        for i, corrected in enumerate((False, True, False))
    ]
    assert ["ph_tc" in line for line in lines] == [False, True, False]


def test_the_data_kind_tag_makes_a_series_of_its_own() -> None:
    """A real-time and an hourly value of the same time are two lines, the hourly one tagged."""
    hourly_tags = tuple(sorted((*TAGS, ("data_kind", "hourly"))))
    points = parse(encode([reading("nh3n", 0.3), reading("nh3n", 0.28, tags=hourly_tags)]))

    assert [(p.tags.get("data_kind"), p.fields["nh3n"]) for p in points] == [(None, 0.3), ("hourly", 0.28)]
