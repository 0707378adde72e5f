"""The write-ahead log between the MQTT source and the log's consumers (ARCHITECTURE.md, facts).

The source appends each received message and acknowledges it to the broker only once the append
is fsynced (`GroupCommitter`: one fsync per few milliseconds, not per message). Consumers (the
decode/validate processor, each database sink, the alert engine) read at their own pace through
a `WalReader` and commit their own durable offsets; delivery is at least once.

    directory/
      00000000000000000000.seg   records 0..N-1: [u32 length][u32 crc32][payload] ...
      00000000000000001234.seg   segments are named by their first offset
      offsets/<consumer>.offset  each consumer's committed offset, replaced atomically
      lock                       flock: one process writes a log

Offsets are global and monotonic from 0. Readers see only synced records. A segment is deleted
once every registered consumer has committed past it (never the active one); a consumer that is
no longer configured must be dropped (`drop_consumer`) or it pins the log until the quota. At
the quota `append` raises `WalFullError`; the committer then holds records in order and the
source stops acknowledging, so the broker keeps the messages: nothing is dropped.

Records are opaque bytes, so one class serves the raw-message log and the readings log.

The pipeline talks to the log through the log seam (`seam.py`: `Producer`, `Consumer`, `Log`;
its docstring states the guarantees and how to put another log behind it). `WriteAheadLog` and
`WalReader` are its local implementation; `GroupCommitter` works over any `Producer`.

Usage:
    wal = WriteAheadLog(Path("/var/lib/ecowatch/wal/raw"), quota_bytes=2 * 2**30)
    committer = GroupCommitter(wal, on_durable=ack_message_ids)
    committer.start()
    committer.submit(payload, message_id)           # paho thread
    reader = wal.reader("influxdb", start="beginning")
    batch = reader.read(5000, timeout=1.0)          # [(offset, record), ...]
    reader.commit(batch[-1][0] + 1)
"""

from ingest.wal.committer import GroupCommitter
from ingest.wal.log import WriteAheadLog
from ingest.wal.reader import WalReader
from ingest.wal.recovery import Corruption, Recovery
from ingest.wal.seam import Consumer, Log, Producer, Start

__all__ = [
    "Consumer",
    "Corruption",
    "GroupCommitter",
    "Log",
    "Producer",
    "Recovery",
    "Start",
    "WalReader",
    "WriteAheadLog",
]
