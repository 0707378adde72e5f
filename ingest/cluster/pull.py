"""`DurablePull`: fetching from a durable pull consumer across leader moves, lost consumers and frozen nodes.

The intake (`ingest.cluster.intake`) and each receiver's dispatcher (`ingest.cluster.outbox`) read
a durable consumer this way. A fetch that fails (its consumer's leader moved, the consumer is gone,
the connection was rebuilt) drops the subscription, and the next fetch binds a new one, creating
the consumer again if it is missing. Until a bind succeeds there is no subscription at all: kept
after a failed bind, the old one sent every later pull request to an inbox nobody read, and the
consumer waited with messages pending and no pull request (a dispatcher and the intake stalled
for good after a NATS node came back).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ingest.cluster.buckets import TRANSIENT

log = structlog.get_logger(__name__)

_CONSUMER_EXISTS: Final = 10148
_RETRY_BIND_S: Final = 0.2


class DurablePull:
    """One durable pull consumer of `stream` (made from `config` when missing), fetched from."""

    def __init__(self, stream: str, config: api.ConsumerConfig) -> None:
        if not config.durable_name:
            raise ValueError("DurablePull needs a durable consumer")
        self.stream = stream
        self.durable: str = config.durable_name
        self._config = config
        self._sub: JetStreamContext.PullSubscription | None = None

    async def bind(self, js: JetStreamContext) -> None:
        """Create the consumer (an existing one is used as it is) and subscribe to it; raises."""
        try:
            await js.add_consumer(self.stream, self._config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _CONSUMER_EXISTS:
                raise
            log.warning("durable_consumer_config_differs", consumer=self.durable, error=exc.description)
        self._sub = await js.pull_subscribe_bind(self.durable, self.stream)

    async def fetch(self, js: JetStreamContext, batch: int, timeout: float) -> list[Msg]:
        """Up to `batch` messages, [] when none came within `timeout` or while no subscription could
        be bound (after a short pause, so that a caller's loop does not spin)."""
        if self._sub is None:
            try:
                await self.bind(js)
            except (*TRANSIENT, nats.errors.Error) as exc:
                log.debug("durable_consumer_bind_failed", consumer=self.durable, error=repr(exc))
                await asyncio.sleep(_RETRY_BIND_S)
                return []
        assert self._sub is not None
        try:
            return await self._sub.fetch(batch, timeout=timeout)
        except TimeoutError:  # nats.errors.TimeoutError, and the plain one nats-py's batch fetch raises
            return []
        except nats.errors.Error as exc:
            log.debug("durable_consumer_fetch_failed", consumer=self.durable, error=repr(exc))
            sub, self._sub = self._sub, None
            with contextlib.suppress(nats.errors.Error):  # the connection that held it is gone
                await sub.unsubscribe()
            await asyncio.sleep(_RETRY_BIND_S)
            return []
