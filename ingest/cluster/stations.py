"""The stations stream of cluster mode: every station message, stored under its partition.

Stations publish MQTT QoS 1 to the cluster's MQTT listener (topic
`ecowatch/v1/<district>/<station>/<kind>`), which stores each message in its own stream
`$MQTT_msgs` before acknowledging it; the intake (`ingest.cluster.intake`) moves it from there to
subject `ecowatch.in.<district>.<station>.<kind>` and acknowledges it to the listener once this
stream stored it. The stream `ecowatch-stations` captures `ecowatch.in.>` (not the listener's own
`ecowatch.v1.>` publishes: those are stored only while the stream has a leader, and would be a
second copy) and stores each message under a subject the server computes with its `partition()`
subject transform:

    ecowatch.in.<district>.<station>.<kind>  ->  ecowatch.part.<p>.<district>.<station>.<kind>
    p = FNV-1a-32(station id as UTF-8) mod partitions       (the server's hash, on the station only)

so the worker that owns partition `p` reads exactly its stations with a consumer filtered on
`ecowatch.part.<p>.>`. The partition is the server's: `station_partition` reproduces it
(FNV-1a over the station token, as nats-server's `getHashPartition`), and the test checks it
against a real server. It is `ingest.cluster.partitions.partition_of`, the mapping the leases
use too, so routing, ownership and anything keyed by partition (checkpoints) agree.

A subject of another shape (`ecowatch.in.a.b`, five tokens expected) is stored unchanged; the
owner of partition 0 reads those too (`filters(0)`), and the processor dead-letters them, so
nothing the stream took in is left unread.

Retention: by limits (`max_age`, `max_bytes`), not by acknowledgement, so that a partition whose
consumer is being replaced (see `ingest.cluster.source`) loses nothing. Deduplication by
`Nats-Msg-Id` over `DUPLICATE_WINDOW` (the intake's ids). The partition count is part of the
stream's transform: a stream made with another count makes `ensure_stream` refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import nats.js.errors
from nats.js import JetStreamContext, api

from ingest.cluster.partitions import partition_of

DEFAULT_STREAM: Final = "ecowatch-stations"
INTAKE_PREFIX: Final = "ecowatch.in"
SOURCE_SUBJECTS: Final = f"{INTAKE_PREFIX}.>"
_TRANSFORM_SOURCE: Final = f"{INTAKE_PREFIX}.*.*.*"
# The intake's ids are kept this long: a message redelivered to it (an ack lost, a holder killed
# between storing and acking, redelivered after the intake's ack_wait) is stored once.
DUPLICATE_WINDOW: Final = 600.0
_HJ212_MN_TOKENS: Final = 5  # ecowatch . v1 . hj212 . <MN> . mn
_PART_PREFIX: Final = "ecowatch.part"
_STREAM_NAME_IN_USE: Final = 10058


def station_partition(station_id: str, partitions: int) -> int:
    """The partition the server's `{{partition(partitions, 2)}}` gives `station_id` (`partition_of`)."""
    return partition_of(station_id, partitions)


def transform_destination(partitions: int) -> str:
    """The stream's subject transform destination for `partitions` partitions."""
    wildcards = ".".join(f"{{{{wildcard({i})}}}}" for i in (1, 2, 3))
    return f"{_PART_PREFIX}.{{{{partition({partitions},2)}}}}.{wildcards}"


def partition_subject(partition: int) -> str:
    """The stored subjects of one partition: `ecowatch.part.<p>.>`."""
    return f"{_PART_PREFIX}.{partition}.>"


def filters(partition: int) -> list[str]:
    """What the owner of `partition` reads: its subjects, and for 0 also the mis-shaped ones."""
    return (
        [partition_subject(partition), SOURCE_SUBJECTS] if partition == 0 else [partition_subject(partition)]
    )


def stations_subject(mqtt_subject: str) -> str:
    """Where the intake publishes a listener's `ecowatch.v1.<rest>`: `ecowatch.in.<rest>`."""
    return f"{INTAKE_PREFIX}.{mqtt_subject.removeprefix('ecowatch.v1.')}"


def stations_subject_by_station(by_mn: Callable[[str], str | None]) -> Callable[[str], str]:
    """`stations_subject`, except that HJ 212 that arrived under its MN (`ecowatch.v1.hj212.<MN>.mn`,
    nats.conf's mapping of `hj212/<MN>`) goes under its station's id when `by_mn` knows the MN:
    `ecowatch.in.hj212.<station>.packet`, the subject of the gateway's `{station_id}` topic. So
    it is partitioned by station like everything else, and its station's silence is judged where
    its readings are; the route by station id still checks the packet's MN against the station.
    An MN `by_mn` does not know, or a station id that is not one subject token, stays as it came."""

    def subject_for(mqtt_subject: str) -> str:
        tokens = mqtt_subject.split(".")
        if (
            len(tokens) == _HJ212_MN_TOKENS
            and tokens[:3] == ["ecowatch", "v1", "hj212"]
            and tokens[4] == "mn"
        ):
            station = by_mn(tokens[3])
            if station and all(c not in station for c in ".*> "):
                return f"{INTAKE_PREFIX}.hj212.{station}.packet"
        return stations_subject(mqtt_subject)

    return subject_for


def topic_of_subject(subject: str) -> str:
    """The MQTT topic a stored subject came from (`ecowatch/v1/<district>/<station>/<kind>`)."""
    tokens = subject.split(".")
    if len(tokens) >= 3 and tokens[0] == "ecowatch" and tokens[1] == "part":
        tokens = ["ecowatch", "v1", *tokens[3:]]
    elif len(tokens) >= 2 and tokens[0] == "ecowatch" and tokens[1] == "in":
        tokens = ["ecowatch", "v1", *tokens[2:]]
    return "/".join(tokens)


async def ensure_stream(
    js: JetStreamContext,
    partitions: int,
    *,
    stream: str = DEFAULT_STREAM,
    replicas: int = 1,
    max_age: float = 7 * 24 * 3600.0,
    max_bytes: int = 2 * 2**30,
) -> None:
    """Create the stations stream, or bind to it: its transform must have `partitions` partitions."""
    destination = transform_destination(partitions)
    config = api.StreamConfig(
        name=stream,
        subjects=[SOURCE_SUBJECTS],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=replicas,
        max_age=max_age,
        max_bytes=max_bytes,
        duplicate_window=DUPLICATE_WINDOW,
        subject_transform=api.SubjectTransform(src=_TRANSFORM_SOURCE, dest=destination),
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        info = await js.stream_info(stream)
        stored = info.config
        transform = stored.subject_transform
        if transform is None or transform.dest != destination:
            raise ValueError(
                f"stream {stream} partitions with {transform.dest if transform else None!r}, "
                f"this worker with {destination!r}"
            ) from exc
        wanted = (config.subjects, config.subject_transform, max_bytes, max_age, DUPLICATE_WINDOW)
        if (stored.subjects, transform, stored.max_bytes, stored.max_age, stored.duplicate_window) != wanted:
            # The limits are the operator's to change: the configured ones win over the stored ones.
            # A stream made before the intake captured the listener's subjects: now the intake's.
            stored.subjects, stored.subject_transform = config.subjects, config.subject_transform
            stored.max_bytes, stored.max_age, stored.duplicate_window = max_bytes, max_age, DUPLICATE_WINDOW
            await js.update_stream(stored)
