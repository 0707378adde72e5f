"""The demo scenario end to end: simulator → Mosquitto → daemon (log, engine, outbox) → a webhook.

The scenario's `expect:` list is what operators must receive: each expected alert is delivered to
a real HTTP receiver as a signed webhook, firing within its time and resolved in time, exactly
once by idempotency key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.registry import Registry
from ingest.app.daemon import Daemon
from ingest.app.settings import DEMO_REGISTRY, load_settings
from simulators.load import write_registry
from simulators.publish import MqttOptions, MqttPublisher
from simulators.scenario import SCENARIO_DIR, load_scenario
from simulators.simulator import Simulator
from tests.helpers import wait_for
from tests.integration.alert_scenario_support import Receiver
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("duty-room") as r:
        yield r


def test_demo_scenario_alerts_reach_the_operators_webhook(
    tmp_path: Path, mosquitto: MosquittoServer, receiver: Receiver
) -> None:
    """The spill's water alert at three Jialing points, the silent station and the communication
    fault (fired and resolved) arrive at the webhook, signed, each once."""
    scenario = load_scenario(SCENARIO_DIR / "demo.yaml")
    simulator = Simulator(Registry.load(DEMO_REGISTRY), scenario, seed=7)
    registry_file = tmp_path / "stations.yaml"
    write_registry(simulator.registry_stations(), registry_file, note="demo intervals")
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        registry=registry_file,
        mqtt={"port": mosquitto.port, "client_id": "scenario-daemon"},
        http={"port": 0},
        notify={
            "receivers": [receiver.config()],
            "poll_interval": "PT0.2S",
        },
    )
    daemon = Daemon(settings)
    daemon.start()
    try:
        assert daemon.source.wait_connected(10)
        # Ten minutes of scenario, ending two minutes ahead of the clock (validation allows five):
        # the stations are then fresh at the final tick, while the silent one has been silent
        # since before this daemon started.
        now = datetime.now(UTC)
        start = datetime.fromtimestamp(math.floor((now - timedelta(minutes=8)).timestamp() / 15) * 15, tz=UTC)
        end = start + timedelta(minutes=10)
        messages = list(simulator.iter_messages(start, end))
        with MqttPublisher(MqttOptions(port=mosquitto.port, client_id="scenario-sim")) as publisher:
            for message in messages:
                publisher.publish(message.topic, message.payload)
            assert publisher.flush(30)
        wait_for(
            lambda: (
                daemon.stats()["alerts"]["pending"] == 0
                and daemon.stats()["logs"]["raw_processed"] >= len(messages)
            ),
            "the engine to evaluate everything",
            timeout=60,
        )
        daemon.alerts.tick(end + timedelta(seconds=10))

        rules = {x.rule for x in scenario.expect}

        def delivered(status: str) -> list[dict[str, Any]]:
            return [
                e
                for e in receiver.events.values()
                if e["status"] == status
                and e["rule"] in rules
                and not e["reminder"]
                and "change" not in e["annotations"]  # an escalation is a transition, not an alert
            ]

        expected_resolutions = sum(1 for x in scenario.expect if x.resolved_within is not None)
        wait_for(
            lambda: (
                len(delivered("firing")) >= len(scenario.expect)
                and len(delivered("resolved")) >= expected_resolutions
            ),
            "the expected notifications at the webhook",
            timeout=60,
        )
        assert receiver.bad_signatures == 0
        firing = delivered("firing")
        assert sorted((e["rule"], e["station"]["id"]) for e in firing) == sorted(
            (x.rule, x.station) for x in scenario.expect
        )
        for x in scenario.expect:
            (fired,) = [e for e in firing if e["rule"] == x.rule and e["station"]["id"] == x.station]
            fired_at = datetime.fromisoformat(fired["event_at"])
            if x.rule == "silent_station":
                # Silence is measured on the wall clock and never from before the daemon started
                # (a restart must not page for every station); here that is the final tick.
                assert fired_at <= end + timedelta(seconds=10), x
            else:
                assert fired_at - start <= x.within, x
            if x.parameter is not None and x.rule == "water_quality":
                assert x.parameter in fired["primary_pollutants"]
            if x.resolved_within is not None:
                (resolved,) = [e for e in delivered("resolved") if e["alert_id"] == fired["alert_id"]]
                assert datetime.fromisoformat(resolved["event_at"]) - start <= x.resolved_within, x
        # The receiver saw each notification once (the outbox retries only unaccepted ones).
        assert receiver.deliveries == len(receiver.events)
        assert receiver.repeats == 0
    finally:
        daemon.stop()
