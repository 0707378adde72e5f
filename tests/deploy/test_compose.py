"""deploy/compose.yaml: services wired by health, secrets only by reference, config consistent."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ingest.sinks.influxdb import InfluxDBSinkConfig
from tests.deploy.deploy_files import (
    COMPOSE,
    DEPLOY,
    ECOWATCH_YAML,
    is_reference,
    load_yaml,
    settings_of,
    value_references,
)

SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
# A tag naming a release (2, 2.7, 2.0.20, 11.3.0), never `latest` or none.
PINNED_TAG = re.compile(r"^[\w./-]+:\d+(\.\d+)*$")
# Files the operator creates from the README before the first start.
CREATED_BY_HAND = {"./mosquitto/passwd"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    value = compose["services"]
    assert isinstance(value, dict)
    return value


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume of a service, short or long syntax."""
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *_ = volume.split(":")
        else:
            source, target = volume["source"], volume["target"]
        result.append((source, target))
    return result


def target_of(service: dict[str, Any], source: str) -> str:
    (target,) = [t for s, t in mounts(service) if s == source]
    return target


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so keys can be checked"
    return {str(k): str(v) for k, v in env.items()}


def test_every_service_has_a_pinned_image_or_a_build(compose: dict[str, Any]) -> None:
    """Each service is built here or runs an image tag that names a release."""
    for name, service in services(compose).items():
        assert "image" in service or "build" in service, name
        if "build" not in service:
            assert PINNED_TAG.match(service["image"]), f"{name}: {service['image']} is not pinned"
        else:
            assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_ecowatch_starts_after_healthy_broker_and_database(compose: dict[str, Any]) -> None:
    """ecowatch (and Grafana) wait for services that define health checks to pass them."""
    all_services = services(compose)
    for name, needs in (("ecowatch", {"mosquitto", "influxdb"}), ("grafana", {"influxdb"})):
        depends = all_services[name]["depends_on"]
        assert needs <= depends.keys()
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            test = all_services[dependency]["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL")
    assert "ECOWATCH_MQTT_PASSWORD" in " ".join(all_services["mosquitto"]["healthcheck"]["test"])


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    """Every non-path volume source is a declared named volume, and every declared one is used."""
    used = {
        source
        for service in services(compose).values()
        for source, _ in mounts(service)
        if not source.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])


def test_bind_mounts_point_at_files_in_the_repository(compose: dict[str, Any]) -> None:
    """Bind-mounted configuration exists; only the password file is created by hand first."""
    for service in services(compose).values():
        for source, _ in mounts(service):
            if source.startswith(".") and source not in CREATED_BY_HAND:
                assert (COMPOSE.parent / source).exists(), source
    (passwd,) = [
        v
        for v in services(compose)["mosquitto"]["volumes"]
        if isinstance(v, dict) and v["source"] in CREATED_BY_HAND
    ]
    assert passwd["bind"]["create_host_path"] is False
    assert passwd["read_only"] is True


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    """Passwords and tokens come from deploy/.env as whole ${VAR} references, never literals."""
    secrets = 0
    for name, service in services(compose).items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                secrets += 1
                assert is_reference(value), f"{name}.{key} holds a literal"
    assert secrets >= 5


def test_every_variable_is_documented_in_the_env_example(compose: dict[str, Any]) -> None:
    """compose.env.example lists exactly the variables compose.yaml interpolates, secrets as CHANGE-ME."""
    example = (DEPLOY / "compose.env.example").read_text(encoding="utf-8")
    entries = dict(
        line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#")
    )
    assert set(entries) == value_references(compose)
    for key, value in entries.items():
        if SECRET_NAME.search(key):
            assert value == "CHANGE-ME", key


