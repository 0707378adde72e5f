"""The plain-loop payload stream of a run: valid, hostile, mutated, garbage and misrouted messages.

One seeded `random.Random` drives it all, so `(format, seed)` reproduces a run exactly. Mutations
start from the valid messages seen so far (a bounded pool), splicing in other payloads of the
run, so they stay close enough to valid to reach the decoders' and validation's inner checks.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from typing import Final

from tests.fuzz.generators import HOSTILE, VALID, Universe, clip_topic, hostile_topic
from tests.fuzz.mutators import mutate, mutate_hj212

# The share of each kind of message in a run, in order (they add up to 1).
MIX: Final = (("valid", 0.10), ("hostile", 0.45), ("mutated", 0.35), ("garbage", 0.04), ("topic", 0.06))
GARBAGE_SIZES: Final = (0, 1, 2, 16, 512, 4096, 65536, 65537)
_SEEDS: Final = 256


def fuzz_stream(fmt: str, universe: Universe, seed: int) -> Iterator[tuple[str, str, str, bytes]]:
    """An endless stream of (format, kind, topic, payload) for one format."""
    rng = random.Random(f"{fmt}/{seed}")
    valid, hostile = VALID[fmt], HOSTILE[fmt]
    seeds: deque[tuple[str, bytes]] = deque(maxlen=_SEEDS)
    seeds.append(valid(universe, rng))
    others: deque[bytes] = deque(maxlen=_SEEDS)
    others.append(hostile(universe, rng)[1])
    while True:
        kind = _pick_kind(rng)
        if kind == "valid":
            topic, payload = valid(universe, rng)
            seeds.append((topic, payload))
        elif kind == "hostile":
            topic, payload = hostile(universe, rng)
            if len(payload) < 4096:
                others.append(payload)
        elif kind == "mutated":
            topic, base = rng.choice(seeds)
            other = rng.choice(others) if rng.random() < 0.5 else rng.choice(seeds)[1]
            payload = (mutate_hj212 if fmt == "hj212" else mutate)(rng, base, other)
        elif kind == "garbage":
            topic = rng.choice(seeds)[0]
            payload = rng.randbytes(rng.choice(GARBAGE_SIZES))
        else:
            topic, payload = rng.choice(seeds)
            topic = clip_topic(hostile_topic(rng, topic))
        yield fmt, kind, topic, payload


def _pick_kind(rng: random.Random) -> str:
    pick = rng.random()
    for kind, share in MIX:
        if pick < share:
            return kind
        pick -= share
    return MIX[-1][0]
