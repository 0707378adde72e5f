"""The processor: raw log -> decode -> validate -> readings log + dead-letter store.

For each message of the raw log it picks the subscription whose topic template matches, decodes
with that subscription's format, validates every raw reading, appends the good readings of the
message as one record to the readings log and stores every rejection in the dead-letter store,
then commits its offset in the raw log. One module per job:

    core.py    `MessageProcessor`, `Route`: one message in, readings and dead letters out
               (pure: no I/O, no clock)
    batch.py   `process_batch`: a batch of raw-log records through the core, whatever one
               message raises kept as that message's dead letter
    worker.py  `WorkerProcess`: `process_batch` in a child process, over a pipe
    loop.py    `Processor`: the thread that reads the raw log, appends, syncs and commits,
               restarts a lost worker and isolates the message that kills it

Decoding and validating run in worker processes by default (`validation.workers` of them,
batches in turn, two deep each), while the loop's thread appends, syncs and commits: in one
process the GIL would make them and the MQTT receive path take turns. With two workers a burst's
decoding spreads over two cores where there are two, instead of one worker finishing alone after
the receive path is done.
"""

from ingest.processor.batch import Processed, process_batch
from ingest.processor.core import MessageProcessor, Outcome, Route
from ingest.processor.loop import Processor
from ingest.processor.worker import WorkerProcess

__all__ = ["MessageProcessor", "Outcome", "Processed", "Processor", "Route", "WorkerProcess", "process_batch"]
