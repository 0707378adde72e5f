"""The log seam: what the pipeline needs from a durable log, so that another log can stand behind it.

Three small protocols. `Producer` is what writes a log: the MQTT source's group commit
(`GroupCommitter`) and the processor, which appends readings. `Consumer` is one named reader
with a durable offset: the processor on the raw log, each sink's delivery loop and the alert
engine's on the readings log (`ingest.delivery`). `Log` adds what the composition root
(`ingest.app.daemon`) needs to open consumers and report on them. `WriteAheadLog` and `WalReader`
implement them on local disk; a distributed log (a NATS JetStream stream) can implement them too.

    producer.append(record)            -> offset     buffered, not yet durable, not yet readable
    producer.sync()                    -> end        everything appended before is durable
    consumer = log.reader("influxdb")                resumes at the stored committed offset
    batch = consumer.read(500, timeout=0.2)          [(offset, record), ...], waits for records
    consumer.commit(batch[-1][0] + 1)                durable: a restart resumes after the batch

Guarantees (what users rely on):
- Durability before ack. A record is readable only once it is durable, and `sync()` returns only
  after every record appended before the call is durable (the WAL: written and fsynced). Whoever
  acknowledges upstream does so after `sync()`: the source's PUBACK and the gateway's 9014 come
  from `GroupCommitter`'s `on_durable`, the raw log is committed after the readings are synced.
  If `sync()` raises, nothing appended since the last good sync may be acknowledged.
- Offsets. `append` returns the record's offset; offsets grow strictly in append order, and a
  durable record's offset is never given to another record. They may have gaps (a partition of a
  shared stream sees only some sequence numbers), so users never count by subtracting offsets:
  "the record after `o`" is `o + 1`, and counts come from `lag()`. The WAL's are dense from 0.
- Ordering. A consumer reads records in offset order; `seek` moves it back (a replay, in order)
  or forward. Each producer's records are in the order of its `append` calls.
- At least once. `commit(offset)` durably records that every record below `offset` is done, and
  `log.reader(name)` resumes there, so whatever was read but not committed is read again after a
  crash or a `seek(committed)`. A record may also be appended twice (a broker redelivers what a
  crash left unacknowledged). Consumers therefore tolerate duplicates: sinks overwrite points with
  the same (measurement, tags, time), the alert engine skips readings it has seen.
- Retention and capacity. Records every consumer has committed past may be deleted (the WAL drops
  whole segments). A log has a capacity (`quota_bytes`): at it `append` raises `WalFullError`
  and appends nothing; only consumers' commits free space. Producers hold and retry, never drop
  (`GroupCommitter` holds records and their acks; the processor waits).
- Threads. `append`, `sync`, `usage_bytes` and the `Log` methods are safe from any thread. One
  thread at a time reads and seeks a consumer; `commit`, `committed` and `lag` may come from
  other threads (the processor's dead-letter thread commits; the HTTP thread reports lag).
- Closing. `Log.close()` syncs what is buffered; a `read` waiting on a closed log returns `[]`.

Implementing another log: write a class with `Log`'s methods and one with `Consumer`'s, keeping
the guarantees above; `_: type[Log] = YourLog` under `TYPE_CHECKING` has mypy check both (see
the end of `ingest/wal/log.py`; `Log.reader` returns the consumer). Map the offset onto the
log's own position (JetStream: the stream sequence); make `sync` wait for the log's own
acknowledgement (JetStream: every pending PubAck of the async publishes, each stored on a quorum
of replicas); keep committed offsets durably per consumer name (JetStream: a durable consumer
acked with AckAll up to `offset - 1`, or a KV entry); have `read` block up to `timeout` for new
records (a pull consumer's fetch). Add a factory to `tests/ingest/test_log_seam.py`, whose
conformance tests then run against it too, and choose the implementation in `ingest.app.daemon`.
`str(log)` names the log in log lines (the WAL: its directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol, TypeAlias

# Where a consumer with no stored offset starts: the oldest retained record, or the durable end.
Start: TypeAlias = Literal["beginning", "end"]


class Producer(Protocol):
    """Appends records and makes them durable (the source's group commit, the processor)."""

    @property
    def max_record_bytes(self) -> int:
        """The largest record `append` takes."""
        ...

    def append(self, record: bytes) -> int:
        """Buffer `record` and return its offset; not durable or readable before `sync`.

        Raises `WalFullError` (appending nothing) when the log is at its capacity, and
        ValueError for a record larger than `max_record_bytes`.
        """
        ...

    def sync(self) -> int:
        """Make every record appended before the call durable and readable; the durable end."""
        ...

    def usage_bytes(self) -> int:
        """Bytes counted against the capacity at which `append` raises `WalFullError`."""
        ...


class Consumer(Protocol):
    """One named consumer: reads durable records in order, commits its progress durably."""

    @property
    def committed(self) -> int:
        """The committed offset: everything below it is done; a restart resumes here."""
        ...

    def read(self, max_records: int, timeout: float | None = 0.0) -> list[tuple[int, bytes]]:
        """Up to `max_records` durable (offset, record) pairs from the position on, oldest first.

        Waits up to `timeout` seconds (None: forever) while there is nothing to read; returns
        [] on timeout and once the log is closed.
        """
        ...

    def seek(self, offset: int) -> None:
        """Read from `offset` next (at most the durable end); below the oldest record, from it."""
        ...

    def commit(self, offset: int) -> None:
        """Durably record that every record below `offset` (at most the durable end) is done."""
        ...

    def lag(self) -> int:
        """Durable records at or after the committed offset: what a restart would read again."""
        ...


class Log(Producer, Protocol):
    """A durable, multi-consumer log: a producer plus named consumers (the composition root)."""

    @property
    def durable_offset(self) -> int:
        """The end (exclusive) of the durable, readable records."""
        ...

    @property
    def quota_bytes(self) -> int:
        """The capacity `usage_bytes` counts against."""
        ...

    def reader(self, consumer: str, start: Start = "beginning") -> Consumer:
        """The consumer `consumer`, at its committed offset; a new one is registered at `start`."""
        ...

    def consumers(self) -> Mapping[str, int]:
        """Committed offsets by consumer name."""
        ...

    def drop_consumer(self, name: str) -> None:
        """Forget a consumer, so that it no longer holds records back from retention."""
        ...

    def close(self) -> None:
        """Sync what is buffered and release the log; waiting reads return. Idempotent."""
        ...
