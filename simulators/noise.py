"""Counter-based randomness: a number that depends only on a key, never on call order.

`random.Random` is a stream: the tenth draw depends on the nine before it, so a simulator that
draws per message gives different values for the same instant when it starts at another time or
skips a silent station. Hashing (seed, station, time, channel) with the splitmix64 finaliser gives
each instant its own independent draw instead, which is what makes backfills, replays and tests of
any window agree byte for byte.
"""

from __future__ import annotations

import hashlib
import math

_MASK64 = (1 << 64) - 1
# 2**-53: maps the top 53 bits of a 64-bit hash onto [0, 1) with a float's full precision.
_UNIT = 1.0 / (1 << 53)
# Draws beyond 3 sigma would be outliers no healthy instrument reports; scenarios make outliers.
_MAX_SIGMA = 3.0
# A sum of four uniforms on [0, 1) has mean 2 and variance 4/12: scale by sqrt(3) for variance 1.
_QUARTER = 1.0 / 65536
_SQRT3 = math.sqrt(3.0)


def key_of(*parts: object) -> int:
    """A stable 64-bit key for a tuple of values (stable across processes, unlike `hash`)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def mix(key: int, counter: int) -> int:
    """The splitmix64 finaliser of key + counter: a well-spread 64-bit value."""
    x = (key + (counter + 1) * 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def uniform(key: int, counter: int) -> float:
    """A draw in [0, 1) for this key and counter."""
    return (mix(key, counter) >> 11) * _UNIT


def normal(key: int, counter: int) -> float:
    """A draw with mean 0 and standard deviation 1, bell-shaped, within ±3.

    The sum of the four 16-bit quarters of one hash (Irwin-Hall): a third of the cost of
    Box-Muller, and close enough to Gaussian for instrument noise.
    """
    x = mix(key, counter)
    quarters = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48)
    z = (quarters * _QUARTER - 2.0) * _SQRT3
    return max(-_MAX_SIGMA, min(_MAX_SIGMA, z))
