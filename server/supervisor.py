"""`make run`: the database, the gRPC server and the Envoy gateway, supervised as one service.

The embedded PostgreSQL server starts here when DATABASE_URL is unset; the gRPC server
(`python -m server`) and Envoy run as child processes. Envoy's configuration is checked
(`envoy --mode validate`) before anything starts. When one child exits, or on SIGINT/SIGTERM,
Envoy stops first (no new requests), then the gRPC server (it drains), then the database.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from threading import Event
from types import FrameType
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server import logs, metrics_endpoint
from server.settings import REPO, GatewaySettings, Settings, SettingsError
from server.storage import database, embedded_db

# A value followed by `# NAME` in envoy.yaml is replaced by the setting NAME when rendered.
_PLACEHOLDER = re.compile(r"(?P<key>[a-z_]+): (?P<value>\S+) # (?P<name>[A-Z_]+)\b")


class StartupError(RuntimeError):
    """The service could not start; the message says why."""


def render_envoy_config(template: str, values: Mapping[str, str | int]) -> str:
    """envoy.yaml with every `value # NAME` that `values` names replaced by values[NAME]."""

    def substitute(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in values:
            return match[0]
        return f"{match['key']}: {values[name]} # {name}"

    return _PLACEHOLDER.sub(substitute, template)


def cors_origins(origins: tuple[str, ...]) -> str:
    """The CORS policy's allow_origin_string_match for CORS_ALLOWED_ORIGINS, as one-line JSON
    (a placeholder's value has no spaces)."""
    if origins == ("*",):
        matchers: list[dict[str, object]] = [{"safe_regex": {"regex": ".*"}}]
    else:
        matchers = [{"exact": origin} for origin in origins]
    return json.dumps(matchers, separators=(",", ":"))


def tls_transport_socket(gateway: GatewaySettings) -> str:
    """The listener's transport_socket for GATEWAY_TLS_CERT_FILE and _KEY_FILE as one-line
    JSON, or `null` (plaintext) when neither is set."""
    cert, key = gateway.gateway_tls_cert_file, gateway.gateway_tls_key_file
    if cert is None and key is None:
        return "null"
    if cert is None or key is None:
        raise StartupError(
            "GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE go together: set both, or neither"
        )
    for setting, path in (("GATEWAY_TLS_CERT_FILE", cert), ("GATEWAY_TLS_KEY_FILE", key)):
        if not os.access(path, os.R_OK):
            raise StartupError(f"{setting}: cannot read {path}")
    context = {
        # HTTP/2 first (browsers, native gRPC), HTTP/1.1 for the rest; TLS 1.2 at least.
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_certificates": [
            {
                "certificate_chain": {"filename": str(cert.resolve())},
                "private_key": {"filename": str(key.resolve())},
            }
        ],
    }
    socket_config = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "DownstreamTlsContext",
            "common_tls_context": context,
        },
    }
    return json.dumps(socket_config, separators=(",", ":"))


def tracing_values(settings: Settings) -> dict[str, str | int]:
    """The placeholders of Envoy's tracing (OTEL_EXPORTER_OTLP_ENDPOINT), as one-line JSON:
    its OpenTelemetry tracer, and the collector's address for the otlp_collector cluster."""
    if settings.otlp_endpoint is None:
        return {}
    url = urlsplit(settings.otlp_endpoint)
    tls = url.scheme == "https"
    provider = {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
            "http_service": {
                "http_uri": {
                    "uri": f"{settings.otlp_endpoint.rstrip('/')}/v1/traces",
                    "cluster": "otlp_collector",
                    "timeout": "2s",
                }
            },
            "service_name": "meetings-gateway",
        },
    }
    sampling = {"value": settings.trace_sample_ratio * 100}
    # Envoy's http.url tag carries the query (signed download links, search terms): replaced by
    # the path alone, which compat.lua puts in the request's metadata ("-" where it did not run).
    url_tag = {
        "tag": "http.url",
        "metadata": {
            "kind": {"request": {}},
            "metadata_key": {"key": "meetings.trace", "path": [{"key": "path"}]},
            "default_value": "-",
        },
    }
    socket = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "UpstreamTlsContext",
            "sni": url.hostname,
        },
    }
    compact = functools.partial(json.dumps, separators=(",", ":"))
    return {
        "TRACING": compact(
            {"random_sampling": sampling, "custom_tags": [url_tag], "provider": provider}
        ),
        "OTLP_HOST": url.hostname or "127.0.0.1",
        "OTLP_PORT": url.port or (443 if tls else 80),
        "OTLP_TLS": compact(socket) if tls else "null",
    }


