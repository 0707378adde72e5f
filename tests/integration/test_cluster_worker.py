"""One cluster worker end to end: MQTT into the NATS listener, readings in the store, each alert
transition notified once, signed; and a second worker taking over from its checkpoints.

The workers are `ecowatch run` processes with a `cluster:` section (`ingest.app.cluster_worker`)
on a single nats-server with JetStream and its MQTT listener (`ClusterRig`). The reports are the
alert scenarios' days: two sections with one NH3-N spike each (a warning, then resolved: two
transitions each), four clean ones.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from config.network import RiverNetwork
from config.registry import Registry, Station
from ingest.cluster import cluster_status, partition_of
from ingest.sources.hj212_gateway import GatewayMqttConfig, HJ212Gateway, HJ212GatewayConfig, MqttHandoff
from tests.helpers import DEMO_REGISTRY, station, wait_for
from tests.ingest.hj212_gateway.gateway_support import data_packet
from tests.integration.alert_scenario_support import (
    HOURS,
    Receiver,
    Report,
    day_of_reports,
    local_day,
    readings,
    river_station,
)
from tests.integration.cluster_support import WAIT, ClusterRig
from tests.integration.daemon_process import DaemonProcess
from tests.integration.test_incident_scenarios import (
    INTERVAL,
    YANGTZE_ABOVE_CITY,
    Spill,
    first_report_at_or_after,
    grid_start,
)

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
        status = cluster_status(rig.urls)
    assert rig.stored() == sent * ITEMS
    assert receiver.repeats == 0
    assert receiver.bad_signatures == 0
    assert sum(p["messages"] for p in stats["partitions"].values()) == sent
    assert stats["deadletters"] == {}
    # `ecowatch cluster status`: one owner, every partition's consumer read to the end.
    assert status["owners"] == {"w1": [0, 1, 2, 3]}
    assert status["lag"] == 0
    assert all(row["lag"] == 0 and row["ack_pending"] == 0 for row in status["leases"])
    # The intake moved every message from the MQTT listener and holds nothing back.
    assert stats["intake"]["forwarded"] == sent
    assert status["intake"] == {"owner": "w1", "epoch": 1, "lag": 0, "ack_pending": 0}


def test_hj212_loggers_reach_the_cluster_through_the_gateway(tmp_path: Path) -> None:
    """A data logger's uploads over HJ 212 TCP, through the gateway publishing on
    `ecowatch/v1/hj212/{station_id}/packet` to the NATS MQTT listener, land in their station's
    partition of the stations stream and are stored by its worker; a packet from an unknown MN is
    dead-lettered there."""
    stations = [station("hj-a", mn="MN-CLUSTER-A"), station("hj-b", mn="MN-CLUSTER-B")]
    with ClusterRig(tmp_path, stations, [], partitions=4, running=0) as rig:
        (worker,) = rig.workers
        document = yaml.safe_load(worker.config_file.read_text(encoding="utf-8"))
        document["mqtt"] = {
            "subscriptions": [{"topic": "ecowatch/v1/hj212/{station_id}/packet", "format": "hj212"}]
        }
        worker.config_file.write_text(yaml.safe_dump(document), encoding="utf-8")
        worker.start()
        port = rig.nodes[0].mqtt_port
        assert port is not None
        topic = "ecowatch/v1/hj212/{station_id}/packet"
        handoff = MqttHandoff(GatewayMqttConfig(port=port, protocol="3.1.1", topic=topic), Registry(stations))
        handoff.start()
        gateway = HJ212Gateway(HJ212GatewayConfig(port=0), handoff, Registry(stations))
        try:
            assert handoff.wait_connected(WAIT)
            gateway.start()
            packets = [data_packet(s.mn or "", "x", i) for s in stations for i in range(5)]
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as sock:
                sock.sendall(b"".join([*packets, data_packet("MN-NOBODY", "x", 99)]))
                answers = b""
                while answers.count(b"\r\n") < len(packets):
                    answers += sock.recv(4096)
            rig.wait_stored(len(packets) * 2)  # pH and DO of each upload
            stats = worker.wait_for(lambda s: bool(s["deadletters"]), WAIT, "the unknown MN's letters")
        finally:
            gateway.stop()
            handoff.close()
    assert rig.stored() == len(packets) * 2
    assert stats["deadletters"] == {"unknown_station": 2}
    # Each station's packets were read by the owner of its station id's partition.
    fetched = {int(p): row["fetched"] for p, row in stats["partitions"].items() if row["fetched"]}
    homes = {partition_of(s.id, 4) for s in stations} | {partition_of("MN-NOBODY", 4)}
    assert set(fetched) == homes


def _hand_over(tmp_path: Path, checkpoint_interval: str, stop: Callable[[DaemonProcess], None]) -> None:
    """The first of two workers takes the day up to the spikes; `stop` ends it; the second takes
    every partition and the rest of the day. Every reading is stored once, each spike's warning and
    resolution notified once, and the second worker resumed after the first one's checkpoints: it
    handled the late reports only, not a replay from the start."""
    reports, spiking = _scenario()
    stations = sorted({r.station for r in reports}, key=lambda s: s.id)
    receiver = Receiver("duty")
    early = [r for r in reports if r.ts.hour <= 8]
    late = [r for r in reports if r.ts.hour > 8]
    with ClusterRig(
        tmp_path,
        stations,
        [receiver],
        partitions=4,
        workers=2,
        checkpoint_interval=checkpoint_interval,
        running=1,
    ) as rig:
        first, second = rig.workers
        wait_for(lambda: len(first.stats()["owned"]) == 4, "the first worker to own every partition", WAIT)
        sent = rig.publish(early)
        rig.wait_stored(sent * ITEMS)
        wait_for(lambda: len(receiver.all()) == len(spiking), "both warnings", WAIT)
        stop(first)
        second.start()
        sent_late = rig.publish(late)
        sent += sent_late
        rig.wait_stored(sent * ITEMS)
        expected = sorted((s, status) for s in spiking for status in ("firing", "resolved"))
        wait_for(lambda: _transitions(receiver) == expected, "both alerts resolved", WAIT)
        stats = second.stats()
    assert len(stats["owned"]) == 4
    assert sum(p["messages"] for p in stats["partitions"].values()) == sent_late
    assert rig.stored() == sent * ITEMS
    assert receiver.repeats == 0
    assert receiver.bad_signatures == 0


def test_a_second_worker_continues_from_a_killed_ones_checkpoints(tmp_path: Path) -> None:
    """kill -9 once every partition's periodic checkpoint (every second) covers what it read: the
    next worker rebuilds the alert state from them and goes on (see `_hand_over`)."""

    def kill_once_checkpointed(first: DaemonProcess) -> None:
        wait_for(
            lambda: all(p["checkpointed"] == p["sequence"] for p in first.stats()["partitions"].values()),
            "a checkpoint of every partition",
            WAIT,
        )
        first.kill()

    _hand_over(tmp_path, "PT1S", kill_once_checkpointed)


def test_a_worker_stopped_in_order_hands_its_partitions_over_with_their_state(tmp_path: Path) -> None:
    """SIGTERM: the worker writes each partition's last checkpoint while it still holds the lease
    (no periodic one is due: the interval is 5 min), so the next worker resumes exactly where it
    stopped (see `_hand_over`)."""

    def terminate(first: DaemonProcess) -> None:
        assert first.terminate() == 0

    _hand_over(tmp_path, "PT5M", terminate)


def test_river_system_partitions_follow_an_incident_from_section_to_section(tmp_path: Path) -> None:
    """`partition_by: river_system`: the demo network's Yangtze sections, which their ids hash into
    four different partitions, are one partition's, so a spill into the Yangtze between 朱沱 and
    丰收坝 is one incident, opened at 丰收坝 and confirmed at 寸滩 by one alert engine, its thread
    (opened, confirmed) reaching the reach's river chief and the intake operator below once each,
    signed, across two workers."""
    demo = Registry.load(DEMO_REGISTRY)
    assert demo.network is not None
    stations = [
        s.model_copy(update={"report_interval_s": int(INTERVAL.total_seconds())}) for s in demo.values()
    ]
    sections = [demo[s] for s in YANGTZE_ABOVE_CITY]
    assert len({partition_of(s.id, 8) for s in sections}) == 4  # apart when keyed by station id
    receivers = [Receiver("chief-jiangjin-cj"), Receiver("op-intake-cj-yuzui")]
    with ClusterRig(
        tmp_path,
        stations,
        receivers,
        workers=2,
        partitions=8,
        network=demo.network.spec,
        cluster={"partition_by": "river_system"},
    ) as rig:
        wait_for(
            lambda: sorted(len(w.stats()["owned"]) for w in rig.workers) == [4, 4],
            "the workers to share the partitions",
            WAIT,
        )
        network = demo.network
        start = grid_start(14)
        spill = Spill("长江", 200.0, start + timedelta(hours=1))
        sent = rig.publish(_spill_reports(network, sections, start, start + timedelta(hours=14), spill))
        rig.wait_stored(sent * ITEMS)

        def threads() -> dict[str, list[str]]:
            return {r.name: incident_thread(r) for r in receivers}

        wait_for(
            lambda: all(t == ["opened", "confirmed"] for t in threads().values()),
            "the incident's thread at both receivers",
            WAIT,
            detail=threads,
        )
        incident_ids = {e["alert_id"] for r in receivers for e in r.all() if e["kind"] == "incident"}
    assert len(incident_ids) == 1
    for receiver in receivers:
        assert receiver.bad_signatures == 0
        assert receiver.repeats == 0


def incident_thread(receiver: Receiver) -> list[str]:
    """The changes of the incident events `receiver` got, in their thread's order."""
    events = [e for e in receiver.all() if e["kind"] == "incident"]
    ordered = sorted(events, key=lambda e: (e["alert_id"], int(e["key"].rsplit(":", 1)[1])))
    return [e["annotations"]["change"] for e in ordered]


