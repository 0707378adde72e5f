"""The cluster's proof: three nats-server nodes, three ecowatch workers, a pollution event, faults.

Each run publishes the same four days of 24 river sections (`cluster_proof_support.traffic`: four
sustained NH3-N spills escalating to critical, a section at class IV long enough to escalate by
time, eight single spikes, clean days; 576 reports in eight half-day waves) over MQTT QoS 1 to a
node's MQTT listener, and injects one fault while a wave is being stored:

- kill -9 of the worker that dispatches the receiver's notifications, and in another run of the
  one that holds the intake (its partitions and leases move to the other two, which replay from
  its checkpoints);
- kill -9 of the NATS node that leads the stations stream, brought back later;
- SIGSTOP of that node for ten seconds (a node cut off from the others: on loopback, a frozen
  process stands in for a network partition), then SIGCONT;
- SIGSTOP of the worker that holds the intake for ten seconds, then SIGCONT (a worker cut off);
- a rolling restart of the three workers (SIGTERM, start again), one at a time.

The intake-holder kill and the worker freeze are marked `fault` (`./scripts/test.sh -m fault`) to
keep the default suite within its time; the other four run in it.

Then `ProofRun.check_reconciled` asserts, exactly: every published reading is in the readings
store once; every alert transition the single-node engine derives from the same reports
(`cluster_proof_support.reference`) reached the test receiver once, signed, as a multiset of
(station, rule, status, severity, change); the outbox stream holds one message per transition and
the stations stream every report, all acknowledged; the running workers dead-lettered nothing.

These runs found, and now guard: readings the MQTT listener acknowledged while the stations stream
had no leader were lost (nats-server PUBACKs a QoS 1 PUBLISH once it is in its own `$MQTT_msgs`,
and the stations stream captured only the plain publish; the intake, `ingest.cluster.intake`, now
moves them over and acks after the stations stream stored them); a pull subscription that failed
to bind again after a node came back left the intake and the outbox dispatchers pulling into a
dead inbox; a partition reader whose checkpoint load timed out ended while its worker kept the
lease; an AckAll after deliveries a reader never saw acknowledged them unread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from tests.integration.cluster_proof_support import ITEMS, STATIONS_STREAM, ProofRun, Publisher, messages_of
from tests.servers import NatsServer

pytestmark = pytest.mark.integration

# How long a node stays frozen: well past the workers' lease (2 s) and the clients' ping timeout
# (~3 s), so that leases, dispatch and stream leaders move away from it.
FROZEN_SECONDS: Final = 10.0


def _readings(run: ProofRun, waves: range) -> int:
    return sum(len(messages_of(run.traffic.waves[w])) for w in waves) * ITEMS


@pytest.mark.parametrize("role", ["dispatching", pytest.param("intake", marks=pytest.mark.fault)])
def test_a_worker_killed_mid_traffic_loses_nothing_and_notifies_each_transition_once(
    tmp_path: Path, role: str
) -> None:
    """kill -9 of a worker while a wave is being stored: the one dispatching the receiver's
    notifications, or the one moving the stations' messages from the MQTT listener into the
    stations stream (the intake). The other two take its partitions (replaying from its
    checkpoints) and its leases; every reading is stored once, every transition notified exactly
    once (a delivery the killed dispatcher made but could not ack comes again after ack_wait, and
    the receiver drops it by key), and the streams reconcile."""
    with ProofRun(tmp_path) as run:
        run.publish(0, 1, node=0)
        run.rig.wait_stored(_readings(run, range(2)))
        victim = run.dispatcher() if role == "dispatching" else run.intake_holder()
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3], node=0)
        run.wait_flowing(before)
        run.note(f"kill -9 {victim.folder.name} ({role})")
        victim.kill()
        publisher.join()
        run.note("waves 2-3 acknowledged")
        run.wait_balanced()
        assert victim not in run.running()
        run.publish(*range(4, run.waves), node=0)
        run.note("all waves published")
        run.check_reconciled(repeats=1)
        run.note("reconciled")


@pytest.mark.fault
def test_a_worker_frozen_mid_traffic_is_fenced_and_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGSTOP of the worker holding the intake for ten seconds while a wave is being stored (its
    leases expire and move to the other two, which replay from its checkpoints), then SIGCONT: the
    woken worker finds its leases gone and acts on none of them (its stores and acks are fenced by
    epoch), rejoins, and every reading is stored once, every transition notified exactly once (a
    delivery it made before freezing may come again, dropped by key), and the streams reconcile."""
    with ProofRun(tmp_path) as run:
        run.publish(0, 1, node=0)
        run.rig.wait_stored(_readings(run, range(2)))
        victim = run.intake_holder()
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3], node=0)
        run.wait_flowing(before)
        run.note(f"SIGSTOP {victim.folder.name} (intake)")
        victim.pause()
        try:
            time.sleep(FROZEN_SECONDS)  # the fault's duration
        finally:
            victim.resume()
        run.note(f"SIGCONT {victim.folder.name}")
        publisher.join()
        run.note("waves 2-3 acknowledged")
        run.wait_balanced()
        run.publish(*range(4, run.waves), node=0)
        run.note("all waves published")
        run.check_reconciled(repeats=1)
        run.note("reconciled")


