"""Cutting a TCP byte stream into HJ 212 packets: `##` ... CR LF, at most `max_packet_bytes` long.

Sans-IO: `feed` takes whatever a read returned and gives back events in stream order, so packets
split across reads, several packets in one read and garbage around them all come out the same.

- A packet starts at `##` and ends at the first CR LF: a `Frame` of kind `complete`. Whether its
  length field, CRC and fields hold is the parser's business, not the framer's.
- Bytes outside packets are `Garbage`, coalesced into runs; a run ends at the next `##`, at close,
  or when it reaches `max_packet_bytes`, so no buffer grows past that.
- A new `##` before the CR LF means the sender gave up on a packet (a logger restarting mid-write):
  the bytes before it are a `truncated` frame and framing resynchronises on the new `##`. HJ 212
  fields never hold `##` (CP values and the password exclude `&`, `;`, `,` and `=`; none of the
  standard's values contain `#`), so a real packet is not cut.
- No CR LF within `max_packet_bytes`: the first `max_packet_bytes + 1` bytes are an `oversized`
  frame (one byte over, so the parser rejects it as too large) and the rest, up to the next `##`,
  is garbage.
- `close()` gives back what is left: a started packet as `truncated`, and the pending garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_HEADER = b"##"
_END = b"\r\n"

FrameKind = Literal["complete", "truncated", "oversized"]


@dataclass(frozen=True, slots=True)
class Frame:
    """The bytes of one packet as sent, from `##` through CR LF when complete."""

    data: bytes
    kind: FrameKind = "complete"


@dataclass(frozen=True, slots=True)
class Garbage:
    """A run of bytes outside any packet."""

    data: bytes


Event = Frame | Garbage


class Framer:
    def __init__(self, max_packet_bytes: int) -> None:
        if max_packet_bytes < len(_HEADER) + len(_END):
            raise ValueError("max_packet_bytes cannot hold a header and a terminator")
        self._max = max_packet_bytes
        self._buffer = bytearray()  # in a packet: starts with "##"; else at most one pending '#'
        self._garbage = bytearray()
        self._in_packet = False
        self.packets_started = 0

    @property
    def garbage_buffered(self) -> int:
        """Garbage bytes taken in but not yet given back in a `Garbage` event."""
        return len(self._garbage) + (0 if self._in_packet else len(self._buffer))

    @property
    def in_packet(self) -> bool:
        """A packet's `##` has arrived and its end has not."""
        return self._in_packet

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def close(self) -> list[Event]:
        """What is left at the end of the stream."""
        events: list[Event] = []
        if self._in_packet:
            events.append(Frame(bytes(self._buffer), "truncated"))
        else:
            self._garbage += self._buffer
        self._buffer.clear()
        self._in_packet = False
        self._flush_garbage(events)
        return events

    def _step(self, events: list[Event]) -> bool:
        """Take one event's worth from the buffer; False when more input is needed."""
        buffer = self._buffer
        if not self._in_packet:
            start = buffer.find(_HEADER)
            if start < 0:
                # A trailing '#' may be the first half of a header split across reads.
                keep = 1 if buffer.endswith(b"#") else 0
                self._add_garbage(buffer[: len(buffer) - keep], events)
                del buffer[: len(buffer) - keep]
                return False
            self._add_garbage(buffer[:start], events)
            del buffer[:start]
            self._flush_garbage(events)
            self._in_packet = True
            self.packets_started += 1
        end = buffer.find(_END, len(_HEADER))
        restart = buffer.find(_HEADER, len(_HEADER))
        if restart >= 0 and (end < 0 or restart < end) and restart <= self._max:
            self._emit(restart, "truncated", events)
            return True
        if end >= 0 and end + len(_END) <= self._max:
            self._emit(end + len(_END), "complete", events)
            return True
        if len(buffer) > self._max:
            self._emit(self._max + 1, "oversized", events)
            return True
        return False

    def _emit(self, size: int, kind: FrameKind, events: list[Event]) -> None:
        events.append(Frame(bytes(self._buffer[:size]), kind))
        del self._buffer[:size]
        self._in_packet = False

    def _add_garbage(self, data: bytes | bytearray, events: list[Event]) -> None:
        self._garbage += data
        while len(self._garbage) >= self._max:
            events.append(Garbage(bytes(self._garbage[: self._max])))
            del self._garbage[: self._max]

    def _flush_garbage(self, events: list[Event]) -> None:
        if self._garbage:
            events.append(Garbage(bytes(self._garbage)))
            self._garbage.clear()
