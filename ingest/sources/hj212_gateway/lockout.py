"""Password guessing: wrong passwords per (MN, peer), and the lockout that follows too many.

A packet whose PW does not match its station's `hj212_password` is a failure of its (MN, peer)
pair (`peers.peer_key`). `max_failures` failures within `window` lock the pair out for `lockout`:
the gateway then refuses every packet of that MN from that peer, right password or not, without
handing it off or answering it. One good packet does not clear earlier failures (a guesser behind
the NAT of a working logger would otherwise get a fresh allowance every upload); failures older
than `window` no longer count. Other MNs from the same peer and the same MN from other peers are
unaffected, so a guesser cannot lock a logger out from elsewhere.

Times are seconds on a monotonic clock, passed in (`now`), so the rules are tested without
waiting. At most `max_tracked` pairs are remembered: past that, pairs with nothing left to count are
dropped first, then the least recently failed, so a guesser with many addresses cannot fill memory.
Used from the gateway's event loop only (no lock).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

# Far more pairs than a national network has failing loggers, small in memory (~200 bytes each).
MAX_TRACKED: Final = 10_000

LockoutKey = tuple[str, str]  # (MN, peer)


@dataclass(slots=True)
class _Pair:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float | None = None


class PasswordLockout:
    def __init__(
        self, *, max_failures: int, window_s: float, lockout_s: float, max_tracked: int = MAX_TRACKED
    ) -> None:
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0 or max_tracked < 1:
            raise ValueError("failures, window, lockout and capacity must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._max_tracked = max_tracked
        self._pairs: OrderedDict[LockoutKey, _Pair] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pairs)

    def locked(self, key: LockoutKey, now: float) -> bool:
        """Whether `key` is locked out at `now`."""
        pair = self._pairs.get(key)
        if pair is None or pair.locked_until is None:
            return False
        if now < pair.locked_until:
            return True
        pair.locked_until = None
        if not pair.failures:
            del self._pairs[key]
        return False

    def failed(self, key: LockoutKey, now: float) -> bool:
        """Count a wrong password of `key` at `now`; True if it starts a lockout."""
        pair = self._pairs.get(key)
        if pair is None:
            self._make_room(now)
            pair = self._pairs[key] = _Pair()
        else:
            self._pairs.move_to_end(key)
        failures = pair.failures
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        failures.append(now)
        if len(failures) < self.max_failures:
            return False
        failures.clear()
        pair.locked_until = now + self.lockout_s
        return True

    def _make_room(self, now: float) -> None:
        if len(self._pairs) < self._max_tracked:
            return
        spent = [key for key, pair in self._pairs.items() if not self._counts(pair, now)]
        for key in spent:
            del self._pairs[key]
        if len(self._pairs) < self._max_tracked:
            return
        # Full of live pairs: the least recently failed go, down to 90 % so that the scan above
        # runs once per many new pairs rather than for each.
        keep = self._max_tracked - max(1, self._max_tracked // 10)
        while len(self._pairs) > keep:
            self._pairs.popitem(last=False)

    def _counts(self, pair: _Pair, now: float) -> bool:
        """Whether a pair still matters: locked out, or a failure within the window."""
        locked = pair.locked_until is not None and now < pair.locked_until
        return locked or bool(pair.failures and pair.failures[-1] > now - self.window_s)
