"""deploy/cluster: the NATS cluster and the ecowatch workers of cluster mode, in compose and Kubernetes.

Docker, Compose and Kubernetes do not run here, so their files are checked statically. nats.conf is
checked three ways: `nats-server -t` on it, a small parser for what the manifests rely on (routes,
ports, store, variables, users, mappings), and three real nodes on loopback started from it (only
the addresses, the store folder and the pid file rewritten), to which stations publish over MQTT
as the README says they can (directly, through the Mosquitto bridge, through the HJ 212 gateway's
MQTT hand-off configured as in the README), whose messages the workers' intake (user `ecowatch`)
moves from the listener's store into the stations stream, and against which one real worker runs
from deploy/cluster/ecowatch.yaml (addresses, paths and the sink rewritten) with the
configuration's users and permissions.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Final

import nats
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from alerts.outbox import receiver_topic
from config.registry import Registry
from ingest.app import gateway_cli
from ingest.app.settings import Settings, load_settings
from ingest.cluster import (
    CheckpointStore,
    ClusterConfig,
    OutboxStream,
    Published,
    ReceiverDispatch,
    partition_of,
)
from ingest.cluster.intake import INTAKE_FILTER, MQTT_SUBJECT_PREFIX, MqttIntake, intake_consumers
from ingest.cluster.partitions import PartitionKeys
from ingest.cluster.source import PartitionSource
from ingest.cluster.stations import (
    DEFAULT_STREAM,
    SOURCE_SUBJECTS,
    ensure_stream,
    intake_subjects,
    topic_of_subject,
)
from ingest.decoders.ecowatch_json import encode as encode_json
from ingest.decoders.hj212 import encode_data_packet
from ingest.decoders.senml import encode_senml
from ingest.sinks.influxdb import InfluxDBSinkConfig
from ingest.sources.hj212_gateway import GatewayMqttConfig, HJ212GatewayConfig, MqttHandoff
from tests.deploy.deploy_files import (
    DEMO_REGISTRY,
    DEPLOY,
    ROOT,
    dummy_environment,
    is_reference,
    load_documents,
    load_yaml,
    value_references,
)
from tests.helpers import wait_for
from tests.integration.daemon_process import REPO, DaemonProcess
from tests.servers import HOST, MosquittoServer, free_port, http_request

CLUSTER = DEPLOY / "cluster"
K8S = CLUSTER / "k8s"
COMPOSE = CLUSTER / "compose.yaml"
ECOWATCH_YAML = CLUSTER / "ecowatch.yaml"
NATS_CONF = CLUSTER / "nats" / "nats.conf"
NATS_SERVER = Path(sysconfig.get_path("scripts")) / "nats-server"
# JetStream API requests (creating an R3 stream: a Raft group on three nodes) on a busy 2-core machine.
JETSTREAM_TIMEOUT = 30.0

SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
# A tag naming a release (2.7.11, 2.15.1-alpine), never `latest` or none.
PINNED_TAG = re.compile(r"^[\w./-]+:\d+(\.\d+)+(-[a-z]+)?$")
# The per-worker identity, set in the environment of each worker (compose service, pod name), and
# what the design before partitioned workers set as well (a stream pair and an MQTT session each).
IDENTITY: Final = "ECOWATCH_CLUSTER__WORKER_ID"
RETIRED: Final = ("ECOWATCH_WAL__JETSTREAM__STREAM", "ECOWATCH_MQTT__CLIENT_ID")
# What else each node's store holds besides the stations stream (ecowatch.yaml, stream_max_bytes):
# the outbox stream (7 days), the MQTT sessions, and per partition one alert-database image; the
# rest is for $MQTT_msgs' backlog (what the intake has not moved yet), at least this much.
OUTBOX_BUDGET: Final = 2**30
MQTT_BUDGET: Final = 2**28
IMAGE_BUDGET: Final = 16 * 2**20
BACKLOG_ROOM: Final = 2**30
# How long a partition's reader may be waited for when it is handed over (PartitionSource.on_lost).
READER_JOIN_S: Final = float(inspect.signature(PartitionSource).parameters["ack_wait"].default)
# The users' passwords on the loopback nodes.
WORKER_PASSWORD: Final = "worker-password"
STATION_PASSWORD: Final = "station-password"
# A worker process's stages on a loaded two-core machine (R3 streams, 64 consumers).
WORKER_WAIT: Final = 120.0
_SIZE = re.compile(r"^(\d+)\s*(K|KB|M|MB|G|GB|T|TB)?$", re.IGNORECASE)
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")
_BINARY = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DURATION = re.compile(r"^(\d+)(s|m)$")

Objects = Mapping[tuple[str, str], dict[str, Any]]


# --- nats.conf ------------------------------------------------------------------------------------


_TOKEN = re.compile(r"\s*(?:(#[^\n]*)|([{}\[\]])|(\"[^\"]*\")|([^\s{}\[\],#]+)|(,))")


def parse_nats_conf(text: str) -> dict[str, Any]:
    """The subset of nats-server's configuration format used here: `key: value`, `key value`,
    `key { ... }`, arrays `[ ... ]` split by newlines or commas, maps, comments. Values stay text."""
    tokens = [t for t in _tokens(text) if t != ","]
    position = 0

    def value() -> Any:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "{":
            return block("}")
        if token == "[":
            items = []
            while tokens[position] != "]":
                items.append(value())
            position += 1
            return items
        return token.strip('"')

    def block(end: str | None) -> dict[str, Any]:
        nonlocal position
        result: dict[str, Any] = {}
        while position < len(tokens) and tokens[position] != end:
            key = tokens[position].rstrip(":=").strip('"')
            position += 1
            if tokens[position] in (":", "="):
                position += 1
            assert key not in result, f"{key} set twice"
            result[key] = value()
        position += 1
        return result

    return block(None)


def _tokens(text: str) -> Iterator[str]:
    for line in text.splitlines():
        rest = line
        while rest.strip():
            match = _TOKEN.match(rest)
            assert match, f"cannot read {rest!r}"
            rest = rest[match.end() :]
            if match.group(1) is None:
                yield match.group(0).strip()


def conf_bytes(value: str) -> int:
    """A nats-server size: K/M/G/T are powers of 1000, KB/MB/GB/TB powers of 1024 (checked live below)."""
    match = _SIZE.match(value)
    assert match, f"unsupported size {value}"
    unit = (match.group(2) or "").upper()
    base = 1024 if unit.endswith("B") else 1000
    exponent = "KMGT".index(unit[0]) + 1 if unit else 0
    return int(match.group(1)) * int(base**exponent)


def conf_seconds(value: str) -> int:
    match = _DURATION.match(value)
    assert match, f"unsupported duration {value}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def conf_variables(text: str) -> set[str]:
    """Names of the environment variables nats.conf references as `$NAME` (outside comments and quoted
    strings, where `$` is a character: "$JS.API.>")."""
    code = "\n".join(re.sub(r'"[^"]*"', "", line).split("#", 1)[0] for line in text.splitlines())
    return set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", code))


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def mapped(conf: Mapping[str, Any], subject: str) -> str:
    """`subject` after nats.conf's `mappings` (one-token `*` wildcards, `{{wildcard(n)}}`)."""
    tokens = subject.split(".")
    for source, destination in conf.get("mappings", {}).items():
        pattern = source.split(".")
        if len(pattern) == len(tokens) and all(p in ("*", s) for p, s in zip(pattern, tokens, strict=True)):
            wildcards = [s for p, s in zip(pattern, tokens, strict=True) if p == "*"]
            return _fill_wildcards(destination, wildcards)
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether the NATS subject pattern `pattern` (`*` one token, `>` the rest) covers `subject`."""
    tokens = subject.split(".")
    for i, token in enumerate(pattern.split(".")):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or token not in ("*", tokens[i]):
            return False
    return len(pattern.split(".")) == len(tokens)


def _fill_wildcards(destination: str, wildcards: list[str]) -> str:
    def fill(match: re.Match[str]) -> str:
        return wildcards[int(match.group(1)) - 1]

    return re.sub(r"\{\{wildcard\((\d+)\)\}\}", fill, destination)


@pytest.fixture(scope="module")
def conf() -> dict[str, Any]:
    return parse_nats_conf(NATS_CONF.read_text(encoding="utf-8"))


# --- Kubernetes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects() -> Objects:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_documents(path):
            if doc.get("kind") == "Kustomization":
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


def pod_spec(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    spec = objects[kind, name]["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def only_container(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = pod_spec(objects, kind, name)["containers"]
    assert isinstance(found, dict)
    return found


def quantity_bytes(value: str) -> int:
    match = _QUANTITY.match(value)
    assert match, f"unsupported quantity {value}"
    return int(match.group(1)) * _BINARY[match.group(2)]


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


# --- the worker configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    settings: Settings
    cluster: ClusterConfig


def worker_config(monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str] | None = None) -> WorkerConfig:
    """deploy/cluster/ecowatch.yaml loaded as a worker does (secrets set to dummies, `environ` on top)."""
    with dummy_environment(monkeypatch, ECOWATCH_YAML.read_text(encoding="utf-8")):
        for name, value in (environ or {}).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(ECOWATCH_YAML)
    assert settings.cluster is not None, "a worker's configuration has a `cluster:` section"
    return WorkerConfig(settings, settings.cluster)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> WorkerConfig:
    return worker_config(monkeypatch)


def handover_seconds(worker: WorkerConfig) -> float:
    """The stop a worker needs after SIGTERM: its leases' time to hand over, and a reader's batch."""
    return worker.cluster.lease_ttl.total_seconds() + READER_JOIN_S


def route_of(settings: Settings, topic: str) -> str | None:
    """The format of the first subscription whose template matches `topic` (the processor's routing)."""
    routed = routing_of(settings, topic)
    return None if routed is None else routed[0]


def routing_of(settings: Settings, topic: str) -> tuple[str, dict[str, str]] | None:
    """The format and the tags of the first subscription whose template matches `topic`."""
    for subscription in settings.mqtt.subscriptions:
        tags = subscription.template().match(topic)
        if tags is not None:
            return subscription.format, tags
    return None


def partitioned_by(settings: Settings, topic: str) -> str:
    """The placeholder the routed template puts at the level the stations stream partitions by (the
    4th: ecowatch/v1/<district>/<station>/<kind>), the one the processor checks the payload
    against: `station_id` or `mn`."""
    routed = routing_of(settings, topic)
    assert routed is not None, topic
    _, tags = routed
    level = topic.split("/")[3]
    (name,) = [name for name, value in tags.items() if value == level and name in ("station_id", "mn")]
    return name


# --- compose --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    value = compose["services"]
    assert isinstance(value, dict)
    return value


def nats_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if re.fullmatch(r"nats-\d", name)}