def _spill_reports(
    network: RiverNetwork, sections: list[Station], start: datetime, end: datetime, spill: Spill
) -> list[Report]:
    """Every section's 30-minute reports of [start, end): clean, plus the spill where it has arrived."""
    out = []
    ts = first_report_at_or_after(start)
    while ts < end:
        for section in sections:
            nh3n = 0.3 + spill.excess(network, section.id, ts)
            out.append(Report(section, ts, readings(nh3n=round(nh3n, 3))))
        ts += INTERVAL
    return out


def test_the_regional_role_judges_a_district_s_day_from_the_store_once(tmp_path: Path) -> None:
    """Three sections of one district, one worse than its target (class III) all of yesterday: the
    worker holding the regional role assesses yesterday from the readings store (at its start, once
    the role moved to it), the district's daily compliance of 2/3 fires the regional rule, notified
    once, signed; the role moved back with its checkpoint notifies nothing again."""
    day = local_day(1)
    stations = [river_station(f"rg-{n}", "Yuzhong") for n in (1, 2, 3)]
    failing = {hour: readings(nh3n=1.8) for hour in HOURS}  # class V: the daily mean misses III
    reports = [
        *day_of_reports(stations[0], day, failing),
        *(r for s in stations[1:] for r in day_of_reports(s, day)),
    ]
    rule = {
        "name": "district_daily",
        "kind": "regional_period",
        "group_by": "district",
        "figure": "compliance_rate",
        "threshold": 0.8,
        "period": "day",
        "min_sections": 3,
    }
    # Yesterday is due from midnight on, whatever the hour the test runs.
    alerts = {"scheduler": {"daily_assessment_at": "00:00"}, "rules": [rule]}
    receiver = Receiver("duty")
    with ClusterRig(
        tmp_path, stations, [receiver], workers=2, partitions=4, running=1, settings={"alerts": alerts}
    ) as rig:
        first, second = rig.workers
        # Its assessment at start has run, on nothing yet: the day is assessed by the next holder.
        wait_for(
            lambda: (first.stats()["regional"]["assessment_runs"] or 0) >= 1,
            "the first worker's regional role to have run its assessment at start",
            WAIT,
        )
        assert first.stats()["regional"]["assessed_days"] == 0
        sent = rig.publish(reports)
        rig.wait_stored(sent * ITEMS)
        # The role moves to a worker that starts after the day is stored: it assesses at its start.
        second.start()
        assert first.terminate() == 0
        wait_for(lambda: _regional(receiver) == [("district_daily", "firing")], "the regional alert", WAIT)
        assert second.stats()["regional"]["assessed_days"] >= 1
        # Back to the first worker, with the state checkpointed: assessed, firing, nothing new.
        first.start()
        assert second.terminate() == 0

        def assessed_again() -> bool:
            regional = first.stats()["regional"]
            return bool(regional["holding"]) and (regional["assessed_days"] or 0) >= 1

        wait_for(assessed_again, "the first worker to hold the role with the day assessed", WAIT)
        wait_for(lambda: first.stats()["regional"]["checkpoints"] >= 1, "its first tick and checkpoint", WAIT)
    assert _regional(receiver) == [("district_daily", "firing")]
    assert receiver.repeats == 0
    assert receiver.bad_signatures == 0


def _regional(receiver: Receiver) -> list[tuple[str, str]]:
    return [(e["rule"], e["status"]) for e in receiver.all() if e["rule"] == "district_daily"]
