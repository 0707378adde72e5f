"""The readings-log layout: tag sets written once per record, order kept, line protocol pre-rendered,
earlier layouts still read."""

from __future__ import annotations

import struct
from dataclasses import replace

import orjson

from ingest.model import DataFlag, Reading
from ingest.records import decode_readings, encode_readings, line_protocol, readings_count
from ingest.sinks.line_protocol import encode

A = (("basin", "长江"), ("station_id", "st-1"))
B = (("basin", "嘉陵江"), ("station_id", "st-2"))


def reading(station: str, parameter: str, value: float, tags: tuple[tuple[str, str], ...]) -> Reading:
    return Reading(
        station, "water_quality", parameter, value, "", 1_795_600_000_000_000_000, DataFlag.NORMAL, tags
    )


def test_each_tag_set_is_written_once_and_the_order_of_readings_is_kept() -> None:
    """Interleaved readings of two tag sets come back in their order; each tag value is stored once."""
    readings = [reading("st-1", "ph", 7.1, A), reading("st-2", "ph", 7.2, B), reading("st-1", "do", 8.0, A)]
    record = encode_readings(readings)
    assert decode_readings(record) == readings
    lines = line_protocol(record)
    assert lines is not None
    document = record[: len(record) - len(lines)]
    assert document.count("长江".encode()) == 1
    assert document.count("嘉陵江".encode()) == 1


def test_the_line_protocol_part_is_what_the_sinks_would_encode_from_the_readings() -> None:
    """The pre-rendered lines equal `line_protocol.encode` of the decoded readings, and the count is kept."""
    readings = [reading("st-1", "ph", 7.1, A), reading("st-1", "do", 8.25, A), reading("st-2", "ph", 6.5, B)]
    record = encode_readings(readings)
    assert line_protocol(record) == encode(decode_readings(record)).encode()
    assert readings_count(record) == 3


def test_readings_that_cannot_be_rendered_leave_the_line_protocol_part_empty() -> None:
    """A tag value with a newline has no line protocol form: the record keeps its readings, without lines."""
    readings = [reading("st-1", "ph", 7.1, (("river", "bad\nname"), ("station_id", "st-1")))]
    record = encode_readings(readings)
    assert line_protocol(record) is None
    assert decode_readings(record) == readings


def test_records_of_the_first_layout_still_decode() -> None:
    """A readings log written before the tag table (arrays with tags per reading) reads back the same."""
    readings = [reading("st-1", "ph", 7.1, A), reading("st-2", "do", 8.0, B)]
    old = orjson.dumps(
        [
            [r.station_id, r.measurement, r.parameter, r.value, r.unit, r.time_ns, r.flag.value, r.tags]
            for r in readings
        ]
    )
    assert decode_readings(old) == readings
    assert line_protocol(old) is None
    assert readings_count(old) == 2


def test_consumers_share_decoded_records_but_not_the_lists() -> None:
    """A record decoded twice gives equal readings, the same reading objects, in lists of its own."""
    record = encode_readings([reading("st-1", "ph", 7.3, A), reading("st-1", "do", 8.1, A)])
    first, second = decode_readings(record), decode_readings(bytes(record))
    assert first == second
    assert first is not second
    assert all(a is b for a, b in zip(first, second, strict=True))
    first.clear()
    assert len(decode_readings(record)) == 2


def test_records_of_the_second_layout_still_decode() -> None:
    """A readings log of JSON-only records (tag table, no header, no lines) reads back the same."""
    readings = [reading("st-1", "ph", 7.1, A), reading("st-2", "do", 8.0, B)]
    rows = [[0, "st-1", "water_quality", "ph", 7.1, "", 1_795_600_000_000_000_000, "N"]]
    rows.append([1, "st-2", "water_quality", "do", 8.0, "", 1_795_600_000_000_000_000, "N"])
    old = orjson.dumps({"t": [A, B], "r": rows})
    assert decode_readings(old) == readings
    assert line_protocol(old) is None
    assert readings_count(old) == 2


def test_below_detection_rows_are_listed_only_when_there_are_any() -> None:
    """`d` names the rows below the detection limit; a record without any has no `d` at all."""
    plain = [reading("st-1", "nh3n", 0.5, A), reading("st-1", "tp", 0.01, A)]
    marked = [plain[0], replace(plain[1], below_dl=True)]
    plain_record, marked_record = encode_readings(plain), encode_readings(marked)
    assert plain_record[0] == marked_record[0] == 4
    assert b'"d"' not in plain_record
    assert b'"d":[1]' in marked_record
    assert decode_readings(marked_record) == marked
    assert [r.below_dl for r in decode_readings(plain_record)] == [False, False]


def test_time_corrected_rows_are_listed_only_when_there_are_any() -> None:
    """`c` names the rows whose time was corrected (the line protocol part marks them `_tc=1i`); a
    record without any has no `c`, so a layout 4 record from before `c` reads back uncorrected."""
    plain = [reading("st-1", "ph", 7.1, A), reading("st-1", "nh3n", 0.025, A)]
    marked = [replace(plain[0], time_corrected=True), replace(plain[1], below_dl=True, time_corrected=True)]
    plain_record, marked_record = encode_readings(plain), encode_readings(marked)
    assert plain_record[0] == marked_record[0] == 4
    assert b'"c"' not in plain_record
    assert b'"d":[1],"c":[0,1]' in marked_record
    assert decode_readings(marked_record) == marked
    assert [r.time_corrected for r in decode_readings(plain_record)] == [False, False]
    lines = line_protocol(marked_record)
    assert lines is not None
    assert b'ph=7.1,ph_flag="N",ph_tc=1i,nh3n=0.025,nh3n_flag="N",nh3n_dl=1i,nh3n_tc=1i ' in lines


def test_records_of_the_third_layout_still_decode() -> None:
    """A layout 3 record (header, JSON without `d`, lines) reads back the same, lines included."""
    readings = [reading("st-1", "ph", 7.1, A), reading("st-2", "do", 8.0, B)]
    rows = [[0, "st-1", "water_quality", "ph", 7.1, "", 1_795_600_000_000_000_000, "N"]]
    rows.append([1, "st-2", "water_quality", "do", 8.0, "", 1_795_600_000_000_000_000, "N"])
    document = orjson.dumps({"t": [A, B], "r": rows})
    lines = encode(readings).encode()
    old = struct.pack("<BII", 3, 2, len(document)) + document + lines
    assert decode_readings(old) == readings
    assert line_protocol(old) == lines
    assert readings_count(old) == 2