def worker_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if re.fullmatch(r"ecowatch-\d", name)}


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    result = []
    for volume in service.get("volumes", []):
        source, target, *_ = (
            volume.split(":") if isinstance(volume, str) else (volume["source"], volume["target"])
        )
        result.append((source, target))
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so keys can be checked"
    return {str(k): str(v) for k, v in env.items()}


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match.group(1))


# --- the tests: files -------------------------------------------------------------------------------


def test_every_file_parses_and_no_object_pins_a_namespace(objects: Objects) -> None:
    """Each YAML document under deploy/cluster parses; the Kubernetes kinds are complete, no namespace."""
    for path in sorted(CLUSTER.rglob("*.yaml")):
        assert load_documents(path), path
    assert {kind for kind, _ in objects} == {
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "Secret",
    }
    for key, obj in objects.items():
        assert "namespace" not in obj["metadata"], key
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ecowatch", key


def test_nats_server_accepts_the_configuration(tmp_path: Path) -> None:
    """`nats-server -t` (test the configuration) passes with the variables set and fails without one."""
    names = conf_variables(NATS_CONF.read_text(encoding="utf-8"))
    assert names == {"NATS_SERVER_NAME", "ECOWATCH_NATS_PASSWORD", "STATION_MQTT_PASSWORD"}
    env = {"PATH": os.environ.get("PATH", ""), **{name: f"dummy-{name.lower()}" for name in names}}

    def test_conf() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(NATS_SERVER), "-t", "-c", str(NATS_CONF)],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    result = test_conf()
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr
    del env["STATION_MQTT_PASSWORD"]
    result = test_conf()
    assert result.returncode != 0
    assert "STATION_MQTT_PASSWORD" in result.stderr


def test_nats_conf_routes_to_all_three_peers_with_jetstream_and_mqtt(conf: dict[str, Any]) -> None:
    """Routes name nats-0..2 behind the headless Service; JetStream on a file store; MQTT replicated."""
    assert conf["server_name"] == "$NATS_SERVER_NAME"
    cluster = conf["cluster"]
    assert cluster["name"]
    assert cluster["routes"] == [f"nats://nats-{i}.nats:{port_of(cluster['listen'])}" for i in range(3)]
    jetstream = conf["jetstream"]
    assert PurePosixPath(jetstream["store_dir"]).is_absolute()
    assert conf_bytes(jetstream["max_file_store"]) >= 4 * 2**30
    mqtt_block = conf["mqtt"]
    assert port_of(mqtt_block["listen"]) == 1883
    assert mqtt_block["stream_replicas"] == "3"
    assert conf_seconds(conf["lame_duck_duration"]) > 0


def test_passwords_in_nats_conf_are_variables_and_each_user_may_do_its_part_only(
    conf: dict[str, Any],
) -> None:
    """Every user's password is a $VAR; `station` publishes readings (never the intake's subjects)
    and subscribes to nothing; the workers' `ecowatch` has the JetStream API, acks, KV, object
    store, the intake's subjects and the outbox, replies on their inboxes, and may neither publish
    on the listener's subjects nor read raw subjects."""
    users = {user["user"]: user for user in conf["authorization"]["users"]}
    assert set(users) == {"ecowatch", "station"}
    for user in users.values():
        assert re.fullmatch(r"\$[A-Z_]+", user["password"]), user["user"]
    station = users["station"]["permissions"]
    assert "ecowatch.v1.>" in station["publish"]
    intake_subject = intake_subjects()("ecowatch.v1.jiangbei.cq-cj-cuntan.water")
    assert not any(subject_matches(s, intake_subject) for s in station["publish"])
    assert station["subscribe"] == {"deny": ">"}
    worker = users["ecowatch"]["permissions"]
    required = {"$JS.API.>", "$JS.ACK.>", "$KV.>", "$O.>", SOURCE_SUBJECTS, "ecowatch.outbox.>"}
    assert required <= set(worker["publish"])
    assert not any(s.startswith(("ecowatch.v1", "hj212", ">")) for s in worker["publish"])
    assert worker["subscribe"] == ["_INBOX.>"]


def test_every_topic_a_station_may_publish_lands_in_the_stations_stream_and_is_routed(
    conf: dict[str, Any], worker: WorkerConfig
) -> None:
    """Each subject `station` may publish, after nats.conf's mappings (applied before the listener
    stores it in $MQTT_msgs), is one the intake takes in and publishes to a subject the stations
    stream captures in the shape it partitions (ecowatch.in.<district>.<station>.<kind>), and the
    worker's subscriptions route the topic it is read back as to the intended format."""
    # Per allowed subject: a sample, its format, and what the stream partitions it by. HJ 212 on
    # `hj212/<MN>` is the fallback partitioned by MN (the gateway publishes under ecowatch.v1 by id).
    samples = {
        "ecowatch.v1.>": ("ecowatch.v1.江北区.cq-cj-cuntan.water", "json", "station_id"),
        "ecowatch.senml.*": ("ecowatch.senml.cq-cj-cuntan", "senml", "station_id"),
        "hj212.*": ("hj212.50000000000003", "hj212", "mn"),
    }
    (station,) = [u for u in conf["authorization"]["users"] if u["user"] == "station"]
    assert set(station["permissions"]["publish"]) == set(samples)
    stream_prefix = SOURCE_SUBJECTS.removesuffix(">")
    for allowed, (subject, expected_format, partition_key) in samples.items():
        listened = mapped(conf, subject)
        assert subject_matches(INTAKE_FILTER, MQTT_SUBJECT_PREFIX + listened), (allowed, listened)
        stored = intake_subjects()(listened)
        assert stored.startswith(stream_prefix), (allowed, stored)
        assert len(stored.split(".")) == 6, (allowed, stored)  # ecowatch.in.<key>.<d>.<s>.<k>
        # The worker reads a stored subject back as the topic of its (partitioned) original.
        district, station_id, kind = stored.split(".")[3:]
        topic = topic_of_subject(f"ecowatch.part.7.{district}.{station_id}.{kind}")
        assert route_of(worker.settings, topic) == expected_format, topic
        assert partitioned_by(worker.settings, topic) == partition_key, topic
    assert mapped(conf, "hj212.50000000000003") == "ecowatch.v1.hj212.50000000000003.mn"
    assert mapped(conf, "hj212.a.b") == "hj212.a.b"  # deeper topics stay, and station may not send them


