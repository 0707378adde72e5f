"""Partitions by station and their leases in JetStream KV: one owner at a time, moved within seconds.

The pure parts (the station → partition mapping, the balancing plan) run without servers. The
rest runs workers (`Ownership`, each on its own loop and connection) against a single NatsServer
and a three-node NatsCluster with R3 buckets, and watches two things throughout: every write to
the leases bucket (epochs strictly increase per partition, each epoch has one owner) and every
worker's `owned()` (no two workers hold a partition at the same instant).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Final

import pytest
from nats.js.kv import KeyValue

from ingest.cluster import ClusterConfig, Ownership, cluster_status, partition_of, partition_of_subject
from ingest.cluster.buckets import TRANSIENT, connect, ensure_bucket, leases_bucket, live_keys, workers_bucket
from ingest.cluster.leases import Lease, Observed, partition_of_key, plan, target
from ingest.cluster.partitions import PartitionKeys, station_of_subject
from ingest.wal.jetstream.bridge import LoopThread
from tests.helpers import wait_for
from tests.servers import NatsCluster, NatsServer

PARTITIONS: Final = 12
LEASE_TTL: Final = 2.0
RENEW: Final = 0.5
# A dead worker's partitions move after its lease and its workers key expire (lease_ttl each),
# plus a few rounds; a loaded two-core machine gets generous room.
MOVE_TIMEOUT: Final = 15.0
_prefixes = itertools.count()


# -- the mapping and the plan (pure) -------------------------------------------------------


def test_the_mapping_is_pinned_to_sha256_of_the_station_id() -> None:
    """The same station lands in the same partition in every process: fixed vectors, not `hash`."""
    assert [partition_of(s, 12) for s in ("S1", "st-1", "500101-0001", "重庆-朝天门")] == [9, 8, 0, 3]
    assert [partition_of(s, 64) for s in ("S1", "st-1", "500101-0001", "重庆-朝天门")] == [41, 36, 12, 23]
    assert partition_of_subject("ecowatch.v1.yuzhong.S1.water", 12) == 9
    assert station_of_subject("ecowatch.v1.d1.500101-0001.hydro") == "500101-0001"


@pytest.mark.parametrize("subject", ["ecowatch.v1.d1.water", "other.v1.d1.S1.water", "ecowatch.v1.d1..water"])
def test_other_subjects_have_no_station(subject: str) -> None:
    """A subject outside ecowatch.v1.<district>.<station>.<kind> is refused, not guessed."""
    with pytest.raises(ValueError, match="subject"):
        station_of_subject(subject)


def test_the_mapping_is_roughly_even() -> None:
    """10 000 station ids of a real-looking scheme spread within 10 % of the mean over 12 partitions."""
    counts = Counter(partition_of(f"{500100 + d}-{n:04d}", PARTITIONS) for d in range(40) for n in range(250))
    mean = statistics.mean(counts.values())
    assert len(counts) == PARTITIONS
    assert all(abs(c - mean) < 0.1 * mean for c in counts.values()), counts


def _seen(owner: str, revision: int, since: float = 0.0) -> Observed:
    return Observed(Lease(owner, 1), revision, since)


def test_a_worker_over_its_target_releases_its_highest_partitions() -> None:
    """Four live workers on 12 partitions aim for 3 each: a worker holding 5 lets go of its top 2."""
    assert target(12, 4) == 3
    decision = plan(
        worker="w1",
        partitions=12,
        live_workers=4,
        held=frozenset({0, 3, 5, 7, 9}),
        observed={},
        now=0.0,
        lease_ttl=5.0,
    )
    assert decision.release == (7, 9)
    assert decision.acquire == ()


def test_a_worker_under_its_target_takes_only_free_or_expired_leases() -> None:
    """Released leases, missing keys and leases unchanged for a ttl are taken; live ones are not."""
    observed = {
        0: _seen("w2", 10, since=8.0),  # renewed 2 s ago: live
        1: _seen("", 11, since=9.0),  # released
        2: _seen("w3", 12, since=0.0),  # unchanged for 10 s: expired
        3: Observed(Lease("", 0), 0, 9.0),  # never owned
        4: _seen("", 13, since=9.0),  # being released by us: excluded
    }
    decision = plan(
        worker="w1",
        partitions=5,
        live_workers=1,
        held=frozenset(),
        exclude=frozenset({4}),
        observed=observed,
        now=10.0,
        lease_ttl=5.0,
    )
    assert sorted(decision.acquire) == [1, 2, 3]
    assert decision.release == ()


def test_unreadable_lease_values_count_as_released() -> None:
    """A value that is not a lease (written by hand) is a released lease of epoch 0, not a crash."""
    assert Lease.decode(b"garbage") == Lease("", 0)
    assert Lease.decode(Lease("w1", 7, 1.5).encode()) == Lease("w1", 7, 1.5)
    assert partition_of_key("partition.11") == 11
    assert partition_of_key("partitions") is None


def test_renewals_must_fit_the_lease_twice() -> None:
    """A renew interval over half the ttl is refused at load: one missed renewal would lose leases."""
    with pytest.raises(ValueError, match="renew_interval"):
        ClusterConfig.model_validate(
            {"servers": ["nats://127.0.0.1:4222"], "lease_ttl": 2, "renew_interval": 1.5}
        )


# -- the watchers of a run ------------------------------------------------------------------


class LeaseLog:
    """Every write to the leases bucket, in the KV's order, read by a watcher of its own."""

    def __init__(self, servers: list[str], prefix: str, replicas: int) -> None:
        self.entries: list[tuple[int, int, str, int]] = []  # (partition, revision, owner, epoch)
        self._lock = threading.Lock()
        self._bridge = LoopThread(f"lease-log-{prefix}")
        self._bridge.run(self._open(servers, prefix, replicas))

    async def _open(self, servers: list[str], prefix: str, replicas: int) -> None:
        self._nc = await connect(servers, "lease-log", 2.0)
        js = self._nc.jetstream(timeout=2.0)
        # Made here first (as a worker would make them), so that the watcher sees every write.
        leases: KeyValue = await ensure_bucket(js, leases_bucket(prefix), replicas=replicas, ttl=None)
        await ensure_bucket(js, workers_bucket(prefix), replicas=replicas, ttl=LEASE_TTL)
        self._watcher = await leases.watchall(include_history=True)
        self._bridge.spawn(self._collect())

    async def _collect(self) -> None:
        async for entry in self._watcher:
            if entry is None or entry.revision is None:
                continue
            partition = partition_of_key(entry.key)
            if partition is not None and entry.value:
                lease = Lease.decode(entry.value)
                with self._lock:
                    self.entries.append((partition, entry.revision, lease.owner, lease.epoch))

    def check(self) -> None:
        """Per partition: epochs never go down, a new owner comes with a new epoch, one owner per epoch."""
        with self._lock:
            entries = list(self.entries)
        assert entries, "the watcher saw no lease writes"
        owner_of: dict[tuple[int, int], str] = {}
        last: dict[int, tuple[int, str, int]] = {}
        for partition, revision, owner, epoch in entries:
            if partition in last:
                prev_revision, prev_owner, prev_epoch = last[partition]
                assert revision > prev_revision
                assert epoch >= prev_epoch, (partition, entries)
                if owner and owner != prev_owner:
                    assert epoch > prev_epoch, f"partition {partition}: {owner} took over without a new epoch"
            if owner:
                assert owner_of.setdefault((partition, epoch), owner) == owner, (
                    f"two owners of {partition}@{epoch}"
                )
            last[partition] = (revision, owner, epoch)

    def close(self) -> None:
        async def stop() -> None:
            await self._watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
            await self._nc.close()

        self._bridge.run(stop())
        self._bridge.stop()


