"""The two KV buckets of cluster ownership, and the connection both the workers and `status` use.

- `<prefix>-leases`: one key per partition (`partition.<n>`, value `leases.Lease`) and the key
  `partitions` (the partition count the deployment was made with). No TTL: a lease expires by
  not changing (see `leases`), so its epoch survives every change of owner.
- `<prefix>-workers`: one key per live worker, rewritten every `renew_interval`; the bucket's
  max age (`worker_ttl`) removes the key of a worker that stopped. Its keys are the live workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

# What a leader election, a frozen server or a reconnect looks like to one request: try again later.
TRANSIENT: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)
# JetStream API error: a stream of that name exists with another configuration.
_STREAM_NAME_IN_USE: Final = 10058
_KV_OPERATION: Final = "KV-Operation"
_KV_REMOVALS: Final = frozenset({"DEL", "PURGE"})
# nats-server 2.11+ writes expiry and removal markers with this header instead of KV-Operation.
_MARKER_REASON: Final = "Nats-Marker-Reason"


def leases_bucket(prefix: str) -> str:
    return f"{prefix}-leases"


def workers_bucket(prefix: str) -> str:
    return f"{prefix}-workers"


async def connect(servers: Sequence[str], name: str, request_timeout: float) -> Client:
    """A connection that fails over between `servers` and leaves a frozen server within ~3 s."""
    return await nats.connect(
        servers=list(servers),
        name=name,
        connect_timeout=request_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        # The default (2 min) would keep a worker on a frozen node far longer than a lease lasts.
        ping_interval=1,
        max_outstanding_pings=3,
    )


async def live_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """The keys of `bucket` whose last entry is a value (not a delete, purge or expiry marker).

    Read from the stream's per-subject state rather than `KeyValue.keys()`: that watcher can end
    before the first message arrives when a put races its creation (nats-py 2.16), and answer an
    empty bucket for a live one, which would make a worker believe it is alone.
    """
    stream = f"KV_{bucket}"
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    keys: list[str] = []
    for subject in sorted(info.state.subjects or {}):
        try:
            last = await js.get_last_msg(stream, subject)
        except nats.js.errors.NotFoundError:
            continue  # expired between the two requests
        headers = last.headers or {}
        if headers.get(_KV_OPERATION) in _KV_REMOVALS or _MARKER_REASON in headers:
            continue
        keys.append(subject[len(prefix) :])
    return keys


async def ensure_bucket(js: JetStreamContext, bucket: str, *, replicas: int, ttl: float | None) -> KeyValue:
    """Create `bucket`, or bind to it when it exists already (with any configuration)."""
    try:
        return await js.create_key_value(bucket=bucket, history=1, replicas=replicas, ttl=ttl)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        return await js.key_value(bucket)
