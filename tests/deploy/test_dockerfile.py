"""The Dockerfile, checked statically (no Docker engine here), and its health check command run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DOCKERFILE,
    ECOWATCH_YAML,
    ROOT,
    Dockerfile,
    DockerIgnore,
    parse_dockerfile,
    settings_of,
)
from tests.servers import free_port

# python:3.11.<patch>-slim[-<debian>]: a pinned patch release of the slim variant.
PINNED_SLIM_PYTHON = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "python3-dev", "libc6-dev")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_two_stages_from_a_pinned_slim_python(dockerfile: Dockerfile) -> None:
    """A build stage and a runtime stage, both from a pinned python:3.11 slim tag."""
    assert len(dockerfile.stages) >= 2
    for stage in dockerfile.stages:
        assert PINNED_SLIM_PYTHON.match(stage.base), stage.base
    build, runtime = dockerfile.stages[0], dockerfile.final
    assert runtime.base != build.name, "the runtime stage must start from the base image, not the build"
    assert build.name is not None
    assert any(f"from={build.name}" in i.flags.get("mount", "") for i in runtime.all("RUN")) or any(
        i.flags.get("from") == build.name for i in runtime.all("COPY")
    ), "the runtime stage takes the wheels from the build stage"


def test_the_final_stage_runs_as_a_fixed_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    """USER is numeric uid:gid, not 0, and is the uid the stage creates."""
    (user,) = [i.args for i in dockerfile.final.all("USER")]
    match = re.fullmatch(r"(\d+):(\d+)", user)
    assert match, f"USER {user} is not numeric uid:gid"
    uid, gid = match.groups()
    assert uid != "0"
    assert gid != "0"
    created = " ".join(i.args for i in dockerfile.final.all("RUN"))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created
    keywords = [i.keyword for i in dockerfile.final.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_no_build_tools_downloads_or_pip_cache_in_the_final_stage(dockerfile: Dockerfile) -> None:
    """The runtime stage installs no compiler, fetches nothing by ADD, and keeps no pip cache."""
    for stage in dockerfile.stages:
        for add in stage.all("ADD"):
            assert not re.search(r"\b(https?|git)://", add.args), f"ADD of a URL: {add.args}"
    runs = " ".join(i.args for i in dockerfile.final.all("RUN"))
    for tool in BUILD_TOOLS:
        assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", runs), f"{tool} in the final stage"
    assert "apt-get install" not in runs
    env = " ".join(i.args for i in dockerfile.final.all("ENV"))
    assert "PIP_NO_CACHE_DIR=1" in env or "--no-cache-dir" in runs
    # Only the wheels built in the first stage are installed: nothing is resolved from an index.
    installs = re.findall(r"pip install[^&]*", runs)
    assert installs
    assert all("--no-index" in cmd for cmd in installs)
    assert "pip uninstall --yes pip" in runs


def test_the_build_stage_copies_every_package_the_wheel_needs(dockerfile: Dockerfile) -> None:
    """pyproject's packages and readme are copied into the build stage, and the build context keeps them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied: set[str] = set()
    for copy in dockerfile.stages[0].all("COPY"):
        *sources, _ = copy.args.split()
        copied.update(s.rstrip("/") for s in sources)
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied
    assert "--only-binary=:all:" in " ".join(i.args for i in dockerfile.stages[0].all("RUN"))


def test_the_build_context_holds_what_is_copied_and_no_secrets(dockerfile: Dockerfile) -> None:
    """Every COPY source exists and passes .dockerignore; local state and secrets stay out."""
    ignore = DockerIgnore.read(ROOT / ".dockerignore")
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            *sources, _ = copy.args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not ignore.excluded(source), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv", ".git", "tests", "var", "deploy/.env", "deploy/mosquitto/passwd"):
        assert ignore.excluded(kept_out), kept_out
    assert ignore.excluded("ingest/__pycache__/service.cpython-311.pyc")


def test_the_image_layout_matches_the_container_configuration(
    dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENTRYPOINT/CMD run the baked configuration, whose registry, data dir and port the image provides."""
    final = dockerfile.final
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert exec_form(entrypoint.args) == ["ecowatch"]
    command = exec_form(cmd.args)
    assert command[:2] == ["run", "--config"]
    config_path = Path(command[2])
    copies = {
        Path(c.args.split()[-1]): Path(c.args.split()[0]) for c in final.all("COPY") if "from" not in c.flags
    }
    assert copies[config_path] == ECOWATCH_YAML.relative_to(ROOT)
    settings = settings_of(monkeypatch, ECOWATCH_YAML)
    assert settings.registry in copies, "the configured registry is not in the image"
    assert (ROOT / copies[settings.registry]).is_file()
    (volume,) = final.all("VOLUME")
    assert Path(volume.args) == settings.data_dir
    assert settings.http.host == "0.0.0.0"
    (expose,) = final.all("EXPOSE")
    assert int(expose.args) == settings.http.port
    assert any(str(settings.data_dir) in r.args and "-o 10001" in r.args for r in final.all("RUN"))


class _Probe(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def probe_server() -> Iterator[tuple[int, type[_Probe]]]:
    handler = type("Handler", (_Probe,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), handler
    finally:
        server.shutdown()
        server.server_close()


def healthcheck(dockerfile: Dockerfile, port: int) -> int:
    (check,) = dockerfile.final.all("HEALTHCHECK")
    kind, _, args = check.args.partition(" ")
    assert kind == "CMD"
    argv = exec_form(args)
    assert argv[0] == "python", "the slim image has python, not curl"
    env = {"ECOWATCH_HTTP__PORT": str(port), "PATH": ""}
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=20, check=False
    )
    return result.returncode


def test_the_health_check_passes_on_healthz_200_and_fails_otherwise(
    dockerfile: Dockerfile, probe_server: tuple[int, type[_Probe]]
) -> None:
    """The HEALTHCHECK command exits 0 when /healthz answers 200, 1 on 503 or a closed port."""
    (check,) = dockerfile.final.all("HEALTHCHECK")
    assert {"interval", "timeout", "retries"} <= check.flags.keys()
    port, handler = probe_server
    assert healthcheck(dockerfile, port) == 0
    handler.status = 503
    assert healthcheck(dockerfile, port) == 1
    assert healthcheck(dockerfile, free_port()) == 1
