"""The stations stream of cluster mode: every station message, stored under its partition.

Stations publish MQTT QoS 1 to the cluster's MQTT listener (topic
`ecowatch/v1/<district>/<station>/<kind>`), which stores each message in its own stream
`$MQTT_msgs` before acknowledging it; the intake (`ingest.cluster.intake`) moves it from there to
subject `ecowatch.in.<key>.<district>.<station>.<kind>` (`intake_subjects`: `key` is the station's
partition key, `ingest.cluster.partitions.PartitionKeys`) and acknowledges it to the listener once
this stream stored it. The stream `ecowatch-stations` captures `ecowatch.in.>` (not the listener's
own `ecowatch.v1.>` publishes: those are stored only while the stream has a leader, and would be a
second copy) and stores each message under a subject the server computes with its `partition()`
subject transform:

    ecowatch.in.<key>.<district>.<station>.<kind>  ->  ecowatch.part.<p>.<district>.<station>.<kind>
    p = FNV-1a-32(key as UTF-8) mod partitions       (the server's hash, on the key token only)

so the worker that owns partition `p` reads exactly its stations with a consumer filtered on
`ecowatch.part.<p>.>`. The partition is the server's: `partition_of` reproduces it (FNV-1a, as
nats-server's `getHashPartition`; the test checks it against a real server), and the workers use
it on the same keys, so routing, ownership, the silence each partition watches and anything keyed
by partition (checkpoints) agree.

A subject of another shape (the intake sends it as `ecowatch.in._.<rest>`) is stored unchanged; the
owner of partition 0 reads those too (`filters(0)`), and the processor dead-letters them, so
nothing the stream took in is left unread.

Retention: by limits (`max_age`, `max_bytes`), not by acknowledgement, so that a partition whose
consumer is being replaced (see `ingest.cluster.source`) loses nothing. Deduplication by
`Nats-Msg-Id` over `DUPLICATE_WINDOW` (the intake's ids). The partition count is part of the
stream's transform and what the keys are (`partition_by`) is in its metadata: a stream made with
another count or another `partition_by` makes `ensure_stream` refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import nats.js.errors
from nats.js import JetStreamContext, api

from ingest.cluster.partitions import key_token, partition_of

DEFAULT_STREAM: Final = "ecowatch-stations"
INTAKE_PREFIX: Final = "ecowatch.in"
SOURCE_SUBJECTS: Final = f"{INTAKE_PREFIX}.>"
_TRANSFORM_SOURCE: Final = f"{INTAKE_PREFIX}.*.*.*.*"  # key, district, station, kind
# The intake's ids are kept this long: a message redelivered to it (an ack lost, a holder killed
# between storing and acking, redelivered after the intake's ack_wait) is stored once.
DUPLICATE_WINDOW: Final = 600.0
_LISTENER_TOKENS: Final = 5  # ecowatch . v1 . <district> . <station> . <kind>
_PART_PREFIX: Final = "ecowatch.part"
_PARTITION_COUNT: Final = re.compile(r"\{\{\s*partition\(\s*(\d+)\s*,")
PARTITION_BY_METADATA: Final = "ecowatch.partition_by"
_STREAM_NAME_IN_USE: Final = 10058


def station_partition(station_id: str, partitions: int) -> int:
    """The partition the server's `{{partition(partitions, 1)}}` gives a station keyed by its own id
    (`partition_by: station`, an id that is one subject token): `partition_of`."""
    return partition_of(station_id, partitions)


def transform_destination(partitions: int) -> str:
    """The stream's subject transform destination for `partitions` partitions: the key token (1) is
    hashed and dropped, the listener's three tokens (2-4) kept."""
    wildcards = ".".join(f"{{{{wildcard({i})}}}}" for i in (2, 3, 4))
    return f"{_PART_PREFIX}.{{{{partition({partitions},1)}}}}.{wildcards}"


def partition_subject(partition: int) -> str:
    """The stored subjects of one partition: `ecowatch.part.<p>.>`."""
    return f"{_PART_PREFIX}.{partition}.>"


def filters(partition: int) -> list[str]:
    """What the owner of `partition` reads: its subjects, and for 0 also the mis-shaped ones."""
    return (
        [partition_subject(partition), SOURCE_SUBJECTS] if partition == 0 else [partition_subject(partition)]
    )


def _station_of_token(token: str) -> str:
    # nats-server's MQTT listener writes a `.` of a topic level as `//` in the subject.
    return token.replace("//", ".")


