"""Load mode: synthetic registries, pregenerated messages and rate-paced publishing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import orjson

from config.registry import Registry
from ingest.decoders import DECODERS
from simulators.load import LOAD_CODES, pregenerate, run_load, synthetic_registry, write_registry
from tests.helpers import DEMO_REGISTRY
from tests.simulators.support import CollectingPublisher


def test_a_synthetic_registry_round_trips_through_yaml(tmp_path: Path) -> None:
    """N synthetic stations with unique ids and MNs save to a registry file the daemon can load."""
    stations = synthetic_registry(250, report_interval_s=30)
    assert len({s.id for s in stations}) == len({s.mn for s in stations}) == 250
    path = tmp_path / "load-registry.yaml"
    write_registry(stations, path)
    loaded = Registry.load(path)
    assert list(loaded.values()) == stations
    assert loaded.by_mn("99000000000250") == stations[-1]


def test_a_registry_written_with_its_network_keeps_it(tmp_path: Path) -> None:
    """The demo registry written back with its network loads with the same rivers and travel times,
    so a daemon fed the written file follows incidents as one fed the original would."""
    original = Registry.load(DEMO_REGISTRY)
    assert original.network is not None
    path = tmp_path / "registry.yaml"
    write_registry(list(original.values()), path, note="copy", network=original.network.spec)
    loaded = Registry.load(path)
    assert loaded.network is not None
    assert loaded.network.spec == original.network.spec
    assert loaded.network.travel_time("cq-jl-jinzi", "cq-cj-cuntan") == original.network.travel_time(
        "cq-jl-jinzi", "cq-cj-cuntan"
    )
    write_registry(list(original.values()), path)
    assert Registry.load(path).network is None


def test_pregenerated_messages_carry_eight_parameters_each(tmp_path: Path) -> None:
    """`pregenerate` builds exactly the messages asked for, stations in turn, 8 values each, decodable."""
    stations = synthetic_registry(7)
    messages = pregenerate(50, stations, seed=3)
    assert len(messages) == 50
    assert messages == pregenerate(50, stations, seed=3)
    decoder = DECODERS["json"]()
    for index, (topic, payload) in enumerate(messages):
        assert topic.endswith(f"/{stations[index % 7].id}/water")
        assert tuple(orjson.loads(payload)["readings"]) == LOAD_CODES
        assert len(decoder.decode(topic, payload).readings) == 8
    first_round = {orjson.loads(p)["ts"] for _, p in messages[:7]}
    second_round = {orjson.loads(p)["ts"] for _, p in messages[7:14]}
    assert len(first_round) == len(second_round) == 1
    assert first_round != second_round


def test_hj212_load_messages_go_to_the_mn_topics() -> None:
    """Load mode speaks HJ 212 too, one packet per message on hj212/{mn}."""
    messages = pregenerate(10, synthetic_registry(5), format="hj212")
    assert [t for t, _ in messages[:5]] == [f"hj212/9900000000000{i}" for i in range(1, 6)]
    decoder = DECODERS["hj212"]()
    assert all(len(decoder.decode(t, p).readings) == 8 for t, p in messages)


def test_a_load_run_keeps_to_its_rate_and_count() -> None:
    """At 2000 msg/s, 600 messages take about 0.3 s: the run neither outpaces the rate nor drops any."""
    publisher = CollectingPublisher()
    summary = run_load(publisher, synthetic_registry(40), rate=2000, count=600, progress=False)
    assert (summary.generated, summary.sent, summary.failed) == (600, 600, 0)
    # Message i is due i / rate after the start; pacing may send up to a millisecond early.
    assert summary.elapsed_s >= 599 / 2000 - 0.001
    assert summary.rate <= 2000 * 1.02
    ids = {orjson.loads(p)["station_id"] for _, p in publisher.messages}
    assert len(ids) == 40


def test_a_load_run_ends_on_duration_or_stop() -> None:
    """Without a count, a load run ends when its duration has passed or its stop event is set."""
    began = time.monotonic()
    summary = run_load(
        CollectingPublisher(), synthetic_registry(3), rate=500, duration=timedelta(seconds=0.2)
    )
    assert 0.15 <= time.monotonic() - began < 5
    assert 50 <= summary.generated <= 110
    stop = threading.Event()
    stop.set()
    assert run_load(CollectingPublisher(), synthetic_registry(3), rate=500, stop=stop).generated == 0
