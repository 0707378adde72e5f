#!/usr/bin/env bash
# The demo on a fresh machine: a virtualenv with ecowatch and the embedded broker, then
# `ecowatch demo` (embedded amqtt broker, SQLite store, simulator, daemon). No servers needed.
# It prints the dashboard's URL first; within about a minute a spill on the Yangtze, replayed as
# recent history, opens an incident that is confirmed downstream and reaches the demo's own
# signature-checking webhook receiver (ingest/app/demo_story.py).
# Extra arguments go to `ecowatch demo` (see `ecowatch demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ecowatch_venv demo
exec .venv/bin/ecowatch demo "$@"