def test_every_route_partitions_by_station_id_but_the_mn_fallback(worker: WorkerConfig) -> None:
    """A partition's engine judges the silence of the stations whose id hashes to it, so every
    subscription names the station id at the level the stream partitions by, except the one route
    for HJ 212 that arrives under its MN (`hj212/<MN>`, moved to ecowatch/v1/hj212/<MN>/mn); HJ 212
    by station id comes first, and the fallback's level cannot be mistaken for it."""
    topics = [s.topic for s in worker.settings.mqtt.subscriptions]
    assert topics[0] == "ecowatch/v1/hj212/{station_id}/packet"
    assert worker.settings.mqtt.subscriptions[0].format == "hj212"
    for subscription in worker.settings.mqtt.subscriptions:
        levels = subscription.topic.split("/")
        assert levels[:2] == ["ecowatch", "v1"], subscription.topic
        expected = "{mn}" if subscription.topic == "ecowatch/v1/hj212/{mn}/mn" else "{station_id}"
        assert levels[3] == expected, subscription.topic
    # Neither HJ 212 route takes the other's topics: the last level tells them apart.
    assert routing_of(worker.settings, "ecowatch/v1/hj212/cq-cj-cuntan/packet") == (
        "hj212",
        {"station_id": "cq-cj-cuntan"},
    )
    assert routing_of(worker.settings, "ecowatch/v1/hj212/50000000000003/mn") == (
        "hj212",
        {"mn": "50000000000003"},
    )


# --- the tests: Kubernetes ------------------------------------------------------------------------


def test_the_nats_statefulset_runs_three_nodes_that_find_each_other(
    objects: Objects, conf: dict[str, Any]
) -> None:
    """3 replicas in parallel behind the headless Service the routes name; server_name is the pod name."""
    statefulset = objects["StatefulSet", "nats"]
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    headless = objects["Service", spec["serviceName"]]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert matches(headless["selector"], spec["template"]["metadata"]["labels"])
    hosts = {route.split("//")[1].split(":")[0] for route in conf["cluster"]["routes"]}
    assert hosts == {
        f"{statefulset['metadata']['name']}-{i}.{spec['serviceName']}" for i in range(spec["replicas"])
    }
    container = only_container(objects, "StatefulSet", "nats")
    env = {e["name"]: e for e in container["env"]}
    assert env["NATS_SERVER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    ports = container_ports(container)
    assert ports["client"] == port_of(conf["listen"])
    assert ports["cluster"] == port_of(conf["cluster"]["listen"])
    assert ports["mqtt"] == port_of(conf["mqtt"]["listen"])
    assert ports["monitor"] == int(conf["http_port"])
    assert {p["name"]: p["port"] for p in headless["ports"]} == ports


def test_nats_keeps_its_store_on_a_claim_larger_than_the_store_limit(
    objects: Objects, conf: dict[str, Any]
) -> None:
    """store_dir is on the volume claim, which exceeds max_file_store; the claims outlive the pods."""
    spec = objects["StatefulSet", "nats"]["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounted = {
        m["name"]: PurePosixPath(m["mountPath"])
        for m in only_container(objects, "StatefulSet", "nats")["volumeMounts"]
    }
    store = PurePosixPath(conf["jetstream"]["store_dir"])
    assert mounted[claim["metadata"]["name"]] in (store, *store.parents[:-1])
    storage = quantity_bytes(claim["spec"]["resources"]["requests"]["storage"])
    assert storage >= conf_bytes(conf["jetstream"]["max_file_store"]) + 2**30
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    config_volume = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}["config"]
    assert config_volume["configMap"]["name"] == "nats-config"
    assert mounted["config"] == PurePosixPath("/etc/nats")


def test_nats_nodes_spread_over_machines_and_at_most_one_is_taken_down(objects: Objects) -> None:
    """Required anti-affinity per host, and a PodDisruptionBudget of maxUnavailable 1 on the nodes."""
    pod = pod_spec(objects, "StatefulSet", "nats")
    labels = objects["StatefulSet", "nats"]["spec"]["template"]["metadata"]["labels"]
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert matches(term["labelSelector"]["matchLabels"], labels)
    budget = objects["PodDisruptionBudget", "nats"]["spec"]
    assert budget["maxUnavailable"] == 1
    assert matches(budget["selector"]["matchLabels"], labels)
    worker_budget = objects["PodDisruptionBudget", "ecowatch"]["spec"]
    assert worker_budget["maxUnavailable"] == 1
    assert matches(
        worker_budget["selector"]["matchLabels"],
        objects["StatefulSet", "ecowatch"]["spec"]["template"]["metadata"]["labels"],
    )


def test_nats_probes_and_shutdown_fit_lame_duck_mode(objects: Objects, conf: dict[str, Any]) -> None:
    """Probes ask /healthz on the monitoring port; preStop enters lame-duck mode, within the grace period."""
    container = only_container(objects, "StatefulSet", "nats")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"].split("?")[0] == "/healthz", probe
        assert get["port"] == "monitor", probe
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[-1] == f"ldm={conf['pid_file']}"
    pid_mount = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(PurePosixPath(conf["pid_file"]).parent) in pid_mount
    grace = pod_spec(objects, "StatefulSet", "nats")["terminationGracePeriodSeconds"]
    assert grace > conf_seconds(conf["lame_duck_duration"]) + conf_seconds(conf["lame_duck_grace_period"])
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert quantity_bytes(env["GOMEMLIMIT"].removesuffix("B")) < limit  # Go writes MiB, Kubernetes Mi


