"""The CRC-16 of HJ 212 packets, and the Modbus variants some loggers send instead.

HJ 212-2017 (reference, "Packet"): over the data segment only, the register starts at 0xFFFF;
for each byte `crc = (crc >> 8) ^ byte`, then eight right shifts, each xoring 0xA001 when the bit
shifted out was 1. Modbus CRC-16 xors the byte into the register instead (`crc ^= byte`), keeping
its high byte; both use the reflected polynomial 0xA001, so one 256-entry table serves both.
The standard's own example, `QN=20160801085857223;ST=32;...;CP=&&RtdInterval=30&&`, gives 1C80.

Variants met in the field, accepted only when configured (`crc:` of the decoder and the gateway):
- `modbus`: the Modbus CRC-16, written as the 16-bit number (high byte first);
- `modbus_swapped`: the Modbus CRC-16 written in Modbus RTU's wire order, low byte first (a logger
  that prints the two bytes it would put on a serial line).
Upper- or lower-case hex digits are the same number and are read either way, always (HJ/T 212-2005
loggers write lower case); an answer is written in the case and variant its packet used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal

CrcVariant = Literal["hj212", "modbus", "modbus_swapped"]
# What the configuration takes: one variant, or several, accepted besides the standard's.
CrcChoice = CrcVariant | Sequence[CrcVariant]

_INITIAL: Final = 0xFFFF
_POLYNOMIAL: Final = 0xA001  # x^16 + x^15 + x^2 + 1, bit-reversed


def _shift_eight(value: int) -> int:
    for _ in range(8):
        value = (value >> 1) ^ _POLYNOMIAL if value & 1 else value >> 1
    return value


# After `(crc >> 8) ^ byte` the register holds at most 8 bits, so the eight shifts are a lookup.
_TABLE: Final = tuple(_shift_eight(i) for i in range(256))


def crc16_hj212(data: bytes) -> int:
    crc = _INITIAL
    for byte in data:
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc


def crc16_modbus(data: bytes) -> int:
    crc = _INITIAL
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc16_modbus_swapped(data: bytes) -> int:
    crc = crc16_modbus(data)
    return ((crc & 0xFF) << 8) | (crc >> 8)


CRC_FUNCTIONS: Final[Mapping[CrcVariant, Callable[[bytes], int]]] = {
    "hj212": crc16_hj212,
    "modbus": crc16_modbus,
    "modbus_swapped": crc16_modbus_swapped,
}


def accepted_variants(choice: CrcChoice) -> tuple[CrcVariant, ...]:
    """The variants a `crc:` setting accepts: always the standard's, then those configured, in order."""
    chosen: Sequence[CrcVariant] = (choice,) if isinstance(choice, str) else choice
    return ("hj212", *(variant for variant in dict.fromkeys(chosen) if variant != "hj212"))
