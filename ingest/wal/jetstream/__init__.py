"""The log seam on NATS JetStream: a replicated stream as the durable log (cluster mode).

`JetStreamLog` is the seam's `Log` (and `Producer`), `JetStreamConsumer` its `Consumer`
(`ingest.wal.seam` states the guarantees; mypy checks both at the end of `log.py`). The single-node
WAL stays the default; the composition root chooses. nats-py is asyncio: each log owns an event
loop on a thread of its own (`bridge.LoopThread`) and the seam's callers, threads, hand it
coroutines with `asyncio.run_coroutine_threadsafe`.

How each guarantee is kept:
- Durability before ack: `append` only buffers; `sync` publishes the buffer pipelined and returns
  once every record's PubAck came, i.e. the record is stored (on R3: by a quorum, two of three
  nodes). Until then nothing of the batch is published, so nothing is readable before `sync`.
  Leader elections are ridden out: `sync` retries for up to `sync_timeout` (30 s) and raises
  `SyncError` only after it; the log is then unusable until reopened (as the WAL after a failed
  fsync), and nothing of the failed batch may be acknowledged upstream.
- Offsets: the stream sequence (from 1, dense; a purged prefix is gone). `append` predicts it;
  every record is published with `Nats-Expected-Last-Sequence: offset - 1`, so the server stores
  it at that offset or not at all, and a retry can never store it twice. A retry re-reads the
  stream's last sequence and checks that what is stored there is ours. There is one writer per
  stream, the log that publishes to it: a second one fails its `sync` ("another writer") instead
  of interleaving.
- Ordering: one batch in flight at a time, in offset order; a consumer reads through one
  ephemeral pull consumer (no acks, in memory, R1) with at most one pull request open, and drops
  anything below its position; a `seek` outside the records it holds starts a new pull consumer
  at the target (below the oldest record: from it).
- At least once: committed offsets are KV entries (bucket `<stream>-offsets`, same replicas), one
  per consumer name, written (and acknowledged) before `commit` returns; `reader(name)` resumes
  there. The pull consumers are disposable and never hold progress.
- Retention and capacity: limits retention, discard new, max_bytes = `quota_bytes`. Interest or
  work-queue retention would not do: with no consumer registered they drop records at once, and
  they cannot replay after a `seek` back. Instead, a commit purges the stream below the smallest
  committed offset of the known consumers (this log's, plus every key in the bucket, read again
  before each purge: other processes' consumers hold records back too), at most once per
  `purge_interval` (1 s), and at once when the log is full or half full. `usage_bytes` counts the
  bytes exactly as the file store does (22 + subject + headers + payload + 8, +4 with headers:
  measured, checked in tests), so `append` raises `WalFullError` (appending nothing) before the
  server would refuse; the server's own limit (10077 "maximum bytes exceeded") is the backstop.
  The quota must fit the server's `max_file_store` (else 10047, insufficient storage).
- Threads: `append`/`sync`/state under locks as in the WAL; everything on the connection runs on
  the loop; a consumer's state lives on the loop, so `commit`, `committed` and `lag` may come from
  any thread.
- Closing: `close` syncs, wakes waiting reads (they return []), deletes the pull consumers and
  closes the connection.

Faults: the client pings every second (3 missed: reconnect elsewhere), so a frozen server is left
within ~3 s; a pull request that ends without an answer, a 409 or a 503 (its consumer's node
died) starts a new pull consumer at the position. Durability on one node: a PubAck means the
record is in the server's page cache (JetStream's `sync_interval` defaults to 2 min), which
survives kill -9 of the server but not a power cut; `sync_interval: always` fsyncs each message.
R3 relies on two nodes holding it.

Measured here (2 cores, Debian 12; `.venv/bin/python -m bench.jetstream_log`, 20 000 records
of 300 bytes, syncs of 1 000, servers on loopback, one run):

    log            append+sync p50 / p99   grouped append           read + commit (batches of 500)
    wal (fsync)    0.06 / 0.15 ms          ~458 000 rec/s, 1.8 µs    ~380 000 rec/s, 2.1 µs CPU
    jetstream R1   0.20 / 0.29 ms          ~35 000-45 000 rec/s      ~54 000 rec/s, 17 µs CPU
    jetstream R3   0.52 / 1.08 ms          ~26 000-28 000 rec/s      ~38 000-52 000 rec/s, 15-23 µs

(CPU per record is the client's; nats-server's is on top.) A killed R3 leader costs one sync
~5-7 s (the election); a frozen one about as much.

Operating it: `health()` says why the log cannot take records now (not connected, failed), for
/readyz; `str(log)` and the log lines name the servers without credentials. The daemon
(`ingest.app.daemon`, `wal.backend: jetstream`) opens `<stream>-raw` and `<stream>-readings` with
`JetStreamLog.from_config`.

Usage:
    log = JetStreamLog(["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"], "raw", replicas=3)
    committer = GroupCommitter(log, on_durable=ack_message_ids)
    consumer = log.reader("influxdb")
    batch = consumer.read(500, timeout=0.2)
    consumer.commit(batch[-1][0] + 1)
"""

from ingest.wal.jetstream.config import JetStreamLogConfig
from ingest.wal.jetstream.consumer import JetStreamConsumer
from ingest.wal.jetstream.log import FIRST_OFFSET, JetStreamLog, SyncError

__all__ = ["FIRST_OFFSET", "JetStreamConsumer", "JetStreamLog", "JetStreamLogConfig", "SyncError"]
