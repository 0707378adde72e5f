"""The CRC-16 of HJ 212 packets, and the Modbus variant some loggers send instead.

HJ 212-2017 (reference, "Packet"): over the data segment only, the register starts at 0xFFFF;
for each byte `crc = (crc >> 8) ^ byte`, then eight right shifts, each xoring 0xA001 when the bit
shifted out was 1. Modbus CRC-16 xors the byte into the register instead (`crc ^= byte`), keeping
its high byte; both use the reflected polynomial 0xA001, so one 256-entry table serves both.
The standard's own example, `QN=20160801085857223;ST=32;...;CP=&&RtdInterval=30&&`, gives 1C80.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Literal

CrcVariant = Literal["hj212", "modbus"]

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


CRC_FUNCTIONS: Final[Mapping[CrcVariant, Callable[[bytes], int]]] = {
    "hj212": crc16_hj212,
    "modbus": crc16_modbus,
}
