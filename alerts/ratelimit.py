"""Per-receiver rate limits: a token bucket, and digesting of what it cannot pass one by one.

Chat robots throttle (DingTalk and WeCom: 20 messages a minute per robot, then an error code),
and an operator sent fifty messages at once reads none of them. A receiver with a `rate_limit`
gets a bucket of `messages` tokens, refilled at `messages` per `per`. When the deliveries due for
it fit in the tokens at hand, each goes as a message of its own; when more are due than that,
they go together as one digest (a message listing them, up to `max_digest_events` in one), which
takes one token. Nothing is dropped, and nothing waits longer than the next token.

The bucket lives in memory: after a restart it starts full, so a restart may pass `messages`
messages at once, which the robots' per-minute windows tolerate.

Example:
    notify:
      receivers:
        - type: dingtalk
          name: duty-room
          access_token: "${DINGTALK_TOKEN}"
          rate_limit: {messages: 10, per: PT1M}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from pydantic import Field

from config.types import StrictModel

T = TypeVar("T")


class RateLimitConfig(StrictModel):
    messages: int = Field(gt=0, le=100_000, description="Messages allowed per `per`, and the largest burst.")
    per: timedelta = Field(gt=timedelta(0), description="The window `messages` refer to.")


class TokenBucket:
    """`capacity` tokens, refilled continuously at `capacity / per`; times are seconds on any clock."""

    def __init__(self, config: RateLimitConfig, now: float) -> None:
        self.capacity = float(config.messages)
        self._rate = config.messages / config.per.total_seconds()
        self._tokens = self.capacity
        self._updated = now

    def available(self, now: float) -> int:
        """Whole tokens at hand."""
        self._refill(now)
        return int(self._tokens + 1e-9)

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if self.available(now) < 1:
            return False
        self._tokens -= 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds until a token is at hand (0 when one is)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self._rate)

    def _refill(self, now: float) -> None:
        # A wall clock stepped back must not mint or burn tokens.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate)
        self._updated = max(self._updated, now)


def plan(due: Sequence[T], tokens: int | None, max_digest: int) -> list[list[T]]:
    """The messages to send now: one per due item if they fit in `tokens` (None: no limit), else
    one digest of the first `max_digest` items; nothing without a token."""
    if not due:
        return []
    if tokens is None or len(due) <= tokens:
        return [[item] for item in due]
    if tokens < 1:
        return []
    return [list(due[:max_digest])]
