"""Configuration every sink shares: its name and how the delivery loop feeds it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from config.types import StrictModel


class SinkConfigBase(StrictModel):
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_\-]{0,31}$",
        description="Sink name in logs, metrics (`sink=` label) and the name of its write-ahead-log offset.",
    )
    batch_size: int = Field(5000, gt=0, le=100_000, description="Readings per write at most.")
    flush_interval: timedelta = Field(
        timedelta(seconds=1), description="Write a partial batch once its oldest reading waited this long."
    )
    flush_idle: timedelta = Field(
        timedelta(milliseconds=50),
        description="Write a partial batch as soon as no new reading has come for this long: "
        "a burst's last batch and a quiet stream's readings do not wait for flush_interval.",
    )
    retry_initial_delay: timedelta = Field(timedelta(milliseconds=200), description="First retry delay.")
    retry_max_delay: timedelta = Field(timedelta(seconds=30), description="Cap of the exponential backoff.")
    retry_budget: timedelta = Field(
        timedelta(minutes=2),
        description="After failing this long the sink is reported down (/readyz, error log); "
        "it keeps retrying at the capped delay and its backlog waits in the log.",
    )
    start: Literal["beginning", "end"] = Field(
        "beginning",
        description="Where a sink that has no offset yet starts reading: the start of the retained "
        "log (a backfill) or its end.",
    )
