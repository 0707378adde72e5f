"""The cluster's proof: three nats-server nodes, three ecowatch workers, a pollution event, faults.

Each run publishes the same four days of 24 river sections (`cluster_proof_support.traffic`: four
sustained NH3-N spills escalating to critical, a section at class IV long enough to escalate by
time, eight single spikes, clean days; 576 reports in eight half-day waves) over MQTT QoS 1 to a
node's MQTT listener, and injects one fault while a wave is being stored:

- kill -9 of the worker that dispatches the receiver's notifications (its partitions and the
  dispatch lease move to the other two, which replay from its checkpoints);
- kill -9 of the NATS node that leads the stations stream, brought back later;
- SIGSTOP of that node for ten seconds (a node cut off from the others: on loopback, a frozen
  process stands in for a network partition), then SIGCONT;
- a rolling restart of the three workers (SIGTERM, start again), one at a time.

Then `ProofRun.check_reconciled` asserts, exactly: every published reading is in the readings
store once; every alert transition the single-node engine derives from the same reports
(`cluster_proof_support.reference`) reached the test receiver once, signed, as a multiset of
(station, rule, status, severity, change); the outbox stream holds one message per transition and
the stations stream every report, all acknowledged; the running workers dead-lettered nothing.

The two NATS-node runs are marked `fault` (run them with `scripts/test.sh -m fault`) and
expected to fail today (xfail): readings the MQTT listener acknowledged while the stations stream
had no leader are not in the stream, because nats-server acknowledges a QoS 1 PUBLISH once it is
in its own `$MQTT_msgs` stream, not in the streams that capture its subject (a plain publish,
dropped without a leader). Closing that needs an ingest path that waits for the stations stream's
own acknowledgement (issue 20, open). The two bugs these runs found in the workers are fixed: a
partition reader whose checkpoint load timed out ended while its worker kept the lease, and an
AckAll after deliveries a reader never saw acknowledged them unread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

import pytest

from tests.integration.cluster_proof_support import ITEMS, STATIONS_STREAM, ProofRun, messages_of

pytestmark = pytest.mark.integration

MQTT_GAP: Final = (
    "nats-server acks MQTT QoS 1 before the stations stream stores the message: readings published "
    "while that stream has no leader are lost (issue 20, open)"
)

# How long a node stays frozen: well past the workers' lease (2 s) and the clients' ping timeout
# (~3 s), so that leases, dispatch and stream leaders move away from it.
FROZEN_SECONDS: Final = 10.0


def _readings(run: ProofRun, waves: range) -> int:
    return sum(len(messages_of(run.traffic.waves[w])) for w in waves) * ITEMS


def test_a_worker_killed_mid_traffic_loses_nothing_and_notifies_each_transition_once(tmp_path: Path) -> None:
    """kill -9 of the dispatching worker while a wave is being stored: the other two take its
    partitions (replaying from its checkpoints) and the receiver's dispatch; every reading is
    stored once, every transition notified exactly once (a delivery the killed worker made but
    could not ack comes again after ack_wait, and the receiver drops it by key), and the streams
    reconcile."""
    with ProofRun(tmp_path) as run:
        run.publish(0, 1, node=0)
        run.rig.wait_stored(_readings(run, range(2)))
        victim = run.dispatcher()
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3], node=0)
        run.wait_flowing(before)
        run.note(f"kill -9 {victim.folder.name} (dispatching)")
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
@pytest.mark.xfail(reason=MQTT_GAP, strict=False)
def test_a_nats_node_killed_and_brought_back_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """kill -9 of the node leading the stations stream while a wave is being stored (stations
    publish to another node), then the node started again: every reading is stored once, every
    transition notified exactly once, and the streams reconcile."""
    with ProofRun(tmp_path) as run:
        victim = run.leader_of(STATIONS_STREAM)
        node = (victim + 1) % len(run.nodes)
        run.publish(0, 1, node=node)
        run.rig.wait_stored(_readings(run, range(2)))
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3, 4], node=node)
        run.wait_flowing(before)
        run.note(f"kill -9 {run.nodes[victim].server_name}")
        run.nodes[victim].kill()
        publisher.join()
        run.note("waves 2-4 acknowledged")
        run.nodes[victim].start()
        assert run.rig.cluster is not None
        run.rig.cluster.wait_healthy()
        run.note(f"{run.nodes[victim].server_name} back")
        run.publish(*range(5, run.waves), node=node)
        run.note("all waves published")
        run.check_reconciled()
        run.note("reconciled")


@pytest.mark.fault
@pytest.mark.xfail(reason=MQTT_GAP, strict=False)
def test_a_nats_node_cut_off_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGSTOP of the node leading the stations stream for ten seconds while a wave is being
    stored (stations publish to another node; clients connected to the frozen node see it hang,
    as behind a network partition), then SIGCONT: every reading is stored once, every transition
    notified exactly once, and the streams reconcile."""
    with ProofRun(tmp_path) as run:
        victim = run.leader_of(STATIONS_STREAM)
        node = (victim + 1) % len(run.nodes)
        run.publish(0, 1, node=node)
        run.rig.wait_stored(_readings(run, range(2)))
        before = run.rig.stored()
        publisher = run.publish_in_background([2, 3, 4], node=node)
        run.wait_flowing(before)
        run.note(f"SIGSTOP {run.nodes[victim].server_name}")
        run.nodes[victim].pause()
        try:
            time.sleep(FROZEN_SECONDS)  # the fault's duration
        finally:
            run.nodes[victim].resume()
        run.note(f"SIGCONT {run.nodes[victim].server_name}")
        publisher.join()
        run.note("waves 2-4 acknowledged")
        assert run.rig.cluster is not None
        run.rig.cluster.wait_healthy()
        run.publish(*range(5, run.waves), node=node)
        run.note("all waves published")
        run.check_reconciled()
        run.note("reconciled")


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
