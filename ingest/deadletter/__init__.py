"""The dead-letter store: every rejection counted, its message kept once, within bounds.

An SQLite file beside the write-ahead logs (`deadletter.db`, owner-only). A rejection is a whole
message that could not be used, or one reading of a message whose other readings went on (then
`station_id` and `parameter` say which). `ecowatch deadletter replay` re-publishes the stored
messages after the config or the registry was fixed; a replayed row is marked, not deleted.

Bounds, so that no input can flood the disk or stall ingestion:
- **Once per message.** A message's payload and topic are stored once, however many of its
  readings are rejected; each rejection is a small row pointing at it. The letters of one
  message are those with the same raw-log offset (or, without one, the same topic and payload
  in one `add_many` call).
- **Rows per message** are capped at `max_rows_per_message` (the first of each reason first);
  the rest are counted on the message (`omitted`) and by reason.
- **Counts by reason** count every rejection, stored or not, durably and in the same transaction
  (`counts_by_reason`, the `deadletters` figure of /api/v1/stats). Re-processing the raw log
  after a crash counts nothing twice: the store keeps the highest raw-log offset it has counted.
- **Quota** (`max_bytes`, pages in use): when a message does not fit, it is counted by reason and
  neither its payload nor its rows are stored (`ecowatch_deadletters_unstored_total{cause="full"}`,
  `ecowatch_deadletters_full`); a warning says so at most once a minute. Nothing stored is
  deleted to make room: the retention frees it.
- **Retention** (`max_age`): `enforce_limits` deletes older messages with their rows, in small
  chunks, and gives the pages back to the disk. `start()` runs it every `housekeeping_interval`
  on its own thread; `close()` stops it.
- **Never in the way.** `add_many` costs one insert per message and at most
  `max_rows_per_message` row inserts, in one transaction, and never raises: if the file cannot be
  written, the rejections are counted in memory (`cause="error"`), logged once a minute, and the
  caller goes on.

Example:
    deadletter: {max_rows_per_message: 100, max_bytes: 268435456, max_age: P30D}
"""

from ingest.deadletter.config import DeadLetterConfig
from ingest.deadletter.letter import DeadLetter
from ingest.deadletter.store import DeadLetterStore

__all__ = ["DeadLetter", "DeadLetterConfig", "DeadLetterStore"]
