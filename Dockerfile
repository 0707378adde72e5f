# syntax=docker/dockerfile:1
# ecowatch: the ingestion daemon as a small, non-root image.
#
#   docker build -t ecowatch:0.1.0 .
#   docker run --rm -p 8080:8080 -v ecowatch-data:/var/lib/ecowatch \
#       -e ECOWATCH_MQTT_PASSWORD -e INFLUX_TOKEN ecowatch:0.1.0
#
# Layout (deploy/README.md, "Image"):
#   /opt/ecowatch                   virtualenv with ecowatch and its dependencies, no pip
#   /etc/ecowatch/ecowatch.yaml     configuration (deploy/ecowatch.yaml); mount your own over it
#   /etc/ecowatch/stations.yaml     station registry (the demo registry); mount your own over it
#   /var/lib/ecowatch               volume: write-ahead logs, dead letters, SQLite
# Runs as uid/gid 10001; serves /metrics, /healthz and /readyz on port 8080.
#
# The build stage turns ecowatch and every dependency into wheels; the runtime stage installs them
# offline from a bind mount, so neither compilers, wheels nor a pip cache reach the final image.
# Every dependency ships binary wheels for linux/amd64 and arm64: --only-binary makes a missing one
# fail the build at once instead of reaching for a compiler the slim image does not have.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ./ingest
COPY alerts ./alerts
COPY config ./config
COPY simulators ./simulators
RUN python -m pip wheel --only-binary=:all: --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ecowatch" \
      org.opencontainers.image.description="Water-quality ingestion: MQTT in, validated readings to a time-series database, GB 3838 alerts out." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/ecowatch/bin:$PATH \
    ECOWATCH_CONFIG=/etc/ecowatch/ecowatch.yaml

# A fixed uid/gid, so volume ownership and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 ecowatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/ecowatch \
        --shell /usr/sbin/nologin ecowatch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/ecowatch

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/ecowatch \
 && /opt/ecowatch/bin/python -m pip install --no-index --find-links=/wheels ecowatch \
 && /opt/ecowatch/bin/python -m pip uninstall --yes pip setuptools

COPY deploy/ecowatch.yaml /etc/ecowatch/ecowatch.yaml
COPY config/stations/chongqing-demo.yaml /etc/ecowatch/stations.yaml

USER 10001:10001
WORKDIR /var/lib/ecowatch
# Declared after the directory is created and chowned: a new named volume starts as a copy of it,
# owned by 10001.
VOLUME /var/lib/ecowatch
EXPOSE 8080
# SIGTERM (the default stop signal) drains within shutdown_grace (10 s); give `docker stop` -t 30.
STOPSIGNAL SIGTERM
# The slim image has no curl: ask Python. urlopen raises on anything but 2xx, so exit status 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ECOWATCH_HTTP__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["ecowatch"]
CMD ["run", "--config", "/etc/ecowatch/ecowatch.yaml"]
