"""Per-partition Prometheus metrics of a cluster worker: which partitions it owns, their lag and
redeliveries. Each worker exports its own partitions; summed over workers (`max by
(partition)` for the owner) they describe the cluster.

    ecowatch_partition_owned{partition, worker}          1 while owned (absent otherwise)
    ecowatch_partition_epoch{partition}                  the lease epoch this worker holds
    ecowatch_partition_lag{partition}                    messages pending in its consumer
    ecowatch_partition_fetched_total{partition}          messages read (replays included)
    ecowatch_partition_redelivered_total{partition}      messages read more than once
    ecowatch_intake_holding{worker}                      1 while this worker holds the intake lease
    ecowatch_intake_forwarded_total                      messages it moved into the stations stream
    ecowatch_intake_retried_batches_total                batches the stations stream refused at first
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prometheus_client import Counter, Gauge

OWNED: Final = Gauge(
    "ecowatch_partition_owned", "1 for each partition this worker owns.", ["partition", "worker"]
)
EPOCH: Final = Gauge("ecowatch_partition_epoch", "Lease epoch of an owned partition.", ["partition"])
LAG: Final = Gauge(
    "ecowatch_partition_lag", "Messages pending in an owned partition's consumer.", ["partition"]
)
FETCHED: Final = Counter("ecowatch_partition_fetched", "Messages read from a partition.", ["partition"])
REDELIVERED: Final = Counter(
    "ecowatch_partition_redelivered", "Messages of a partition read more than once.", ["partition"]
)


INTAKE_HOLDING: Final = Gauge(
    "ecowatch_intake_holding", "1 while this worker holds the intake lease.", ["worker"]
)
INTAKE_FORWARDED: Final = Counter(
    "ecowatch_intake_forwarded", "Messages the intake moved from the MQTT listener into the stations stream."
)
INTAKE_RETRIED: Final = Counter(
    "ecowatch_intake_retried_batches",
    "Intake batches the stations stream did not store at the first attempt (retried in place).",
)


class IntakeMetrics:
    """The intake's gauge and counters from its stats (cumulative per process); call `update` often."""

    def __init__(self, worker: str) -> None:
        self._worker = worker
        self._counted = (0, 0)

    def update(self, stats: Mapping[str, int | str]) -> None:
        INTAKE_HOLDING.labels(self._worker).set(int(stats.get("intaking", 0)))
        forwarded, retried = int(stats.get("forwarded", 0)), int(stats.get("retried_batches", 0))
        INTAKE_FORWARDED.inc(forwarded - self._counted[0])
        INTAKE_RETRIED.inc(retried - self._counted[1])
        self._counted = (forwarded, retried)


class PartitionMetrics:
    """Keeps the gauges in step with what the worker owns; call `update` every second or so."""

    def __init__(self, worker: str) -> None:
        self._worker = worker
        self._shown: set[str] = set()
        self._counted: dict[str, tuple[int, int]] = {}

    def update(self, owned: Mapping[int, int], reading: Mapping[int, Mapping[str, int]]) -> None:
        now = {str(p) for p in owned}
        for gone in self._shown - now:
            OWNED.remove(gone, self._worker)
            EPOCH.remove(gone)
            LAG.remove(gone)
        for partition, epoch in owned.items():
            label = str(partition)
            OWNED.labels(label, self._worker).set(1)
            EPOCH.labels(label).set(epoch)
            stats = reading.get(partition)
            if stats is None:
                continue
            LAG.labels(label).set(stats.get("lag", 0))
            fetched, redelivered = stats.get("fetched", 0), stats.get("redelivered", 0)
            last_fetched, last_redelivered = self._counted.get(label, (0, 0))
            if fetched < last_fetched or redelivered < last_redelivered:  # a new tenure counts from 0
                last_fetched, last_redelivered = 0, 0
            FETCHED.labels(label).inc(fetched - last_fetched)
            REDELIVERED.labels(label).inc(redelivered - last_redelivered)
            self._counted[label] = (fetched, redelivered)
        self._shown = now
