"""How much the dead-letter store keeps: rows per message, bytes on disk, age."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from config.types import StrictModel


class DeadLetterConfig(StrictModel):
    """The `deadletter:` section: the store's bounds (see `ingest.deadletter`)."""

    max_rows_per_message: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Rejections of one message stored as rows (one row per distinct reason first); the "
        "rest are only counted, on the message (`omitted`) and by reason. 100 keeps every parameter of "
        "any real station message, while a 64 KB message of 8 960 unknown stations stays 100 rows.",
    )
    max_bytes: int = Field(
        256 * 2**20,
        ge=2**16,
        description="Quota of the dead-letter file. When it is reached, rejections are still counted by "
        "reason but their payloads and rows are not stored (warned once a minute) until the retention "
        "frees room. 256 MiB holds thousands of rejected messages at the largest payload size.",
    )
    max_age: timedelta = Field(
        timedelta(days=30),
        gt=timedelta(0),
        description="Dead letters older than this are deleted (counts by reason are kept). 30 days leave "
        "time to fix a registry or a config and replay.",
    )
    housekeeping_interval: timedelta = Field(
        timedelta(minutes=1),
        ge=timedelta(seconds=1),
        description="How often the retention runs, on the store's own thread.",
    )
