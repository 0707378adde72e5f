"""A durable consumer lost while its node is still away: the consumer deleted, and the next bind of
its `DurablePull` failing once (what a reader sees while the consumer's node is frozen)."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import pytest
from nats.js import JetStreamContext

from ingest.cluster.pull import DurablePull


def lose_the_consumer(monkeypatch: pytest.MonkeyPatch, pull: DurablePull, url: str) -> list[str]:
    """Delete `pull`'s consumer and make its next bind fail; the list gets "bind" once it failed."""
    bind = pull.bind
    failed: list[str] = []

    async def fail_once(js: JetStreamContext) -> None:
        if not failed:
            failed.append("bind")
            raise nats.errors.TimeoutError
        await bind(js)

    monkeypatch.setattr(pull, "bind", fail_once)

    async def delete_consumer() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_consumer(pull.stream, pull.durable)
        finally:
            await nc.close()

    asyncio.run(delete_consumer())
    return failed
