"""One cluster worker end to end: MQTT into the NATS listener, readings in the store, each alert
transition notified once, signed; and a second worker taking over from its checkpoints.

The workers are `ecowatch run` processes with a `cluster:` section (`ingest.app.cluster_worker`)
on a single nats-server with JetStream and its MQTT listener (`ClusterRig`). The reports are the
alert scenarios' days: two sections with one NH3-N spike each (a warning, then resolved: two
transitions each), four clean ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.alert_scenario_support import (
    Receiver,
    Report,
    day_of_reports,
    local_day,
    readings,
    river_station,
)
from tests.integration.cluster_support import WAIT, ClusterRig

pytestmark = pytest.mark.integration

SPIKE = 3.0  # one 劣V NH3-N reading, below the emergency threshold
ITEMS = 5  # values per report (alert_scenario_support.CLEAN)


def _scenario() -> tuple[list[Report], set[str]]:
    """Six sections' reports of one day, two of them with a spike; the spiking stations."""
    day = local_day(1)
    spiking = [river_station(f"cl-spike-{n}", "Yuzhong") for n in (1, 2)]
    calm = [river_station(f"cl-calm-{n}", "Jiangbei") for n in range(1, 5)]
    reports = [
        *(r for s in spiking for r in day_of_reports(s, day, {8: readings(nh3n=SPIKE)})),
        *(r for s in calm for r in day_of_reports(s, day)),
    ]
    return reports, {s.id for s in spiking}


def _transitions(receiver: Receiver) -> list[tuple[str, str]]:
    return sorted((e["station"]["id"], e["status"]) for e in receiver.all())


def test_a_worker_stores_every_reading_and_notifies_each_transition_once(tmp_path: Path) -> None:
    """Every report published to the NATS MQTT listener is stored once; each spiking section's
    warning and its resolution reach the receiver once, signed; nothing else is notified."""
    reports, spiking = _scenario()
    stations = sorted({r.station for r in reports}, key=lambda s: s.id)
    receiver = Receiver("duty")
    with ClusterRig(tmp_path, stations, [receiver], partitions=4) as rig:
        (worker,) = rig.workers
        wait_for(lambda: len(worker.stats()["owned"]) == 4, "the worker to own every partition", WAIT)
        sent = rig.publish(reports)
        rig.wait_stored(sent * ITEMS)
        expected = sorted((s, status) for s in spiking for status in ("firing", "resolved"))
        wait_for(lambda: _transitions(receiver) == expected, "both alerts fired and resolved", WAIT)
        stats = worker.stats()
    assert rig.stored() == sent * ITEMS
    assert receiver.repeats == 0
    assert receiver.bad_signatures == 0
    assert sum(p["messages"] for p in stats["partitions"].values()) == sent
    assert stats["deadletters"] == {}


def test_a_second_worker_continues_from_the_first_ones_checkpoints(tmp_path: Path) -> None:
    """The first worker stores the day up to the spikes and is killed (kill -9); a second worker
    takes every partition over, rebuilds the alert state from the checkpoints and replays the
    rest: the spikes' warnings come once and their resolutions once, and every reading is stored
    once."""
    reports, spiking = _scenario()
    stations = sorted({r.station for r in reports}, key=lambda s: s.id)
    receiver = Receiver("duty")
    early = [r for r in reports if r.ts.hour <= 8]
    late = [r for r in reports if r.ts.hour > 8]
    with ClusterRig(
        tmp_path, stations, [receiver], partitions=4, workers=2, checkpoint_interval="PT1S", running=1
    ) as rig:
        first, second = rig.workers
        wait_for(lambda: len(first.stats()["owned"]) == 4, "the first worker to own every partition", WAIT)
        sent = rig.publish(early)
        rig.wait_stored(sent * ITEMS)
        wait_for(lambda: len(receiver.all()) == len(spiking), "both warnings", WAIT)
        wait_for(
            lambda: all(p["checkpointed"] == p["sequence"] for p in first.stats()["partitions"].values()),
            "a checkpoint of every partition",
            WAIT,
        )
        first.kill()
        second.start()
        sent_late = rig.publish(late)
        sent += sent_late
        rig.wait_stored(sent * ITEMS)
        expected = sorted((s, status) for s in spiking for status in ("firing", "resolved"))
        wait_for(lambda: _transitions(receiver) == expected, "both alerts resolved", WAIT)
        stats = second.stats()
        assert len(stats["owned"]) == 4
        # It resumed after the checkpoints: the late reports only, not a replay from the start.
        assert sum(p["messages"] for p in stats["partitions"].values()) == sent_late
    assert rig.stored() == sent * ITEMS
    assert receiver.repeats == 0
    assert receiver.bad_signatures == 0
