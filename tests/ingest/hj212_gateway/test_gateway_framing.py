"""The stream framer: packets split and joined across reads, garbage, oversized and truncated packets."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders.hj212 import encode_data_packet
from ingest.sources.hj212_gateway.framing import Event, Frame, Framer, Garbage

MAX = 200
PACKET = encode_data_packet("50010300000001", "123456", "2011", datetime(2026, 11, 25, 8), {"ph": (7.5, "N")})
OTHER = encode_data_packet("MN-2", "123456", "2061", datetime(2026, 11, 25, 9), {"do": (8.25, "C")})


def feed_all(framer: Framer, *chunks: bytes) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events.extend(framer.feed(chunk))
    return events


def test_one_packet_in_one_read_is_one_complete_frame() -> None:
    """A whole packet in one read comes out as one complete frame, byte for byte."""
    framer = Framer(MAX)
    assert framer.feed(PACKET) == [Frame(PACKET)]
    assert not framer.in_packet
    assert framer.close() == []


@pytest.mark.parametrize("cut", [1, 2, 5, 6, 50, len(PACKET) - 2, len(PACKET) - 1])
def test_a_packet_split_across_reads_is_framed_once_it_is_whole(cut: int) -> None:
    """Nothing comes out until the CR LF arrives, whatever the split, including between CR and LF."""
    framer = Framer(MAX)
    assert framer.feed(PACKET[:cut]) == []
    assert framer.in_packet == (cut >= 2)
    assert framer.feed(PACKET[cut:]) == [Frame(PACKET)]


def test_a_packet_fed_byte_by_byte_is_framed() -> None:
    """A logger writing one byte at a time still yields the packet."""
    framer = Framer(MAX)
    events = feed_all(framer, *(PACKET[i : i + 1] for i in range(len(PACKET))))
    assert events == [Frame(PACKET)]


def test_several_packets_in_one_read_come_out_in_order() -> None:
    """Packets back to back in one read are separate frames, in stream order."""
    framer = Framer(MAX)
    assert framer.feed(PACKET + OTHER + PACKET) == [Frame(PACKET), Frame(OTHER), Frame(PACKET)]
    assert framer.packets_started == 3


def test_garbage_before_and_between_packets_is_reported_as_runs() -> None:
    """Bytes outside packets come out as garbage runs in place, ending at the next `##`."""
    framer = Framer(MAX)
    events = framer.feed(b"\x00\xffhello" + PACKET + b"\r\n junk " + OTHER + b"tail")
    assert events == [Garbage(b"\x00\xffhello"), Frame(PACKET), Garbage(b"\r\n junk "), Frame(OTHER)]
    assert framer.close() == [Garbage(b"tail")]


def test_a_header_split_after_its_first_hash_is_not_taken_for_garbage() -> None:
    """A read ending in `#` keeps it: the next read may complete the `##` header."""
    framer = Framer(MAX)
    assert framer.feed(b"noise#") == []
    assert framer.feed(PACKET[1:]) == [Garbage(b"noise"), Frame(PACKET)]


def test_a_lone_hash_in_garbage_stays_garbage() -> None:
    """A single `#` followed by anything but `#` is part of the garbage run."""
    framer = Framer(MAX)
    assert framer.feed(b"a#") == []
    assert framer.feed(b"b#c") == []
    assert framer.close() == [Garbage(b"a#b#c")]


def test_an_oversized_packet_is_cut_one_byte_over_the_limit_and_framing_resynchronises() -> None:
    """No CR LF within the limit: max+1 bytes come out as oversized, the rest is garbage up to the next `##`."""
    body = b"##9999" + b"x" * 300 + b"\r\n"
    framer = Framer(MAX)
    events = framer.feed(body + PACKET)
    assert events == [Frame(body[: MAX + 1], "oversized"), Garbage(body[MAX + 1 :]), Frame(PACKET)]


def test_a_terminator_just_past_the_limit_makes_the_packet_oversized() -> None:
    """A packet of max+1 bytes is oversized even though its CR LF arrives; one of max bytes is not."""
    body = b"##" + b"x" * (MAX - 3) + b"\r\n"
    assert len(body) == MAX + 1
    framer = Framer(MAX)
    assert framer.feed(body)[0] == Frame(body, "oversized")
    exact = b"##" + b"x" * (MAX - 4) + b"\r\n"
    assert Framer(MAX).feed(exact) == [Frame(exact)]


def test_a_packet_abandoned_for_a_new_header_is_truncated() -> None:
    """A `##` before the CR LF ends the unfinished packet as truncated and starts the next one."""
    framer = Framer(MAX)
    events = framer.feed(PACKET[:40] + PACKET)
    assert events == [Frame(PACKET[:40], "truncated"), Frame(PACKET)]


def test_a_packet_missing_its_terminator_is_truncated_at_close() -> None:
    """At the end of the stream a started packet is given back as truncated."""
    framer = Framer(MAX)
    assert framer.feed(PACKET[:-2]) == []
    assert framer.close() == [Frame(PACKET[:-2], "truncated")]
    assert not framer.in_packet


def test_garbage_is_flushed_in_runs_of_at_most_the_limit() -> None:
    """A flood of garbage never buffers more than the limit: it comes out in max-sized runs."""
    framer = Framer(MAX)
    events = framer.feed(b"z" * (2 * MAX + 10))
    assert events == [Garbage(b"z" * MAX), Garbage(b"z" * MAX)]
    assert framer.close() == [Garbage(b"z" * 10)]


def test_a_limit_too_small_for_a_packet_is_refused() -> None:
    """A framer that could not hold `##` and CR LF is a configuration error."""
    with pytest.raises(ValueError, match="max_packet_bytes"):
        Framer(3)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from([PACKET, OTHER, b"#", b"##", b"\r\n", b"\r", b"x", b"\x00garbage", b"##0010"]),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_framing_loses_nothing_and_does_not_depend_on_read_boundaries(
    parts: list[bytes], cuts: list[int]
) -> None:
    """Any stream, read in any pieces, gives the same events, which add up to the stream, each bounded."""
    stream = b"".join(parts)
    whole = Framer(MAX)
    expected = whole.feed(stream) + whole.close()
    bounds = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *bounds], [*bounds, len(stream)], strict=True)]
    chunked = Framer(MAX)
    got = feed_all(chunked, *pieces) + chunked.close()
    assert got == expected
    assert b"".join(event.data for event in got) == stream
    for event in got:
        assert len(event.data) <= MAX + 1
        if isinstance(event, Frame) and event.kind == "complete":
            assert event.data.startswith(b"##")
            assert event.data.endswith(b"\r\n")
            assert b"##" not in event.data[2:]
