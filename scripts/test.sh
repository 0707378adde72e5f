#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine. Installs what the tests need: the servers
# they start themselves on loopback (Mosquitto, VictoriaMetrics, InfluxDB 1.x, Alertmanager) and a
# virtualenv with ecowatch and its test tools; then ruff, mypy and pytest.
#   scripts/test.sh                 everything but the long fault runs
#   scripts/test.sh -m fault        the fault-injection runs at full counts
#   scripts/test.sh -m fuzz         the long fuzzing runs (10^6 payloads per format)
#   scripts/test.sh tests/ingest    any pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ecowatch_apt_install mosquitto mosquitto-clients victoria-metrics influxdb prometheus-alertmanager chromium fonts-wqy-microhei openssl
ecowatch_venv test

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy ingest alerts config simulators
.venv/bin/lint-imports --no-cache
if [ $# -eq 0 ]; then
    set -- -m "not fault and not fuzz"
fi
exec .venv/bin/pytest -p no:cacheprovider "$@"