def test_the_client_service_offers_nats_and_mqtt_and_the_policy_guards_routes(objects: Objects) -> None:
    """nats-client selects the nodes on 4222 and 1883; the NetworkPolicy admits routes only from nodes."""
    client = objects["Service", "nats-client"]["spec"]
    labels = objects["StatefulSet", "nats"]["spec"]["template"]["metadata"]["labels"]
    assert matches(client["selector"], labels)
    assert {p["name"]: p["port"] for p in client["ports"]} == {"client": 4222, "mqtt": 1883}
    policy = objects["NetworkPolicy", "nats"]["spec"]
    assert matches(policy["podSelector"]["matchLabels"], labels)
    for rule in policy["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if "cluster" in ports:
            (peer,) = rule["from"]
            assert matches(peer["podSelector"]["matchLabels"], labels)
        if "from" not in rule:
            assert ports == {"mqtt"}, "only MQTT is open to everyone"


def test_the_workers_are_several_replicas_ready_on_readyz(objects: Objects, worker: WorkerConfig) -> None:
    """A StatefulSet of more than one worker; readiness /readyz and liveness /healthz on the HTTP port;
    a claim for data_dir that outlives the pod; time to hand the partitions over on SIGTERM."""
    spec = objects["StatefulSet", "ecowatch"]["spec"]
    assert spec["replicas"] > 1
    assert objects["Service", spec["serviceName"]]["spec"]["clusterIP"] == "None"
    (claim,) = spec["volumeClaimTemplates"]
    assert quantity_bytes(claim["spec"]["resources"]["requests"]["storage"]) >= 2**30
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    container = only_container(objects, "StatefulSet", "ecowatch")
    ports = container_ports(container)
    expected = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports[get["port"]] == worker.settings.http.port, probe
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    pod = pod_spec(objects, "StatefulSet", "ecowatch")
    assert pod["terminationGracePeriodSeconds"] > handover_seconds(worker)
    assert pod["enableServiceLinks"] is False  # they would inject ECOWATCH_* overrides
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    service = objects["Service", "ecowatch"]["spec"]
    assert matches(service["selector"], spec["template"]["metadata"]["labels"])
    (endpoint,) = objects["ServiceMonitor", "ecowatch"]["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["ports"]}


def test_the_workers_read_the_configmap_and_take_their_identity_from_the_pod_name(
    objects: Objects, worker: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap holds deploy/cluster/ecowatch.yaml and a registry at the configured path; the
    worker id is the pod name, and nothing else is set per pod (no stream pair, no MQTT session)."""
    data = objects["ConfigMap", "ecowatch-cluster-config"]["data"]
    assert data["ecowatch.yaml"] == ECOWATCH_YAML.read_text(encoding="utf-8")
    assert data["stations.yaml"] == DEMO_REGISTRY.read_text(encoding="utf-8")
    container = only_container(objects, "StatefulSet", "ecowatch")
    mounts_by_name = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts_by_name["config"]["readOnly"] is True
    assert PurePosixPath(worker.settings.registry).parent == PurePosixPath(
        mounts_by_name["config"]["mountPath"]
    )
    assert PurePosixPath(mounts_by_name["data"]["mountPath"]) == PurePosixPath(worker.settings.data_dir)
    (claim,) = objects["StatefulSet", "ecowatch"]["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    volumes = {v["name"]: v for v in pod_spec(objects, "StatefulSet", "ecowatch")["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "ecowatch-cluster-config"
    env = {e["name"]: e for e in container["env"]}
    assert env[IDENTITY]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert not set(RETIRED) & env.keys()
    per_pod = {name for name, entry in env.items() if "fieldRef" in entry.get("valueFrom", {})}
    assert per_pod == {IDENTITY}
    assert worker.cluster.worker_id is None  # every pod names itself
    pod = worker_config(monkeypatch, {IDENTITY: "ecowatch-1"})
    assert pod.cluster.worker_id == "ecowatch-1"
    assert pod.cluster.model_dump(exclude={"worker_id"}) == worker.cluster.model_dump(exclude={"worker_id"})
    assert objects["ConfigMap", "nats-config"]["data"]["nats.conf"] == NATS_CONF.read_text(encoding="utf-8")


def test_the_workers_reach_every_node_and_everything_they_store_fits_a_node(
    objects: Objects, conf: dict[str, Any], worker: WorkerConfig
) -> None:
    """`cluster.servers` names each NATS pod on the client port as user `ecowatch`, R3; the stations
    stream, the outbox, the MQTT sessions and a checkpoint image per partition fit every node's
    max_file_store, with room left for $MQTT_msgs' backlog; no local logs and no MQTT connection
    are configured (only the subscriptions)."""
    statefulset = objects["StatefulSet", "nats"]
    name, spec = statefulset["metadata"]["name"], statefulset["spec"]
    password = "dummy-ecowatch_nats_password"
    expected = [
        f"nats://ecowatch:{password}@{name}-{i}.{spec['serviceName']}:{port_of(conf['listen'])}"
        for i in range(spec["replicas"])
    ]
    cluster = worker.cluster
    assert cluster.servers == expected
    assert cluster.replicas == 3 <= spec["replicas"]
    assert cluster.partitions == 64
    # R3 on three nodes: every node holds a full copy of everything (the arithmetic in ecowatch.yaml).
    stored = cluster.stream_max_bytes + OUTBOX_BUDGET + MQTT_BUDGET + cluster.partitions * IMAGE_BUDGET
    assert stored + BACKLOG_ROOM <= conf_bytes(conf["jetstream"]["max_file_store"])
    raw = load_yaml(ECOWATCH_YAML)
    assert "wal" not in raw
    assert set(raw["mqtt"]) == {"subscriptions"}
    assert {s.format for s in worker.settings.mqtt.subscriptions} == {"json", "senml", "hj212"}
    (influx,) = [s for s in worker.settings.sinks if isinstance(s, InfluxDBSinkConfig)]
    assert influx.url.host == "influxdb"


def test_no_secret_values_are_in_the_repository(objects: Objects) -> None:
    """Secrets are placeholders outside the kustomization; configs reference variables; pods get each."""
    secrets = {name: obj for (kind, name), obj in objects.items() if kind == "Secret"}
    assert set(secrets) == {"nats-auth", "ecowatch-secrets"}
    for name, secret in secrets.items():
        assert secret["stringData"], name
        assert set(secret["stringData"].values()) == {"CHANGE-ME"}, name
        assert "data" not in secret, name
    raw = load_yaml(ECOWATCH_YAML)
    user_info = re.compile(r"^nats://ecowatch:\$\{ECOWATCH_NATS_PASSWORD\}@[a-z0-9.-]+:\d+$")
    for server in raw["cluster"]["servers"]:
        assert user_info.match(server), server
    assert is_reference(raw["http"]["token"])
    assert all(is_reference(sink["token"]) for sink in raw["sinks"])
    # Each pod gets every variable its configuration references, from a Secret that declares it.
    provided: dict[str, set[str]] = {}
    for kind, name in (("StatefulSet", "nats"), ("StatefulSet", "ecowatch")):
        container = only_container(objects, kind, name)
        names = provided.setdefault(name, set())
        for source in container.get("envFrom", []):
            names |= set(secrets[source["secretRef"]["name"]]["stringData"])
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in secrets[ref["name"]]["stringData"]
            if SECRET_NAME.search(entry["name"]):
                assert "value" not in entry, entry["name"]
            names.add(entry["name"])
    assert conf_variables(NATS_CONF.read_text(encoding="utf-8")) <= provided["nats"]
    assert value_references(raw) <= provided["ecowatch"]
    for path in CLUSTER.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{16,}", text), path


def test_the_kustomization_applies_everything_but_the_placeholder_secrets(objects: Objects) -> None:
    """kustomization.yaml lists every manifest except *-secret.yaml; kubectl renders it where installed."""
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == {f for f in files if not f.endswith("-secret.yaml")}
    kubectl = shutil.which("kubectl")
    if kubectl is not None:  # the real tool where it exists; the assertions above hold anyway
        rendered = subprocess.run(
            [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        documents = [d for d in yaml.safe_load_all(rendered) if d]
        assert {(d["kind"], d["metadata"]["name"]) for d in documents} == {
            k for k in objects if k[0] != "Secret"
        }


# --- the tests: compose ---------------------------------------------------------------------------


def test_compose_runs_three_nats_nodes_under_the_names_the_routes_use(
    compose: dict[str, Any], conf: dict[str, Any]
) -> None:
    """nats-0..2 with pinned images, our nats.conf, own volumes, and aliases nats-N.nats and nats-client."""
    nodes = nats_services(compose)
    assert sorted(nodes) == ["nats-0", "nats-1", "nats-2"]
    route_hosts = {route.split("//")[1].split(":")[0] for route in conf["cluster"]["routes"]}
    store = PurePosixPath(conf["jetstream"]["store_dir"])
    data_volumes = set()
    for name, node in nodes.items():
        assert PINNED_TAG.match(node["image"]), node["image"]
        assert node["command"] == ["--config", "/etc/nats/nats.conf"]
        assert ("./nats/nats.conf", "/etc/nats/nats.conf") in mounts(node)
        aliases = set(node["networks"]["default"]["aliases"])
        assert aliases == {f"{name}.nats", "nats-client"}
        assert environment(node)["NATS_SERVER_NAME"] == name
        (data,) = [s for s, t in mounts(node) if PurePosixPath(t) in (store, *store.parents[:-1])]
        data_volumes.add(data)
        assert seconds(node["stop_grace_period"]) > conf_seconds(conf["lame_duck_duration"])
        assert node["stop_signal"] == "SIGUSR2"  # lame-duck mode
        assert conf_variables(NATS_CONF.read_text(encoding="utf-8")) <= environment(node).keys()
        for key, value in environment(node).items():
            if SECRET_NAME.search(key):
                assert is_reference(value), f"{name}.{key}"
    assert route_hosts == {f"{name}.nats" for name in nodes}
    assert len(data_volumes) == 3


def test_compose_ports_and_volumes_are_consistent(compose: dict[str, Any], conf: dict[str, Any]) -> None:
    """No host port published twice; MQTT open, the rest on 127.0.0.1; named volumes declared and used."""
    published: dict[str, str] = {}
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            *host, container = port.split(":")
            key = ":".join(host)
            assert key not in published, f"{name} and {published[key]} both publish {key}"
            published[key] = name
            if name.startswith("nats-") and int(container) == port_of(conf["mqtt"]["listen"]):
                continue
            if name != "grafana":
                assert host[0] == "127.0.0.1", f"{name} publishes {port} beyond the host"
    mqtt_ports = [p for p in nats_services(compose)["nats-0"]["ports"] if p.endswith(":1883")]
    assert mqtt_ports == ["1883:1883"]
    used = {
        source
        for service in services(compose).values()
        for source, _ in mounts(service)
        if not source.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])
    for service in services(compose).values():
        for source, _ in mounts(service):
            if source.startswith("."):
                assert (CLUSTER / source).exists(), source
        if "build" in service:
            assert (CLUSTER / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        else:
            assert PINNED_TAG.match(service["image"]), service["image"]


def test_compose_workers_start_after_a_healthy_cluster_with_their_own_identity(
    compose: dict[str, Any], worker: WorkerConfig
) -> None:
    """Three workers, each with its own name (only that), volume and port, after every node and InfluxDB
    is healthy, with time to hand their partitions over; the simulator waits for the first worker."""
    workers = worker_services(compose)
    assert len(workers) == 3
    all_services = services(compose)
    identities = set()
    for name, service in workers.items():
        depends = service["depends_on"]
        assert set(nats_services(compose)) | {"influxdb"} <= depends.keys()
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert all_services[dependency]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        env = environment(service)
        identities.add(env[IDENTITY])
        assert not set(RETIRED) & env.keys()
        assert value_references(load_yaml(ECOWATCH_YAML)) <= env.keys()
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert is_reference(value), f"{name}.{key}"
        assert ("./ecowatch.yaml", "/etc/ecowatch/ecowatch.yaml") in mounts(service)
        assert [s for s, t in mounts(service) if PurePosixPath(t) == PurePosixPath(worker.settings.data_dir)]
        assert seconds(service["stop_grace_period"]) > handover_seconds(worker)
    assert identities == set(workers)
    init = environment(all_services["influxdb"])
    (influx,) = [s for s in worker.settings.sinks if isinstance(s, InfluxDBSinkConfig)]
    assert (init["DOCKER_INFLUXDB_INIT_ORG"], init["DOCKER_INFLUXDB_INIT_BUCKET"]) == (
        influx.org,
        influx.bucket,
    )
    simulator = all_services["simulator"]
    assert simulator["profiles"] == ["demo"]
    expected = {"--host=nats-client", "--protocol=3.1.1", "--qos=1", "--username=station"}
    assert expected <= set(simulator["command"])  # QoS 1: the listener does not store QoS 0
    # The first worker creates the stations stream and the intake's consumer; what stations
    # publish before is dropped.
    assert simulator["depends_on"]["ecowatch-1"] == {"condition": "service_healthy"}


def test_the_env_example_lists_exactly_the_compose_variables(compose: dict[str, Any]) -> None:
    """compose.env.example names every variable compose.yaml interpolates, secrets as CHANGE-ME."""
    example = (CLUSTER / "compose.env.example").read_text(encoding="utf-8")
    entries = dict(
        line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#")
    )
    assert set(entries) == value_references(compose)
    for key, value in entries.items():
        if SECRET_NAME.search(key):
            assert value == "CHANGE-ME", key


def test_the_readme_links_resolve() -> None:
    """Every relative link in deploy/cluster/README.md names a file that exists; deploy/README.md links it."""
    readme = (CLUSTER / "README.md").read_text(encoding="utf-8")
    relative = [link for link in re.findall(r"\]\(([^)#]+)\)", readme) if "://" not in link]
    assert len(relative) >= 5
    for link in relative:
        assert (CLUSTER / link).resolve().exists(), link
    assert (ROOT / "Dockerfile").is_file()


def readme_gateway_block() -> str:
    """The README's configuration of `ecowatch hj212-gateway` (its one YAML block with the section)."""
    readme = (CLUSTER / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "hj212_gateway:" in b]
    return block


def readme_gateway(
    monkeypatch: pytest.MonkeyPatch, folder: Path, environ: Mapping[str, str] | None = None
) -> tuple[Settings, HJ212GatewayConfig]:
    """The README's gateway configuration loaded as the gateway loads it (variables set to dummies,
    `environ` on top)."""
    block = readme_gateway_block()
    path = folder / "gateway.yaml"
    path.write_text(block, encoding="utf-8")
    with dummy_environment(monkeypatch, block):
        for name, value in (environ or {}).items():
            monkeypatch.setenv(name, value)
        return gateway_cli.load_config(path)


def test_the_readme_gateway_configuration_publishes_where_the_workers_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, conf: dict[str, Any], worker: WorkerConfig
) -> None:
    """The README's `ecowatch hj212-gateway` configuration loads as the gateway loads it, publishes
    to the cluster's MQTT listener as `station` over 3.1.1, with the workers' registry, on a topic
    that names the station (its partition, where its silence is judged), which the stations stream
    takes in (through the intake) and the workers route to the HJ 212 decoder by station id; a
    gateway left on its default topic lands on the MN fallback route."""
    assert is_reference(yaml.safe_load(readme_gateway_block())["mqtt"]["password"])
    settings, gateway = readme_gateway(monkeypatch, tmp_path)
    assert (settings.mqtt.host, settings.mqtt.port) == ("nats-client", port_of(conf["mqtt"]["listen"]))
    assert (settings.mqtt.protocol, settings.mqtt.username) == ("3.1.1", "station")
    assert settings.registry == worker.settings.registry
    assert gateway.mqtt.topic == "ecowatch/v1/hj212/{station_id}/packet"
    station = Registry.load(DEMO_REGISTRY).by_mn("50000000000003")
    assert station is not None
    topic = gateway.mqtt.topic.replace("{station_id}", station.id)
    subject = topic.replace("/", ".")
    assert mapped(conf, subject) == subject  # stored as published, partitioned by the station's id
    assert subject_matches(INTAKE_FILTER, MQTT_SUBJECT_PREFIX + subject)
    assert intake_subjects()(subject).startswith(SOURCE_SUBJECTS.removesuffix(">"))
    assert len(subject.split(".")) == 5
    assert routing_of(worker.settings, topic) == ("hj212", {"station_id": station.id})
    assert partitioned_by(worker.settings, topic) == "station_id"
    default = HJ212GatewayConfig().mqtt.topic.replace("{mn}", "50000000000003")
    fallback = topic_of_subject(mapped(conf, default.replace("/", ".")))
    assert routing_of(worker.settings, fallback) == ("hj212", {"mn": "50000000000003"})


# --- the tests: the configuration, live -----------------------------------------------------------


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    client: int
    monitor: int
    mqtt: int
    log: Path

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-2000:]}")
        try:
            return http_request("GET", f"http://{HOST}:{self.monitor}/healthz", timeout=1.0)[0] == 200
        except OSError:
            return False

    def jsz(self) -> dict[str, Any]:
        status, body = http_request("GET", f"http://{HOST}:{self.monitor}/jsz", timeout=2.0)
        assert status == 200, body
        document: dict[str, Any] = json.loads(body)
        return document


