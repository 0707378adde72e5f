"""Payload decoders: one module per wire format, one registry.

A decoder is pure: bytes in, a `Decoded` out (raw readings plus the parts it could not read), or
`RejectedPayload` when nothing in the message is usable. It never touches the registry, the clock
or the network; validation does the rest. The subscription's `format` picks the decoder by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final, Protocol

from ingest.decoders.ecowatch_json import EcowatchJsonDecoder
from ingest.decoders.hj212 import HJ212Decoder
from ingest.decoders.senml import SenMLDecoder
from ingest.model import Decoded


class Decoder(Protocol):
    name: ClassVar[str]

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """Read one message; raises `RejectedPayload` when none of it is usable."""
        ...


DECODERS: Final[Mapping[str, type[Decoder]]] = {
    c.name: c for c in (EcowatchJsonDecoder, SenMLDecoder, HJ212Decoder)
}
