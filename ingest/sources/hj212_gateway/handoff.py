"""Where the gateway hands packets: the `Handoff` contract and the topics packets travel on.

Every framed packet, good or bad, goes on `hj212/{MN}` so the daemon's decode -> validate path
stores its readings or dead-letters it with its reason; a packet whose MN cannot be read (or is
not 1-24 of `A-Z a-z 0-9 - _`) goes on `hj212/_invalid`, and runs of unframeable bytes on
`hj212/_unframed`. Both special levels fit the `hj212/{mn}` subscription and decode as malformed.
The one exception: a logger's answers to the gateway's own requests (`clock`) stay in the gateway.
A data upload from a logger whose clock is off is handed off with the clock's time-shift note.

Two handoffs exist: `MqttHandoff` (ingest.sources.hj212_gateway.mqtt) publishes with QoS 1 and counts a
message durable at its PUBACK; the daemon's in-process handoff appends to the raw write-ahead log
and counts it durable once fsynced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Protocol

from ingest.decoders.hj212.packet import MN_SYNTAX

TOPIC_PREFIX: Final = "hj212/"
UNFRAMED_TOPIC: Final = TOPIC_PREFIX + "_unframed"
INVALID_MN_TOPIC: Final = TOPIC_PREFIX + "_invalid"

_MN = re.compile(MN_SYNTAX)
# The MN field of a packet that did not parse: a header field, so after the start or a ';'.
_MN_FIELD = re.compile(rb"(?:^|[;#0-9])MN=([^;&]{0,64});")


class Handoff(Protocol):
    """Takes messages from the gateway's event loop and says when each is durable."""

    def submit(self, topic: str, payload: bytes, on_durable: Callable[[], None]) -> None:
        """Accept one message without blocking for long; thread-safe.

        `on_durable` is called once, from any thread, when the message is durably accepted, and
        never if it is lost; the gateway bounds what it submits and has not seen made durable.
        """
        ...

    def close(self) -> None: ...


def topic_for(mn: str | None) -> str:
    """`hj212/{mn}` for a valid MN, else `hj212/_invalid`."""
    if mn is None or _MN.fullmatch(mn) is None:  # `$` alone would let a trailing newline through
        return INVALID_MN_TOPIC
    return TOPIC_PREFIX + mn


def sniff_mn(frame: bytes) -> str | None:
    """The MN field of a packet that failed to parse, read leniently for routing; None if absent."""
    match = _MN_FIELD.search(frame)
    if match is None:
        return None
    return match.group(1).decode("ascii", "replace")