def peers_current(nodes: list[Node]) -> bool:
    """The meta leader sees every other node current: before that an R3 asset cannot be placed."""
    try:
        leader_name = nodes[0].jsz()["meta_cluster"]["leader"]
        leader = next(node for node in nodes if node.name == leader_name)
        replicas = leader.jsz()["meta_cluster"]["replicas"]
    except (KeyError, StopIteration, OSError):
        return False
    return len(replicas) == len(nodes) - 1 and all(
        r.get("current") and not r.get("offline") for r in replicas
    )


@pytest.fixture
def loopback_cluster(tmp_path: Path, conf: dict[str, Any]) -> Iterator[list[Node]]:
    """Three nodes from deploy/cluster/nats/nats.conf, with only addresses, store folder and pid file
    moved: users, permissions, mappings and the store limit are the configuration's."""
    text = NATS_CONF.read_text(encoding="utf-8")
    route_ports = [free_port() for _ in range(3)]
    nodes: list[Node] = []
    try:
        for i, route_port in enumerate(route_ports):
            client, monitor, mqtt_port = free_port(), free_port(), free_port()
            replacements = {
                conf["listen"]: f"{HOST}:{client}",
                f"http_port: {conf['http_port']}": f"http: {HOST}:{monitor}",
                conf["cluster"]["listen"]: f"{HOST}:{route_port}",
                conf["mqtt"]["listen"]: f"{HOST}:{mqtt_port}",
                f"store_dir: {conf['jetstream']['store_dir']}": f"store_dir: {tmp_path / f'store-{i}'}",
                conf["pid_file"]: str(tmp_path / f"nats-{i}.pid"),
                **{
                    f"nats-{j}.nats:{port_of(conf['cluster']['listen'])}": f"{HOST}:{p}"
                    for j, p in enumerate(route_ports)
                },
            }
            node_text = text
            for old, new in replacements.items():
                assert old in node_text, old
                node_text = node_text.replace(old, new)
            path = tmp_path / f"nats-{i}.conf"
            path.write_text(node_text, encoding="utf-8")
            log = tmp_path / f"nats-{i}.log"
            env = {
                "PATH": os.environ.get("PATH", ""),
                "NATS_SERVER_NAME": f"nats-{i}",
                "ECOWATCH_NATS_PASSWORD": WORKER_PASSWORD,
                "STATION_MQTT_PASSWORD": STATION_PASSWORD,
            }
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(NATS_SERVER), "-c", str(path)], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            nodes.append(Node(f"nats-{i}", process, client, monitor, mqtt_port, log))
        for node in nodes:
            wait_for(node.healthy, f"{node.name} healthy with JetStream", 30.0, interval=0.1)
        wait_for(lambda: peers_current(nodes), "every node current with the meta leader", 30.0, interval=0.2)
        yield nodes
    finally:
        for node in nodes:
            node.process.terminate()
        for node in nodes:
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def worker_urls(nodes: list[Node]) -> list[str]:
    """The nodes' client URLs with user `ecowatch`'s credentials, as ecowatch.yaml writes them."""
    return [f"nats://ecowatch:{WORKER_PASSWORD}@{HOST}:{node.client}" for node in nodes]