def intake_subjects(
    *,
    key_of: Callable[[str], str] = key_token,
    station_of_mn: Callable[[str], str | None] | None = None,
) -> Callable[[str], str]:
    """Where the intake publishes a listener's subject: `ecowatch.v1.<d>.<s>.<k>` goes to
    `ecowatch.in.<key>.<d>.<s>.<k>`, `key` the station's partition key (`key_of`, one token; the
    station id by default). A subject of another shape goes to `ecowatch.in._.<rest>`, which the
    transform leaves as it is (partition 0 reads and dead-letters it).

    With `station_of_mn`, HJ 212 that arrived under its MN (`ecowatch.v1.hj212.<MN>.mn`, nats.conf's
    mapping of `hj212/<MN>`) goes under its station when the MN is known:
    `ecowatch.in.<key>.hj212.<station>.packet`, the subject of the gateway's `{station_id}` topic,
    so it is partitioned like the station's other messages and its silence judged where its
    readings are; the route by station id still checks the packet's MN. An unknown MN, or a station
    id that is not one subject token, stays under the MN."""

    def subject_for(mqtt_subject: str) -> str:
        rest = mqtt_subject.removeprefix("ecowatch.v1.")
        tokens = mqtt_subject.split(".")
        if len(tokens) != _LISTENER_TOKENS or tokens[:2] != ["ecowatch", "v1"] or not all(tokens):
            # Empty tokens would make the subject invalid, and its publish fail for ever.
            return f"{INTAKE_PREFIX}._.{'.'.join(t or '_' for t in rest.split('.'))}"
        if station_of_mn is not None and tokens[2] == "hj212" and tokens[4] == "mn":
            station = station_of_mn(tokens[3])
            if station is not None and key_token(station) == station:
                return f"{INTAKE_PREFIX}.{key_of(station)}.hj212.{station}.packet"
        return f"{INTAKE_PREFIX}.{key_of(_station_of_token(tokens[3]))}.{rest}"

    return subject_for


def topic_of_subject(subject: str) -> str:
    """The MQTT topic a stored subject came from (`ecowatch/v1/<district>/<station>/<kind>`)."""
    tokens = subject.split(".")
    if len(tokens) >= 3 and tokens[0] == "ecowatch" and tokens[1] in ("part", "in"):
        tokens = ["ecowatch", "v1", *tokens[3:]]
    return "/".join(tokens)


async def ensure_stream(
    js: JetStreamContext,
    partitions: int,
    *,
    partition_by: str = "station",
    stream: str = DEFAULT_STREAM,
    replicas: int = 1,
    max_age: float = 7 * 24 * 3600.0,
    max_bytes: int = 2 * 2**30,
) -> None:
    """Create the stations stream, or bind to it: it must have been made with `partitions` partitions
    and `partition_by`. Its subjects, transform shape and limits are brought to this version's."""
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
        metadata={PARTITION_BY_METADATA: partition_by},
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        stored = (await js.stream_info(stream)).config
        transform = stored.subject_transform
        count = _PARTITION_COUNT.search(transform.dest) if transform is not None else None
        if count is None or int(count[1]) != partitions:
            raise ValueError(
                f"stream {stream} partitions with {transform.dest if transform else None!r}, "
                f"this worker with {destination!r}"
            ) from exc
        metadata = dict(stored.metadata or {})
        # A stream made before `partition_by` existed was partitioned by station.
        if metadata.get(PARTITION_BY_METADATA, "station") != partition_by:
            raise ValueError(
                f"stream {stream} is partitioned by {metadata.get(PARTITION_BY_METADATA, 'station')}, "
                f"this worker by {partition_by}: every worker must have the same cluster.partition_by"
            ) from exc
        wanted = (
            config.subjects,
            config.subject_transform,
            max_bytes,
            max_age,
            DUPLICATE_WINDOW,
            partition_by,
        )
        current = (
            stored.subjects,
            transform,
            stored.max_bytes,
            stored.max_age,
            stored.duplicate_window,
            metadata.get(PARTITION_BY_METADATA),
        )
        if current != wanted:
            # The limits are the operator's to change: the configured ones win over the stored ones.
            # A stream of an earlier version (the listener's subjects, no key token) is moved on.
            stored.subjects, stored.subject_transform = config.subjects, config.subject_transform
            stored.max_bytes, stored.max_age, stored.duplicate_window = max_bytes, max_age, DUPLICATE_WINDOW
            stored.metadata = {**metadata, PARTITION_BY_METADATA: partition_by}
            await js.update_stream(stored)