def _through_a_fault_of_the_stations_leader(
    tmp_path: Path, fault: Callable[[ProofRun, NatsServer, Publisher], None]
) -> None:
    """Stations publish to a node that does not lead the stations stream; while waves 2-4 are being
    stored, `fault` strikes the leader (and returns once the publisher is done and the node is
    back); then the last waves, and everything must reconcile."""
    with ProofRun(tmp_path) as run:
        victim = run.nodes[run.leader_of(STATIONS_STREAM)]
        node = (run.nodes.index(victim) + 1) % len(run.nodes)
        run.publish(0, 1, node=node)
        run.rig.wait_stored(_readings(run, range(2)))
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3, 4], node=node)
        run.wait_flowing(before)
        fault(run, victim, publisher)
        assert run.rig.cluster is not None
        run.rig.cluster.wait_healthy()
        run.note(f"{victim.server_name} back")
        run.publish(*range(5, run.waves), node=node)
        run.note("all waves published")
        run.check_reconciled()
        run.note("reconciled")


def test_a_nats_node_killed_and_brought_back_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """kill -9 of the node leading the stations stream while a wave is being stored (stations
    publish to another node), then the node started again: every reading is stored once, every
    transition notified exactly once, and the streams reconcile."""

    def kill_and_restart(run: ProofRun, victim: NatsServer, publisher: Publisher) -> None:
        run.note(f"kill -9 {victim.server_name}")
        victim.kill()
        publisher.join()
        run.note("waves 2-4 acknowledged")
        victim.start()

    _through_a_fault_of_the_stations_leader(tmp_path, kill_and_restart)


def test_a_nats_node_cut_off_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGSTOP of the node leading the stations stream for ten seconds while a wave is being
    stored (stations publish to another node; clients connected to the frozen node see it hang,
    as behind a network partition), then SIGCONT: every reading is stored once, every transition
    notified exactly once, and the streams reconcile."""

    def freeze(run: ProofRun, victim: NatsServer, publisher: Publisher) -> None:
        run.note(f"SIGSTOP {victim.server_name}")
        victim.pause()
        try:
            time.sleep(FROZEN_SECONDS)  # the fault's duration
        finally:
            victim.resume()
        run.note(f"SIGCONT {victim.server_name}")
        publisher.join()
        run.note("waves 2-4 acknowledged")

    _through_a_fault_of_the_stations_leader(tmp_path, freeze)


def test_a_rolling_restart_of_every_worker_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Each worker in turn stopped (SIGTERM: its partitions handed over with a last checkpoint, its
    dispatch lease released) and started again while a wave is being stored, the partitions
    rebalanced in between: every reading is stored once, every transition notified exactly once,
    and the streams reconcile."""
    with ProofRun(tmp_path) as run:
        run.publish(0, 1, node=0)
        run.rig.wait_stored(_readings(run, range(2)))
        for index, worker in enumerate(run.rig.workers):
            before = run.rig.stored()
            publisher = run.publish_in_background([2 + index], node=0)
            run.wait_flowing(before)
            run.note(f"SIGTERM {worker.folder.name}")
            assert worker.terminate() == 0
            run.wait_balanced()
            worker.start()
            run.wait_balanced()
            publisher.join()
            run.note(f"{worker.folder.name} back, partitions rebalanced")
        run.publish(*range(5, run.waves), node=0)
        run.note("all waves published")
        run.check_reconciled()
        run.note("reconciled")