def _mqtt_session(port: int, protocol: MQTTProtocolVersion, client_id: str) -> tuple[mqtt.Client, Any]:
    """A paho client logged in as `station`, connected (or refused); returns it and the CONNACK code."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.username_pw_set("station", STATION_PASSWORD)
    codes: list[Any] = []
    client.on_connect = lambda _c, _u, _f, code, _p=None: codes.append(code)
    client.connect(HOST, port)
    client.loop_start()
    return client, wait_for(lambda: codes, "CONNACK", 30.0)[0]


async def _create_stream(servers: list[str], cluster: ClusterConfig) -> None:
    """The stations stream as a worker makes it (partitioned, R3, its size cap), as user `ecowatch`."""
    connection = await nats.connect(servers)
    try:
        await ensure_stream(
            connection.jetstream(timeout=JETSTREAM_TIMEOUT),
            cluster.partitions,
            replicas=cluster.replicas,
            max_bytes=cluster.stream_max_bytes,
        )
    finally:
        await connection.close()


async def _stored(servers: list[str]) -> tuple[dict[str, int], int]:
    """Messages per subject in the stations stream, and its replicas."""
    connection = await nats.connect(servers)
    try:
        info = await connection.jetstream(timeout=JETSTREAM_TIMEOUT).stream_info(
            DEFAULT_STREAM, subjects_filter=">"
        )
        return dict(info.state.subjects or {}), info.config.num_replicas or 0
    finally:
        await connection.close()


@contextmanager
def running_intake(servers: list[str], cluster: ClusterConfig) -> Iterator[MqttIntake]:
    """The workers' intake as a worker runs it (the configuration's replicas, lease and bucket
    prefix), as user `ecowatch`, holding its lease: its consumer on $MQTT_msgs exists, so what
    stations publish from now on is kept until it is in the stations stream."""
    intake = MqttIntake(
        servers,
        replicas=cluster.replicas,
        worker_id="intake-of-the-test",
        lease_ttl=cluster.lease_ttl.total_seconds(),
        renew_interval=cluster.renew_interval.total_seconds(),
        bucket_prefix=cluster.bucket_prefix,
        request_timeout=JETSTREAM_TIMEOUT,
    ).start()
    try:
        wait_for(intake.intaking, "the intake's lease", 60.0)
        yield intake
    finally:
        intake.stop()


async def _intake_backlog(servers: list[str]) -> int:
    """Messages of $MQTT_msgs the intake has not yet stored in the stations stream and acknowledged."""
    connection = await nats.connect(servers)
    try:
        consumers = await intake_consumers(connection.jetstream(timeout=JETSTREAM_TIMEOUT))
        info = consumers[-1][1]
        return (info.num_pending or 0) + (info.num_ack_pending or 0)
    finally:
        await connection.close()


def wait_stored(servers: list[str], count: int, timeout: float = 60.0) -> tuple[dict[str, int], int]:
    """Poll until the stream holds messages on `count` subjects (whether a PUBACK waits for the store
    is not asserted)."""

    def enough() -> tuple[dict[str, int], int] | None:
        subjects, replicas = asyncio.run(_stored(servers))
        return (subjects, replicas) if len(subjects) >= count else None

    return wait_for(enough, f"the stream to hold messages on {count} subjects", timeout, interval=0.1)


def part(cluster: ClusterConfig, district: str, station: str, kind: str) -> str:
    """The subject the stations stream stores a station's message under (its partition's): keyed by
    the station's id, which the listener's subject token writes with `.` as `//`."""
    partition = PartitionKeys().partition(station.replace("//", "."), cluster.partitions)
    return f"ecowatch.part.{partition}.{district}.{station}.{kind}"


def test_the_configuration_forms_a_cluster_that_stores_mqtt_readings_r3(
    loopback_cluster: list[Node], conf: dict[str, Any], worker: WorkerConfig
) -> None:
    """Three nodes from nats.conf elect a leader; a station's QoS 1 publish over MQTT 3.1.1 is taken
    by the workers' intake, run as user `ecowatch` with nats.conf's permissions, into the R3
    stations stream under its partition; a QoS 0 publish is not taken in; a subject outside the
    station's permissions is acknowledged but not stored; it may not subscribe; MQTT 5 is refused;
    the store limit is nats.conf's."""
    nodes = loopback_cluster
    servers = worker_urls(nodes)
    asyncio.run(_create_stream(servers, worker.cluster))
    with running_intake(servers, worker.cluster) as intake:
        client, code = _mqtt_session(nodes[1].mqtt, MQTTProtocolVersion.MQTTv311, "station-1")
        try:
            assert not code.is_failure
            # A subject the station may not publish to is acknowledged all the same, and dropped.
            denied = client.publish("ecowatch/other/x", b"{}", qos=1)
            denied.wait_for_publish(10)
            assert denied.is_published()
            # QoS 0 is not stored by the listener, so the intake never sees it.
            client.publish("ecowatch/v1/jiangbei/cq-jl-daxigou/water", b'{"do": 7.2}', qos=0)
            info = client.publish("ecowatch/v1/jiangbei/cq-cj-cuntan/water", b'{"do": 7.1}', qos=1)
            info.wait_for_publish(10)
            granted: list[Any] = []
            client.on_subscribe = lambda _c, _u, _m, codes, _p: granted.extend(codes)
            client.subscribe("ecowatch/#", qos=1)
            wait_for(lambda: granted, "SUBACK", 30.0)
            assert granted[0].is_failure, "a station may not subscribe"
        finally:
            client.loop_stop()
            client.disconnect()
        refused, code = _mqtt_session(nodes[2].mqtt, MQTTProtocolVersion.MQTTv5, "station-5")
        refused.loop_stop()
        assert code.is_failure  # MQTT 5: unsupported protocol version
        # QoS 1 is at least once: which subjects, not how many copies.
        wait_stored(servers, 1)
        # Everything the listener stored (the QoS 0 publish came first on the same connection) has
        # been moved and acknowledged: what the stream holds now is all the intake will take.
        wait_for(lambda: asyncio.run(_intake_backlog(servers)) == 0, "the intake's backlog drained", 60.0)
        forwarded = intake.stats()["forwarded"]
        assert isinstance(forwarded, int)
        assert forwarded >= 1
    subjects, replicas = asyncio.run(_stored(servers))
    assert (set(subjects), replicas) == ({part(worker.cluster, "jiangbei", "cq-cj-cuntan", "water")}, 3)
    # The intake worked under user `ecowatch`'s permissions: the station's denials are all the log shows.
    violations = [
        line
        for node in nodes
        for line in node.log.read_text(errors="replace").splitlines()
        if "Violation" in line
    ]
    assert any("Publish Violation" in line and "ecowatch.other.x" in line for line in violations)
    assert all('"station-1"' in line for line in violations), violations
    status, body = http_request("GET", f"http://{HOST}:{nodes[0].monitor}/varz")
    assert status == 200
    varz = json.loads(body)
    assert varz["jetstream"]["config"]["max_storage"] == conf_bytes(conf["jetstream"]["max_file_store"])
    assert (varz["server_name"], varz["cluster"]["name"]) == ("nats-0", conf["cluster"]["name"])
    assert varz["mqtt"]["port"] == nodes[0].mqtt