class OverlapWatch:
    """Samples every worker's `owned()` on a thread; records any partition two workers hold at once.

    A sample reads each worker twice (A1 B1 C1 A2 B2 C2): if X holds p with the same epoch at both
    of its reads, it held p throughout, so another worker's read of p between them is an overlap.
    """

    def __init__(self) -> None:
        self.workers: list[Ownership] = []
        self.overlaps: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="overlap-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            workers = list(self.workers)
            first = [w.owned() for w in workers]
            second = [w.owned() for w in workers]
            for x, worker in enumerate(workers):
                for p, epoch in first[x].items():
                    if second[x].get(p) != epoch:
                        continue
                    for y, other in enumerate(workers):
                        between = first[y] if y > x else second[y]
                        if y != x and p in between:
                            self.overlaps.append(f"{worker.worker_id} and {other.worker_id} both hold {p}")
            self.samples += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Run:
    """Workers on one deployment (a bucket prefix of their own), with their callbacks recorded."""

    def __init__(self, servers: list[str], replicas: int) -> None:
        self.servers = servers
        self.replicas = replicas
        self.prefix = f"own{next(_prefixes)}"
        self.lease_log = LeaseLog(servers, self.prefix, replicas)
        self.overlap = OverlapWatch()
        self.workers: list[Ownership] = []
        self.events: list[tuple[str, str, int, int]] = []  # (worker, acquired|lost, partition, epoch)

    def add(self, name: str) -> Ownership:
        def acquired(partition: int, epoch: int) -> None:
            self.events.append((name, "acquired", partition, epoch))

        def lost(partition: int) -> None:
            self.events.append((name, "lost", partition, 0))

        worker = Ownership(
            self.servers,
            partitions=PARTITIONS,
            worker_id=name,
            on_acquired=acquired,
            on_lost=lost,
            lease_ttl=LEASE_TTL,
            renew_interval=RENEW,
            replicas=self.replicas,
            bucket_prefix=self.prefix,
        )
        worker.start()
        self.workers.append(worker)
        self.overlap.workers = list(self.workers)
        return worker

    def shares(self, workers: list[Ownership]) -> list[int] | None:
        """Each worker's partition count when together they hold all of them, else None."""
        owned = [w.owned() for w in workers]
        held = set().union(*owned)
        return [len(o) for o in owned] if held == set(range(PARTITIONS)) else None

    def wait_even(self, workers: list[Ownership], share: int, what: str) -> None:
        wait_for(
            lambda: self.shares(workers) == [share] * len(workers),
            what,
            MOVE_TIMEOUT,
            detail=lambda: [(w.worker_id, sorted(w.owned())) for w in workers],
        )

    def check(self) -> None:
        """No overlap was sampled; the KV's order of writes has one owner per epoch; callbacks agree."""
        assert self.overlap.samples > 0
        assert not self.overlap.overlaps, self.overlap.overlaps[:5]
        self.lease_log.check()
        epochs: dict[int, list[int]] = {}
        for _, kind, partition, epoch in list(self.events):
            if kind == "acquired":
                epochs.setdefault(partition, []).append(epoch)
        for partition, seen in epochs.items():
            assert seen == sorted(set(seen)), f"partition {partition} acquired at epochs {seen}"

    def close(self) -> None:
        self.overlap.close()
        for worker in self.workers:
            worker.stop(release=False)
        self.lease_log.close()