# The cluster's one endpoint in envoy.yaml (rendered or not), repeated once per server process.
_ENDPOINT = re.compile(
    r"^(?P<indent> *)- endpoint:\n(?:(?P=indent) .*\n)*?"
    r"(?P=indent) .*port_value: \S+ # GRPC_PORT\b.*\n",
    re.MULTILINE,
)


def with_server_ports(config: str, ports: list[int]) -> str:
    """`config` with the gRPC cluster's endpoint listed once per port (Envoy balances them)."""
    match = _ENDPOINT.search(config)
    if match is None:
        raise StartupError("envoy.yaml has no `port_value: ... # GRPC_PORT` endpoint")
    endpoint = match[0]
    copies = [render_envoy_config(endpoint, {"GRPC_PORT": port}) for port in ports]
    return config[: match.start()] + "".join(copies) + config[match.end() :]


def validate_envoy_config(envoy_bin: Path, config: Path, source: Path | None = None) -> None:
    """Raise StartupError with Envoy's own explanation if it would not load `config`
    (rendered from `source`, if given)."""
    try:
        result = subprocess.run(  # noqa: S603 (our own binary and file)
            [str(envoy_bin), "--mode", "validate", "-c", str(config), "-l", "error"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise StartupError(
            f"no Envoy binary at {envoy_bin} (run `make setup`, or set ENVOY_BIN)"
        ) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        detail = "\n  ".join(output[-8:]) or f"exit status {result.returncode}"
        name = f"{source} (rendered as {config})" if source else str(config)
        raise StartupError(f"the Envoy configuration {name} is not valid:\n  {detail}")


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(host: str, port: int, setting: str) -> None:
    """StartupError if something already listens on host:port (an old instance, another
    stack): its readiness answers would pass for ours."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Envoy binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"{setting} {port} on {host} is in use by another process ({exc.strerror}):"
                " stop it, or choose another port"
            ) from None


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies without stopping us (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group: a Ctrl-C reaches only the supervisor, which stops the children
    # in order.
    return subprocess.Popen(  # noqa: S603 (fixed commands)
        args, cwd=REPO, env=dict(env), process_group=0, preexec_fn=_die_with_parent
    )


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]

    def wait_ready(self, ready: Callable[[], bool], deadline: float, stopping: Event) -> None:
        while not ready():
            if self.process.poll() is not None:
                raise StartupError(
                    f"{self.name} exited with status {self.process.returncode} while starting"
                )
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} did not become ready in time")
            if stopping.wait(0.2):
                raise StartupError("stopped while starting")

    def stop(self, grace: float) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def grpc_serving(address: str) -> bool:
    """Whether the gRPC server at `address` reports SERVING (standard health check)."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def gateway_status(gateway: GatewaySettings, path: str, host: str | None = None) -> int | None:
    """The status of GET `path` on our own gateway, at GATEWAY_HOST or `host` (None: no
    answer). Unverified over TLS: what is probed is that Envoy answers."""
    host, port = host or gateway.gateway_host, gateway.gateway_port
    if gateway.gateway_tls_cert_file is None:
        connection = http.client.HTTPConnection(host, port, timeout=2)
    else:
        # Our own listener, probed by address: its certificate names the public host.
        unverified = ssl._create_unverified_context()  # noqa: S323
        connection = http.client.HTTPSConnection(host, port, timeout=2, context=unverified)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _drain_gateway(gateway: GatewaySettings) -> None:
    """Fail /readyz (Envoy's health check filter), then go on serving GATEWAY_DRAIN_SECONDS
    while load balancers notice."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.envoy_admin_port, timeout=2)
    try:
        connection.request("POST", "/healthcheck/fail")
        connection.getresponse().read()
    except OSError:
        return  # Envoy is gone already: nothing to drain
    finally:
        connection.close()
    print(f"draining: /readyz fails, serving {gateway.gateway_drain_seconds:g} s more", flush=True)
    time.sleep(gateway.gateway_drain_seconds)


def run(
    settings: Settings,
    gateway: GatewaySettings,
    env: Mapping[str, str],
    stopping: Event,
    drain: Callable[[], bool] = lambda: False,
) -> int:
    """Start everything, print where it is, and supervise until `stopping` or a child exits
    (first draining the gateway if `drain()` says so). `env` is passed on to the children.
    With GATEWAY_UPSTREAM, only Envoy, in front of servers that run elsewhere."""
    gateway = _with_free_ports(gateway)
    check_port_free(gateway.gateway_host, gateway.gateway_port, "GATEWAY_PORT")
    if settings.metrics_port:
        check_port_free(settings.metrics_host, settings.metrics_port, "METRICS_PORT")
    if gateway.gateway_upstream is not None:
        return _run_gateway(settings, gateway, env, stopping, drain)
    ports = _server_ports(settings, gateway.server_processes)
    settings = replace(settings, grpc_port=ports[0])
    config = _write_envoy_config(settings, gateway, ports)
    validate_envoy_config(gateway.envoy_bin, config, gateway.envoy_config)

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = embedded_db.EmbeddedPostgres(settings.data_dir)
        url = embedded.url()
    values = metrics_endpoint.multiprocess_dir()
    endpoint = None
    # Stopped in this order: Envoy first (no new requests), then the servers (they drain).
    children: list[_Child] = []
    try:
        deadline = time.monotonic() + gateway.startup_timeout_seconds
        scheme = "http" if gateway.gateway_tls_cert_file is None else "https"
        server_env = {
            # Download links point at the gateway unless PUBLIC_BASE_URL says otherwise.
            "PUBLIC_BASE_URL": f"{scheme}://{gateway.gateway_host}:{gateway.gateway_port}",
            # Envoy is stopped before the servers: nothing to drain away from (unless set).
            "SHUTDOWN_DRAIN_SECONDS": "0",
            **env,
            "DATABASE_URL": url,
            "PROMETHEUS_MULTIPROC_DIR": str(values),
        }
        _start_servers(children, settings.grpc_host, ports, server_env, deadline, stopping)
        # The whole path answers: an anonymous GET /session is a 401.
        _start_envoy(children, gateway, config, env, deadline, stopping, ready_status=401)
        endpoint = _serve_metrics(settings, gateway, values, url)
        _announce(settings, gateway, endpoint)
        return _supervise(children, stopping)
    finally:
        if endpoint is not None:
            endpoint.stop()
        _stop_children(children, gateway, settings, drain())
        shutil.rmtree(values, ignore_errors=True)
        if embedded is not None:
            embedded.stop()


def _serve_metrics(
    settings: Settings, gateway: GatewaySettings, values: Path, url: str | None
) -> metrics_endpoint.Endpoint | None:
    """/metrics for the server processes (their values in `values`), the database at `url`
    (None: no database here) and Envoy; None when METRICS_PORT is off."""
    if settings.metrics_port is None:
        return None
    if url is not None:
        database.connect(url, 2, prepared=False)  # the database's view, read at each scrape
    try:
        return metrics_endpoint.supervised(
            settings.metrics_host, settings.metrics_port, values, gateway.envoy_admin_port
        )
    except OSError as exc:
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        raise StartupError(f"cannot serve metrics on {where} (METRICS_PORT): {exc}") from exc


def _run_gateway(
    settings: Settings,
    gateway: GatewaySettings,
    env: Mapping[str, str],
    stopping: Event,
    drain: Callable[[], bool],
) -> int:
    """Envoy alone, its cluster the addresses GATEWAY_UPSTREAM's name resolves to."""
    config = _write_envoy_config(settings, gateway, [])
    validate_envoy_config(gateway.envoy_bin, config, gateway.envoy_config)
    values = metrics_endpoint.multiprocess_dir()  # stays empty: no server process here
    endpoint = None
    children: list[_Child] = []
    try:
        deadline = time.monotonic() + gateway.startup_timeout_seconds
        # Up when Envoy is (/healthz): the replicas may come later; /readyz tells.
        _start_envoy(children, gateway, config, env, deadline, stopping, ready_status=200)
        endpoint = _serve_metrics(settings, gateway, values, None)
        scheme = "http" if gateway.gateway_tls_cert_file is None else "https"
        print(
            f"Meetings gateway: {scheme}://{gateway.gateway_host}:{gateway.gateway_port}"
            f" -> {gateway.gateway_upstream} (every address of the name is a replica)",
            flush=True,
        )
        if endpoint is not None:
            print(f"Metrics: {endpoint.url}", flush=True)
        return _supervise(children, stopping)
    finally:
        if endpoint is not None:
            endpoint.stop()
        _stop_children(children, gateway, settings, drain())
        shutil.rmtree(values, ignore_errors=True)


def _stop_children(
    children: list[_Child], gateway: GatewaySettings, settings: Settings, drain: bool
) -> None:
    """Envoy first (after its drain, when asked: SIGTERM), then the servers (they drain)."""
    if drain and children and children[0].name == "Envoy" and children[0].process.poll() is None:
        _drain_gateway(gateway)
    for child in children:
        child.stop(settings.shutdown_grace_seconds + 5)


def _server_ports(settings: Settings, processes: int) -> list[int]:
    """Consecutive ports from GRPC_PORT, one per server process (with 0, free ports)."""
    if settings.grpc_port == 0:
        return [free_port(settings.grpc_host) for _ in range(processes)]
    return [settings.grpc_port + n for n in range(processes)]


def _with_free_ports(gateway: GatewaySettings) -> GatewaySettings:
    if gateway.gateway_port == 0:
        gateway = replace(gateway, gateway_port=free_port(gateway.gateway_host))
    if gateway.envoy_admin_port == 0:
        gateway = replace(gateway, envoy_admin_port=free_port("127.0.0.1"))
    return gateway


def _write_envoy_config(settings: Settings, gateway: GatewaySettings, ports: list[int]) -> Path:
    """envoy.yaml rendered with the settings (the servers on `ports`, or GATEWAY_UPSTREAM),
    into DATA_DIR."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = settings.data_dir / "envoy.yaml"
    upstream = gateway.gateway_upstream
    host, port = upstream.rsplit(":", 1) if upstream else (settings.grpc_host, settings.grpc_port)
    values: dict[str, str | int] = {
        "GATEWAY_HOST": gateway.gateway_host,
        "GATEWAY_PORT": gateway.gateway_port,
        "ENVOY_ADMIN_PORT": gateway.envoy_admin_port,
        "GATEWAY_MAX_CONNECTIONS": gateway.gateway_max_connections,
        "CORS_ALLOWED_ORIGINS": cors_origins(gateway.cors_allowed_origins),
        "GATEWAY_TLS": tls_transport_socket(gateway),
        "GRPC_CLUSTER_TYPE": "STRICT_DNS" if upstream else "STATIC",
        "GRPC_HOST": host,
        "GRPC_PORT": port,
        **tracing_values(settings),
    }
    rendered = render_envoy_config(gateway.envoy_config.read_text(), values)
    config.write_text(rendered if upstream else with_server_ports(rendered, ports))
    return config


def _start_servers(
    children: list[_Child],
    host: str,
    ports: list[int],
    env: Mapping[str, str],
    deadline: float,
    stopping: Event,
) -> None:
    """`python -m server` on each port (added to `children` at once, so that they are stopped
    if any fails to start), then wait until every one is SERVING."""
    started = []
    for number, port in enumerate(ports):
        name = "the gRPC server" + (f" #{number + 1}" if len(ports) > 1 else "")
        process = _spawn([sys.executable, "-m", "server"], {**env, "GRPC_PORT": str(port)})
        started.append(_Child(name, process))
        children.append(started[-1])
    for child, port in zip(started, ports, strict=True):
        child.wait_ready(functools.partial(grpc_serving, f"{host}:{port}"), deadline, stopping)


def _start_envoy(
    children: list[_Child],
    gateway: GatewaySettings,
    config: Path,
    env: Mapping[str, str],
    deadline: float,
    stopping: Event,
    ready_status: int,
) -> None:
    """Envoy, first in `children` (stopped first: no new requests), then wait until it is
    ready: GET /session answers `ready_status` (401: the whole path; 200: Envoy itself)."""
    args = [str(gateway.envoy_bin), "-c", str(config), "-l", gateway.envoy_log_level]
    # No hot restart is used, and without it several gateways can share a host (tests).
    args += ["--disable-hot-restart", "--drain-time-s", "2"]
    envoy = _Child("Envoy", _spawn(args, env))
    children.insert(0, envoy)
    path = "/session" if ready_status == 401 else "/healthz"
    envoy.wait_ready(lambda: gateway_status(gateway, path) == ready_status, deadline, stopping)


def _supervise(children: list[_Child], stopping: Event) -> int:
    """0 once `stopping` is set; 1 as soon as a child exits on its own."""
    while not stopping.wait(0.2):
        for child in children:
            if child.process.poll() is not None:
                code = child.process.returncode
                print(f"{child.name} exited with status {code}: stopping", flush=True)
                return 1
    return 0


def _announce(
    settings: Settings, gateway: GatewaySettings, endpoint: metrics_endpoint.Endpoint | None
) -> None:
    scheme = "http" if gateway.gateway_tls_cert_file is None else "https"
    base = f"{scheme}://{gateway.gateway_host}:{gateway.gateway_port}"
    # The admin command finds the same database the same way (DATABASE_URL, or DATA_DIR).
    env = ""
    if settings.database_url is None and settings.data_dir != Settings().data_dir:
        env = f"DATA_DIR={settings.data_dir} "
    print(
        f"Meetings REST API: {base}  (native gRPC on the same port; "
        f"server on {settings.grpc_host}:{settings.grpc_port})\n"
        f"Envoy admin:       http://127.0.0.1:{gateway.envoy_admin_port}\n"
        "Get a token:\n"
        f"  {env}.venv/bin/meetings-admin create-user alice --password 'a long secret'\n"
        f"  {env}.venv/bin/meetings-admin token alice\n"
        f'Then:  curl -H "CB-Token: <token>" {base}/meetings\n'
        f"SDK apps: ConnectyCube.init({{appId, authKey}}, {{endpoints: {{api_url: '{base}'}}}})"
        f" with the id and key of  {env}.venv/bin/meetings-admin app\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    print(
        f"Admin panel: {base}/admin/  (key: {env}.venv/bin/meetings-admin service-key admin)",
        flush=True,
    )
    if endpoint is not None:
        print(f"Metrics: {endpoint.url}", flush=True)


def main() -> int:
    try:
        settings = Settings.from_env()
        gateway = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    stopping = Event()
    terminated = Event()  # SIGTERM (an orchestrator): drain; SIGINT (Ctrl-C): stop now

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            terminated.set()
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(settings, gateway, os.environ, stopping, terminated.is_set)
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