def test_the_mosquitto_bridge_forwards_stations_to_the_cluster(
    loopback_cluster: list[Node], tmp_path: Path, worker: WorkerConfig
) -> None:
    """bridges/mosquitto-bridge.conf (address and password filled in) forwards QoS 1 readings from a
    Mosquitto to the NATS MQTT listener: `/` becomes `.`, a `.` inside a level becomes `//`, and the
    HJ 212 and SenML trees are moved under ecowatch.v1, and the workers' intake takes them into the
    stations stream."""
    nodes = loopback_cluster
    servers = worker_urls(nodes)
    asyncio.run(_create_stream(servers, worker.cluster))
    text = (CLUSTER / "bridges" / "mosquitto-bridge.conf").read_text(encoding="utf-8")
    replacements = {
        "address nats.example.org:1883": f"address {HOST}:{nodes[1].mqtt} {HOST}:{nodes[2].mqtt}",
        "remote_password CHANGE-ME": f"remote_password {STATION_PASSWORD}",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    with running_intake(servers, worker.cluster), MosquittoServer(tmp_path, config_extra=text) as broker:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="station-behind-mosquitto")
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            topics = [
                "ecowatch/v1/江北区/cq-cj-cuntan/water",
                "ecowatch/v1/jiangbei/cq.cj.cuntan/water",
                "ecowatch/senml/cq-cj-cuntan",
                "hj212/50000000000003",
            ]
            for topic in topics:
                client.publish(topic, b"{}", qos=1).wait_for_publish(10)
            # The bridge connects on its own schedule: a first attempt that finds a listener not yet
            # up is retried after restart_timeout's backoff (2 s rising to 30 s), queueing meanwhile.
            subjects, replicas = wait_stored(servers, 4, timeout=45.0)
        finally:
            client.loop_stop()
            client.disconnect()
    assert replicas == 3
    cluster = worker.cluster
    assert set(subjects) == {
        part(cluster, "江北区", "cq-cj-cuntan", "water"),
        part(cluster, "jiangbei", "cq//cj//cuntan", "water"),
        part(cluster, "senml", "cq-cj-cuntan", "senml"),
        part(cluster, "hj212", "50000000000003", "mn"),  # the MN fallback: partitioned by the MN
    }