def test_each_container_gets_the_variables_its_configuration_references(compose: dict[str, Any]) -> None:
    """ecowatch gets every ${VAR} of ecowatch.yaml; Grafana every one of its datasource file."""
    all_services = services(compose)
    pairs = (
        ("ecowatch", ECOWATCH_YAML),
        ("grafana", DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"),
    )
    for name, path in pairs:
        needed = value_references(load_yaml(path))
        assert needed
        assert needed <= environment(all_services[name]).keys(), name


def test_ecowatch_reaches_the_services_by_name(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ecowatch.yaml's broker and InfluxDB are the compose services, with the org and bucket set up."""
    settings = settings_of(monkeypatch, ECOWATCH_YAML)
    all_services = services(compose)
    assert settings.mqtt.host in all_services
    mosquitto_conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert re.search(rf"^listener {settings.mqtt.port}$", mosquitto_conf, re.MULTILINE)
    (influx,) = [s for s in settings.sinks if isinstance(s, InfluxDBSinkConfig)]
    assert influx.url.host in all_services
    init = environment(all_services["influxdb"])
    assert init["DOCKER_INFLUXDB_INIT_ORG"] == influx.org
    assert init["DOCKER_INFLUXDB_INIT_BUCKET"] == influx.bucket
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yaml")
    (source,) = datasource["datasources"]
    assert source["url"] == str(influx.url).rstrip("/")
    assert (source["jsonData"]["organization"], source["jsonData"]["defaultBucket"]) == (
        influx.org,
        influx.bucket,
    )


def test_the_daemon_gets_time_to_drain_and_keeps_its_data(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop_grace_period exceeds shutdown_grace; the data dir is a named volume; the config is ours."""
    settings = settings_of(monkeypatch, ECOWATCH_YAML)
    ecowatch = services(compose)["ecowatch"]
    grace = re.fullmatch(r"(\d+)s", ecowatch["stop_grace_period"])
    assert grace
    assert int(grace.group(1)) > settings.shutdown_grace.total_seconds()
    data = [s for s, t in mounts(ecowatch) if PurePosixPath(t) == PurePosixPath(settings.data_dir)]
    assert data
    assert data[0] in compose["volumes"]
    assert target_of(ecowatch, "./ecowatch.yaml") == "/etc/ecowatch/ecowatch.yaml"


def test_mosquitto_runs_our_configuration_with_persistence(compose: dict[str, Any]) -> None:
    """Our mosquitto.conf is mounted where the image reads it; its password file and data dir are mounted."""
    mosquitto = services(compose)["mosquitto"]
    assert target_of(mosquitto, "./mosquitto/mosquitto.conf") == "/mosquitto/config/mosquitto.conf"
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")
    )
    assert settings["password_file"] == target_of(mosquitto, "./mosquitto/passwd")
    assert settings["persistence"] == "true"
    data = [s for s, t in mounts(mosquitto) if t.rstrip("/") == settings["persistence_location"].rstrip("/")]
    assert data == ["mosquitto-data"]


def test_grafana_loads_the_provisioned_datasource_and_dashboard(compose: dict[str, Any]) -> None:
    """The provisioning dir is mounted, its dashboard provider reads the mounted dashboards, home exists."""
    grafana = services(compose)["grafana"]
    assert target_of(grafana, "./grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards = target_of(grafana, "./grafana/dashboards")
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "ecowatch.yaml")
    (entry,) = provider["providers"]
    assert entry["options"]["path"] == dashboards
    home = PurePosixPath(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == PurePosixPath(dashboards)
    assert (DEPLOY / "grafana" / "dashboards" / home.name).is_file()


def test_the_simulator_is_opt_in_and_uses_the_station_account(compose: dict[str, Any]) -> None:
    """The simulator runs only with --profile demo, publishes to the broker service, reads its password from env."""
    simulator = services(compose)["simulator"]
    assert simulator["profiles"] == ["demo"]
    command = simulator["command"]
    assert "--host=mosquitto" in command
    (password_env,) = [c.split("=", 1)[1] for c in command if c.startswith("--password-env=")]
    assert password_env in environment(simulator)
    assert simulator["healthcheck"] == {"disable": True}
    assert Path(COMPOSE).parent == DEPLOY
