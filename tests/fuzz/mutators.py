"""Byte-level mutations of payloads, and HJ 212 mutations that keep the frame valid.

`mutate` applies one to four operations (bit flips, interesting bytes, insertions of hostile
tokens, deletion, truncation, duplication, splicing with another payload, token replacement).
`mutate_hj212` mutates the data segment of a packet and, most of the time, frames it again with
the right length and CRC, so the mutation reaches the parser and the decoder behind the CRC
check instead of stopping there.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Final

from tests.fuzz.generators import hj212_frame
from tests.fuzz.hostile import DATA_TIMES, HJ212_NUMBERS, NUMBER_TOKENS, STRING_ATOMS

INTERESTING_BYTES: Final = b'\x00\xff\x7f\x80\x0a\x0d\x09 "\\{}[],:-+.eE0123456789;=&#/'
TOKENS: Final[tuple[bytes, ...]] = (
    b"1e309", b"-1e309", b"NaN", b"Infinity", b"9" * 400, b"-0", b"\x00", b"\\u0000", b"\\ud800",
    b"[", b"]", b"{", b"}", b'"', b",", b"[" * 2000, b"{" * 2000, b"\xc3\x28", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xef\xbb\xbf", b"null", b"true", b'"ts":"1500-01-01T00:00:00Z"',
    b"&&", b";;", b"CP=&&", b"DataTime=10000101000000", b"=", b"-Rtd=", b"-Flag=X", b"\r\n", b"##",
)  # fmt: skip
_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_FRAME = re.compile(rb"##([0-9]{4})(.*)([0-9A-Fa-f]{4})\r\n", re.DOTALL)
# Rounds of mutation: most inputs get one or two changes, so they stay close to valid.
_ROUNDS: Final = (1, 1, 1, 2, 2, 3, 4)


def _span(rng: random.Random, data: bytes) -> tuple[int, int]:
    start = rng.randrange(len(data) + 1)
    return start, min(len(data), start + rng.choice((1, 2, 4, 8, 32, 256, 4096)))


def _flip(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _interesting(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    if not data:
        return bytes([rng.choice(INTERESTING_BYTES)])
    buf = bytearray(data)
    buf[rng.randrange(len(buf))] = rng.choice(INTERESTING_BYTES)
    return bytes(buf)


def _insert(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(TOKENS) + data[at:]


def _delete(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    start, end = _span(rng, data)
    return data[:start] + data[end:]


def _truncate(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _duplicate(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    start, end = _span(rng, data)
    return data[:end] + data[start:end] * rng.choice((1, 2, 10, 100)) + data[end:]


def _splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


def _repeat(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    return data * rng.choice((2, 3, 50))


def _number(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    matches = list(_NUMBER.finditer(data))
    if not matches:
        return _insert(rng, data, _other)
    match = rng.choice(matches)
    token = rng.choice(NUMBER_TOKENS + HJ212_NUMBERS).encode()
    return data[: match.start()] + token + data[match.end() :]


def _string(rng: random.Random, data: bytes, _other: bytes) -> bytes:
    matches = list(_STRING.finditer(data))
    if not matches:
        return _insert(rng, data, _other)
    match = rng.choice(matches)
    atom = rng.choice(STRING_ATOMS)
    quoted = b'"' + atom.encode("utf-8", "surrogatepass").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return data[: match.start()] + quoted + data[match.end() :]


def _data_time(rng: random.Random, data: bytes, other: bytes) -> bytes:
    at = data.find(b"DataTime=")
    if at < 0:
        return _number(rng, data, other)
    end = at + len(b"DataTime=")
    stop = end
    while stop < len(data) and data[stop : stop + 1] not in b";,&":
        stop += 1
    return data[:end] + rng.choice(DATA_TIMES).encode() + data[stop:]


Mutation = Callable[[random.Random, bytes, bytes], bytes]
MUTATIONS: Final[tuple[Mutation, ...]] = (
    _flip, _interesting, _insert, _delete, _truncate, _duplicate, _splice, _repeat, _number, _number,
    _string,
)  # fmt: skip
HJ212_MUTATIONS: Final[tuple[Mutation, ...]] = (*MUTATIONS, _data_time, _data_time, _number)


def mutate(
    rng: random.Random, data: bytes, other: bytes, mutations: tuple[Mutation, ...] = MUTATIONS
) -> bytes:
    """`data` changed by one to four random operations; `other` is material for splicing."""
    for _ in range(rng.choice(_ROUNDS)):
        data = rng.choice(mutations)(rng, data, other)
    return data


def segment_of(packet: bytes) -> bytes | None:
    """The data segment of a framed HJ 212 packet, or None when it is not framed."""
    match = _FRAME.fullmatch(packet)
    return match.group(2) if match is not None else None


def mutate_hj212(rng: random.Random, packet: bytes, other: bytes) -> bytes:
    """A mutated packet, framed again with the right length and CRC four times in five."""
    segment = segment_of(packet)
    if segment is None or rng.random() < 0.2:
        return mutate(rng, packet, other, HJ212_MUTATIONS)
    other_segment = segment_of(other) or other
    return hj212_frame(mutate(rng, segment, other_segment, HJ212_MUTATIONS), rng)
