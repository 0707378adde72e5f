"""deploy/k8s: one stateful replica with its log on a volume, probes, non-root, consistent wiring."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from config.registry import Registry
from ingest.app.settings import Settings
from tests.deploy.deploy_files import (
    DEMO_REGISTRY,
    DOCKERFILE,
    ECOWATCH_YAML,
    K8S,
    kubernetes_objects,
    load_documents,
    load_yaml,
    parse_dockerfile,
    settings_of,
    value_references,
)

Objects = Mapping[tuple[str, str], dict[str, Any]]
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")
_BINARY = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


@pytest.fixture(scope="module")
def objects() -> Objects:
    return kubernetes_objects()


def one(objects: Objects, kind: str) -> dict[str, Any]:
    (found,) = [obj for (k, _), obj in objects.items() if k == kind]
    return found


def container(objects: Objects) -> dict[str, Any]:
    (found,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def config_in_configmap(objects: Objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    path = tmp_path / "ecowatch.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["ecowatch.yaml"], encoding="utf-8")
    return settings_of(monkeypatch, path)


def quantity_bytes(value: str) -> int:
    match = _QUANTITY.match(value)
    assert match, f"unsupported quantity {value}"
    return int(match.group(1)) * _BINARY[match.group(2)]


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_the_manifests_parse_and_name_no_namespace(objects: Objects) -> None:
    """Every document parses; the set of kinds is complete; no object pins a namespace."""
    kinds = {kind for kind, _ in objects}
    assert kinds == {"StatefulSet", "Service", "ConfigMap", "Secret", "ServiceMonitor"}
    for key, obj in objects.items():
        assert "namespace" not in obj["metadata"], key
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"


def test_one_replica_owns_the_log_on_a_persistent_volume(
    objects: Objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """replicas 1, and a claim template mounted at data_dir, big enough for both logs' quotas."""
    settings = config_in_configmap(objects, tmp_path, monkeypatch)
    spec = one(objects, "StatefulSet")["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounted = {m["name"]: PurePosixPath(m["mountPath"]) for m in container(objects)["volumeMounts"]}
    assert mounted[claim["metadata"]["name"]] == PurePosixPath(settings.data_dir)
    storage = quantity_bytes(claim["spec"]["resources"]["requests"]["storage"])
    assert storage >= 2 * settings.wal.quota_bytes + 2**30
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_probes_ask_healthz_and_readyz_on_the_daemon_port(
    objects: Objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liveness and startup probe /healthz, readiness /readyz, on the port the configuration listens on."""
    settings = config_in_configmap(objects, tmp_path, monkeypatch)
    spec = container(objects)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    expected = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = spec[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports[get["port"]] == settings.http.port, probe
    assert settings.http.host == "0.0.0.0"


def test_the_pod_runs_unprivileged_as_the_image_user(objects: Objects) -> None:
    """runAsNonRoot with the Dockerfile's uid, read-only root, no capabilities, no escalation."""
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    user = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")).final.all("USER")[0].args
    uid, gid = (int(part) for part in user.split(":"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["fsGroup"] == gid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # they would inject ECOWATCH_* overrides
    context = container(objects)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container(objects)["resources"]["limits"]["memory"]


def test_termination_grace_exceeds_shutdown_grace(
    objects: Objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes waits longer than the daemon's drain before SIGKILL."""
    settings = config_in_configmap(objects, tmp_path, monkeypatch)
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace.total_seconds()


def test_the_configmap_holds_the_container_config_and_a_valid_registry(
    objects: Objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ecowatch.yaml is deploy/ecowatch.yaml and validates; its registry is the mounted stations.yaml."""
    data = one(objects, "ConfigMap")["data"]
    assert data["ecowatch.yaml"] == ECOWATCH_YAML.read_text(encoding="utf-8")
    assert data["stations.yaml"] == DEMO_REGISTRY.read_text(encoding="utf-8")
    settings = config_in_configmap(objects, tmp_path, monkeypatch)
    spec = container(objects)
    (config_mount,) = [m for m in spec["volumeMounts"] if m["name"] == "config"]
    assert config_mount["readOnly"] is True
    assert PurePosixPath(settings.registry).parent == PurePosixPath(config_mount["mountPath"])
    assert settings.registry.name in data
    registry_file = tmp_path / "stations.yaml"
    registry_file.write_text(data["stations.yaml"], encoding="utf-8")
    assert len(Registry.load(registry_file)) > 0
    assert spec["args"] == [
        "run",
        "--config",
        str(PurePosixPath(config_mount["mountPath"]) / "ecowatch.yaml"),
    ]


def test_the_secret_holds_placeholders_for_every_referenced_variable(objects: Objects) -> None:
    """The Secret names every ${VAR} of the configuration, with placeholder values only."""
    secret = one(objects, "Secret")
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["ecowatch.yaml"])
    assert set(secret["stringData"]) == value_references(config)
    assert set(secret["stringData"].values()) == {"CHANGE-ME"}
    assert "data" not in secret
    (source,) = container(objects)["envFrom"]
    assert source["secretRef"]["name"] == secret["metadata"]["name"]


def test_labels_and_selectors_line_up(objects: Objects) -> None:
    """StatefulSet selector, Service, its port and the ServiceMonitor all find the ecowatch pod."""
    statefulset = one(objects, "StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert matches(statefulset["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(objects, "Service")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert matches(service["spec"]["selector"], pod_labels)
    ports = {p["name"] for p in container(objects)["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    monitor = one(objects, "ServiceMonitor")["spec"]
    selected = [obj for (kind, _), obj in objects.items() if kind == "Service"]
    assert [s for s in selected if matches(monitor["selector"]["matchLabels"], s["metadata"]["labels"])] == [
        service
    ]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    mounted = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert mounted["config"]["configMap"]["name"] == one(objects, "ConfigMap")["metadata"]["name"]


def test_the_kustomization_applies_everything_but_the_placeholder_secret(objects: Objects) -> None:
    """kustomization.yaml lists every manifest except secret.yaml; kubectl renders it where installed."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"secret.yaml"}
    expected = {key for key in objects if key[0] != "Secret"}
    kubectl = shutil.which("kubectl")
    if kubectl is not None:  # a check of the real tool where it exists; the assertions above hold anyway
        rendered = subprocess.run(
            [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        documents = [d for d in yaml.safe_load_all(rendered) if d]
        assert {(d["kind"], d["metadata"]["name"]) for d in documents} == expected
    for path in sorted(K8S.glob("*.yaml")):
        assert load_documents(path), path