# -- servers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(nats_server: NatsServer) -> NatsServer:
    """A single NATS node with JetStream, shared by the module (each test has its own buckets)."""
    return nats_server


@pytest.fixture(scope="module")
def cluster(nats_cluster: NatsCluster) -> NatsCluster:
    """A three-node NATS cluster for the module (a test that pauses a node resumes it)."""
    return nats_cluster


def _servers(request: pytest.FixtureRequest) -> tuple[list[str], int]:
    if request.param == "single":
        return [request.getfixturevalue("server").url], 1
    return request.getfixturevalue("cluster").urls, 3


@pytest.fixture(params=["single", "r3"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Workers on a single node (R1 buckets) and on the three-node cluster (R3 buckets)."""
    servers, replicas = _servers(request)
    the_run = Run(servers, replicas)
    try:
        yield the_run
    finally:
        the_run.close()


# -- ownership on real servers ----------------------------------------------------------------


@pytest.mark.integration
def test_workers_share_partitions_and_move_them_on_death_and_arrival(run: Run) -> None:
    """3 workers hold 4 each; one dies (renewals stop) and 2 hold 6; new ones arrive and all hold 4,
    then 3, with one owner per partition at every instant and per epoch, epochs rising per partition."""
    workers = [run.add(f"w{i}") for i in range(3)]
    run.wait_even(workers, 4, "three workers to hold 4 partitions each")

    dead = workers.pop(0)
    orphans = dead.owned()
    dead.stop(release=False)
    run.wait_even(workers, 6, "the survivors to take the dead worker's partitions")
    for partition, epoch in orphans.items():
        assert max(w.owned().get(partition, 0) for w in workers) > epoch

    workers.append(run.add("w3"))
    run.wait_even(workers, 4, "three workers to hold 4 partitions each again")
    workers.append(run.add("w4"))
    run.wait_even(workers, 3, "four workers to hold 3 partitions each")
    run.check()


@pytest.mark.integration
def test_a_paused_owner_knows_it_lost_its_partitions_before_it_acts(server: NatsServer) -> None:
    """A worker frozen past its lease (its loop blocked, as by SIGSTOP) finds `holds()` false on
    waking, while the others hold its partitions at higher epochs; then it gets `on_lost`."""
    run = Run([server.url], 1)
    try:
        first, second = run.add("w1"), run.add("w2")
        run.wait_even([first, second], 6, "two workers to hold 6 partitions each")
        held = first.owned()
        frozen = threading.Event()
        thaw = threading.Event()

        def freeze() -> None:
            frozen.set()
            thaw.wait()

        assert first._bridge is not None
        first._bridge.loop.call_soon_threadsafe(freeze)
        wait_for(frozen.is_set, "the worker's loop to freeze")
        run.wait_even([second], 12, "the other worker to take every partition")
        assert not any(first.holds(p, e) for p, e in held.items())
        assert all(second.owned()[p] > e for p, e in held.items())
        thaw.set()
        wait_for(
            lambda: {p for w, kind, p, _ in list(run.events) if w == "w1" and kind == "lost"} >= set(held),
            "on_lost for each partition the paused worker had",
        )
        run.wait_even([first, second], 6, "the woken worker to get its share again")
        run.check()
    finally:
        run.close()


@pytest.mark.integration
def test_a_frozen_kv_leader_never_makes_two_owners(cluster: NatsCluster) -> None:
    """SIGSTOP of the leases bucket's leader (a node cut off): the rest elect another, every
    partition is owned again, and never by two workers at once."""
    run = Run(cluster.urls, 3)
    leader = None
    try:
        workers = [run.add(f"w{i}") for i in range(3)]
        run.wait_even(workers, 4, "three workers to hold 4 partitions each")
        leader = cluster.stream_leader(f"KV_{leases_bucket(run.prefix)}")
        before = {
            row["partition"]: row["revision"]
            for row in cluster_status(cluster.urls, bucket_prefix=run.prefix)["leases"]
        }
        leader.pause()
        others = [node.url for node in cluster.nodes if node is not leader]

        def renewed_through_a_new_leader() -> bool:
            try:
                rows = cluster_status(others, bucket_prefix=run.prefix, timeout=1.0)["leases"]
            except TRANSIENT:
                return False  # the election is under way
            renewed = all(row["owner"] and row["revision"] > before[row["partition"]] for row in rows)
            return renewed and run.shares(workers) is not None

        wait_for(
            renewed_through_a_new_leader, "every lease renewed or moved while the leader is frozen", 30.0
        )
        leader.resume()
        leader = None
        run.wait_even(workers, 4, "the workers to share evenly again")
        run.check()
    finally:
        if leader is not None:
            leader.resume()
        run.close()
        cluster.wait_healthy()


@pytest.mark.integration
def test_cluster_status_lists_partitions_owners_epochs_and_live_workers(server: NatsServer) -> None:
    """`cluster_status` reports what the workers hold: owner and epoch per partition, live workers."""
    run = Run([server.url], 1)
    try:
        workers = [run.add("a"), run.add("b")]
        run.wait_even(workers, 6, "two workers to hold 6 partitions each")
        status = wait_for(
            lambda: (
                (s := cluster_status([server.url], bucket_prefix=run.prefix))["live_workers"] == ["a", "b"]
                and s
            ),
            "both workers in the workers bucket",
        )
        assert status["partitions"] == PARTITIONS
        assert {w: sorted(ps) for w, ps in status["owners"].items()} == {
            w.worker_id: sorted(w.owned()) for w in workers
        }
        by_partition = {row["partition"]: row for row in status["leases"]}
        for worker in workers:
            for partition, epoch in worker.owned().items():
                assert by_partition[partition]["epoch"] == epoch
    finally:
        run.close()


@pytest.mark.integration
def test_a_worker_with_another_partition_count_refuses_to_start(server: NatsServer) -> None:
    """Partition counts must agree: a worker configured with 8 where the cluster has 12 fails at start."""
    run = Run([server.url], 1)
    try:
        run.add("w1")
        other = Ownership([server.url], partitions=8, worker_id="w2", bucket_prefix=run.prefix)
        with pytest.raises(ValueError, match="12 partitions"):
            other.start()
    finally:
        run.close()


@pytest.mark.integration
def test_cluster_status_of_an_empty_deployment(server: NatsServer) -> None:
    """Before any worker ran, the status is empty rather than an error."""
    assert cluster_status([server.url], bucket_prefix="never-used") == {
        "partitions": 0,
        "live_workers": [],
        "owners": {},
        "lag": 0,
        "intake": None,
        "leases": [],
    }


@pytest.mark.integration
def test_live_keys_sees_every_live_worker_while_heartbeats_race_the_read(server: NatsServer) -> None:
    """Reads interleaved with heartbeat puts always list every live key and never a removed one
    (nats-py's `KeyValue.keys()` answered an empty bucket when a put raced its watcher)."""
    bucket = f"live-keys-{next(_prefixes)}"

    async def scenario() -> list[list[str]]:
        nc = await connect([server.url], "live-keys-test", 2.0)
        try:
            js = nc.jetstream(timeout=2.0)
            workers = await ensure_bucket(js, bucket, replicas=1, ttl=30.0)
            for name in ("w1", "w2", "gone", "deleted"):
                await workers.put(name, b"{}")
            await workers.purge("gone")
            await workers.delete("deleted")
            answers: list[list[str]] = []
            for _ in range(200):
                put = asyncio.ensure_future(workers.put("w1", b"{}"))
                answers.append(await live_keys(js, bucket))
                await put
            return answers
        finally:
            await nc.close()

    answers = asyncio.run(scenario())
    assert all(answer == ["w1", "w2"] for answer in answers), answers


def test_partition_keys_are_the_station_or_its_river_system() -> None:
    """By station, a station's key is its id as one subject token; by river system, every station
    of one basin shares the basin's key (and so its partition), a station off the network keeps its
    own."""
    by_station = PartitionKeys()
    assert by_station.key("500101-0001") == "500101-0001"
    assert by_station.key("cq.cj zhutuo") == "cq_cj_zhutuo"
    assert by_station.partition("S1", 12) == partition_of("S1", 12)
    basins = {"a": "长江", "b": "长江", "c": "乌江"}
    by_basin = PartitionKeys(basins.get)
    assert by_basin.key("a") == by_basin.key("b") == "~长江"
    assert by_basin.partition("a", 64) == by_basin.partition("b", 64) == partition_of("~长江", 64)
    assert by_basin.key("c") == "~乌江"
    assert by_basin.key("elsewhere") == "elsewhere"
