"""Time as the logs, the databases and the alert store keep it: integer ns since the Unix epoch.

Exact to the microsecond (what `datetime` holds); float timestamps would lose microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

NS_PER_SECOND: Final = 1_000_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# What the stores can hold: times as int64 ns, less the two values InfluxDB reserves.
INT64_NS_MIN: Final = -(2**63) + 2
INT64_NS_MAX: Final = 2**63 - 2


def ns(delta: timedelta) -> int:
    """A duration in ns."""
    return (delta.days * 86400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


def to_ns(moment: datetime) -> int:
    """Ns since the epoch of an aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


def from_ns(value: int) -> datetime:
    """The aware UTC datetime of ns since the epoch (to the microsecond)."""
    return EPOCH + timedelta(microseconds=value // 1000)