def _publish_as_station(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish over MQTT 3.1.1 QoS 1 as user `station`, every message acknowledged."""
    client, code = _mqtt_session(port, MQTTProtocolVersion.MQTTv311, "stations")
    try:
        assert not code.is_failure
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(10)
            assert info.is_published(), topic
    finally:
        client.loop_stop()
        client.disconnect()


def _stored_readings(store: Path) -> dict[str, set[str]]:
    """Parameters stored per station in the SQLite readings store (empty until it exists)."""
    if not store.exists():
        return {}
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)) as db:
        try:
            rows = db.execute("SELECT station_id, parameter FROM readings").fetchall()
        except sqlite3.OperationalError:
            return {}
    found: dict[str, set[str]] = {}
    for station_id, parameter in rows:
        found.setdefault(station_id, set()).add(parameter)
    return found


def _publish_through_the_gateway(
    monkeypatch: pytest.MonkeyPatch, folder: Path, port: int, packets: list[tuple[str, bytes]]
) -> None:
    """Hand HJ 212 packets (MN, packet) to the MQTT hand-off of `ecowatch hj212-gateway` configured
    as the README says (its listener's address moved to loopback, the workers' registry), each
    acknowledged by the cluster's MQTT listener."""
    folder.mkdir()
    settings, gateway = readme_gateway(monkeypatch, folder, {"STATION_MQTT_PASSWORD": STATION_PASSWORD})
    broker = settings.mqtt.model_copy(update={"host": HOST, "port": port})
    handoff = MqttHandoff(GatewayMqttConfig.from_settings(broker, gateway.mqtt), Registry.load(DEMO_REGISTRY))
    handoff.start()
    try:
        assert handoff.wait_connected(30.0), "the gateway's hand-off to the MQTT listener"
        durable: list[str] = []
        for mn, payload in packets:
            # The gateway hands each packet over on `hj212/<MN>`; its topic setting places it.
            handoff.submit(f"hj212/{mn}", payload, functools.partial(durable.append, mn))
        wait_for(lambda: len(durable) == len(packets), "the listener's PUBACK of every packet", 30.0)
    finally:
        handoff.close()


def _cluster_status(config_file: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """`ecowatch cluster status` as an operator runs it, with the worker's configuration file."""
    result = subprocess.run(
        [sys.executable, "-m", "ingest.app.cli", "cluster", "status", "--config", str(config_file)],
        cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ECOWATCH_")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def _deploy_worker(folder: Path, nodes: list[Node], conf: dict[str, Any], store: Path) -> DaemonProcess:
    """deploy/cluster/ecowatch.yaml with only the addresses, the paths and the sink replaced (SQLite
    for InfluxDB); the secrets stay `${VAR}` references, set in the environment as in a pod."""
    document = load_yaml(ECOWATCH_YAML)
    servers = document["cluster"]["servers"]
    for i, node in enumerate(nodes):
        old = f"@nats-{i}.nats:{port_of(conf['listen'])}"
        assert old in servers[i], servers[i]
        servers[i] = servers[i].replace(old, f"@{HOST}:{node.client}")
    document["data_dir"] = str(folder / "data")
    document["registry"] = str(DEMO_REGISTRY)
    (influx,) = document["sinks"]
    assert influx["type"] == "influxdb"
    document["sinks"] = [{"type": "sqlite", "name": influx["name"], "path": str(store)}]
    http = document["http"]
    env = {
        "ECOWATCH_NATS_PASSWORD": WORKER_PASSWORD,
        "ECOWATCH_HTTP_TOKEN": "http-token-of-the-test",
        IDENTITY: "ecowatch-0",
    }
    daemon = DaemonProcess(folder, document, env=env)
    # DaemonProcess writes its own `http:` (a free port on loopback); keep the rest of the file's.
    written = yaml.safe_load(daemon.config_file.read_text(encoding="utf-8"))
    written["http"] = {**http, "host": HOST, "port": daemon.port}
    daemon.config_file.write_text(
        yaml.safe_dump(written, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return daemon


@pytest.mark.integration
def test_a_worker_from_the_deploy_configuration_stores_what_stations_publish(
    loopback_cluster: list[Node],
    conf: dict[str, Any],
    worker: WorkerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One `ecowatch run` worker from deploy/cluster/ecowatch.yaml, as user `ecowatch` on three nodes
    with nats.conf's users, permissions and mappings, creates what it needs, takes the intake's
    lease and every partition, moves what stations publish from the MQTT listener's store into the
    stations stream, stores the readings in each format and topic tree (JSON, SenML, HJ 212 through
    the README's gateway, by station id, and as `hj212/<MN>`, by MN), each read in the partition of
    the id (or MN) its topic names, checkpoints them, and hands every partition back on SIGTERM; the
    outbox stream and a receiver's dispatch work under the same user."""
    nodes = loopback_cluster
    store = tmp_path / "readings.db"
    daemon = _deploy_worker(tmp_path / "ecowatch-0", nodes, conf, store)
    status_env = {"ECOWATCH_NATS_PASSWORD": WORKER_PASSWORD, "ECOWATCH_HTTP_TOKEN": "unused"}
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    water = {"ph": (7.4, "N"), "do": (8.1, "N")}
    messages = [
        ("ecowatch/v1/江北区/cq-cj-cuntan/water", encode_json("cq-cj-cuntan", at, {"ph": 7.4, "do": 8.1})),
        (
            "ecowatch/senml/cq-jl-daxigou",
            encode_senml("cq-jl-daxigou", at, {"ph": (7.3, None), "do": (8.0, None)}),
        ),
        # HJ 212 on `hj212/<MN>` (a DTU, a gateway left on its default topic): moved by nats.conf to
        # the MN route, then by the worker's intake under its station's id (the registry knows it).
        ("hj212/50000000000012", encode_data_packet("50000000000012", "123456", "2011", at, water)),
    ]
    # Through the gateway as the README configures it: published under its station's id.
    gateway_packets = [("50000000000001", encode_data_packet("50000000000001", "123456", "2011", at, water))]
    registry = Registry.load(DEMO_REGISTRY)
    gateway_station, fallback_station = registry.by_mn("50000000000001"), registry.by_mn("50000000000012")
    assert gateway_station is not None
    assert fallback_station is not None
    stations = {"cq-cj-cuntan", "cq-jl-daxigou", gateway_station.id, fallback_station.id}
    # The partition each message is stored in and read from: its station's.
    homes = {partition_of(s, 64) for s in stations}
    with daemon:
        daemon.wait_ready(WORKER_WAIT)
        _publish_as_station(nodes[1].mqtt, messages)
        _publish_through_the_gateway(monkeypatch, tmp_path / "gateway", nodes[2].mqtt, gateway_packets)

        def all_stored() -> dict[str, set[str]] | None:
            found = _stored_readings(store)
            return found if found.keys() == stations else None

        stored = wait_for(
            all_stored,
            "every station's readings in the store",
            WORKER_WAIT,
            detail=lambda: f"{_stored_readings(store)}\n{daemon.log_tail()}",
        )
        assert all(parameters == {"ph", "do"} for parameters in stored.values()), stored
        # Each message was stored under the partition of its station (the gateway's packet and the
        # `hj212/<MN>` one under their stations' ids)...
        cluster = worker.cluster
        subjects, _ = asyncio.run(_stored(worker_urls(nodes)))
        assert set(subjects) == {
            part(cluster, "江北区", "cq-cj-cuntan", "water"),
            part(cluster, "senml", "cq-jl-daxigou", "senml"),
            part(cluster, "hj212", gateway_station.id, "packet"),
            part(cluster, "hj212", fallback_station.id, "packet"),
        }
        # ... read by that partition's owner and no other, none dead-lettered (the gateway's station
        # id agrees with the packet's MN). A reader counts from 0 in each tenure (epoch): a
        # partition that changed hands under load may have nothing left to read.
        token = {"Authorization": "Bearer http-token-of-the-test"}
        _, body = http_request("GET", f"{daemon.url}/api/v1/stats", headers=token)
        stats = json.loads(body)
        rows = {int(p): row for p, row in stats["partitions"].items()}
        fetched = {p for p, row in rows.items() if row.get("fetched")}
        first_tenure = {p for p, row in rows.items() if row.get("epoch") == 1}
        assert fetched <= homes, rows
        assert homes & first_tenure <= fetched, rows
        assert stats["deadletters"] == {}
        # Every message came through the worker's intake, which holds its lease.
        assert stats["intake"]["intaking"] == 1, stats["intake"]
        assert stats["intake"]["forwarded"] >= len(messages) + len(gateway_packets), stats["intake"]
        # Alone, the worker owns every partition; the leases and lag are readable by the operator.

        def owns_all() -> dict[str, Any] | None:
            status, body = http_request("GET", f"{daemon.url}/api/v1/cluster", headers=token)
            assert status == 200, body
            answer: dict[str, Any] = json.loads(body)
            owners = answer["owners"]
            return answer if len(owners.get("ecowatch-0", [])) == answer["partitions"] else None

        wait_for(owns_all, "the worker to own every partition", WORKER_WAIT, detail=daemon.log_tail)
        status = _cluster_status(daemon.config_file, status_env)
        assert status["live_workers"] == ["ecowatch-0"]
        assert len(status["owners"]["ecowatch-0"]) == 64
        _, metrics = http_request("GET", f"{daemon.url}/metrics")
        assert 'ecowatch_partition_owned{partition="0",worker="ecowatch-0"} 1.0' in metrics.decode()
        assert 'ecowatch_intake_holding{worker="ecowatch-0"} 1.0' in metrics.decode()
        assert status["intake"]["owner"] == "ecowatch-0"
        # Each partition that took a message has its state checkpointed (KV pointer + object store).
        with closing(CheckpointStore(worker_urls(nodes), replicas=3, name="test").start()) as checkpoints:
            for partition in sorted(homes):
                checkpoint = wait_for(
                    functools.partial(checkpoints.load, partition),
                    f"a checkpoint of partition {partition}",
                    WORKER_WAIT,
                )
                assert checkpoint.sequence > 0
        assert daemon.terminate() == 0
    released = _cluster_status(daemon.config_file, status_env)
    assert released["owners"] == {}, "SIGTERM hands every partition back"
    # The outbox: publish deduplicated by key, one receiver's dispatch delivering it, as `ecowatch`.
    delivered: list[str] = []
    topic = receiver_topic("duty")
    with OutboxStream(worker_urls(nodes), replicas=3) as outbox:
        first = outbox.publish("alert-1:1@duty", b"{}", topic=topic)
        assert outbox.publish("alert-1:1@duty", b"{}", topic=topic) == Published(first.sequence, True)

    def deliver(key: str, _payload: bytes) -> bool:
        delivered.append(key)
        return True

    dispatch = ReceiverDispatch(
        worker_urls(nodes),
        topic,
        deliver,
        topics=[topic],
        start_at="all",
        replicas=3,
        dispatcher_id="ecowatch-0",
    )
    dispatch.start()
    try:
        wait_for(lambda: delivered == ["alert-1:1@duty"], "the receiver's one notification", WORKER_WAIT)
    finally:
        dispatch.stop()
    # A permission the workers lack would show here (refused requests time out and are retried).
    for node in nodes:
        refused = [line for line in node.log.read_text(errors="replace").splitlines() if "Violation" in line]
        assert not refused, refused
