"""Settings, read once from the environment at start-up and passed down.

This is the only module that reads `os.environ`. Each variable is read by the reader of its
type (`_Env`), which fails loudly, naming the variable, when a value is not usable.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
N = TypeVar("N", int, float)
ENVOY_LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")


class SettingsError(ValueError):
    """A setting is present but not usable; the message names the variable."""


# A web origin as browsers send it: scheme, host (a name, or an IPv6 address in brackets), port.
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


class _Env:
    """Typed reads of environment variables: an unset or empty variable gives the default."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name) or default

    def optional(self, name: str) -> str | None:
        return self._env.get(name) or None

    def path(self, name: str, default: Path) -> Path:
        raw = self._env.get(name)
        return Path(raw) if raw else default

    def optional_path(self, name: str) -> Path | None:
        raw = self._env.get(name)
        return Path(raw) if raw else None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._ranged(name, default, low, high, int, "a whole number")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._ranged(name, default, low, high, float, "a number")

    def _ranged(
        self, name: str, default: N, low: N, high: N, parse: Callable[[str], N], what: str
    ) -> N:
        raw = self._env.get(name)
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = (self._env.get(name) or "").strip().lower()
        if raw == "":
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of `choices`, matched without regard to case."""
        raw = self._env.get(name) or default
        for choice in choices:
            if raw.lower() == choice.lower():
                return choice
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")

    def port(self, name: str, default: int) -> int:
        raw = self._env.get(name) or str(default)
        if not raw.isdigit() or int(raw) > 65535:
            raise SettingsError(f"{name} must be a port number (0 for any), got {raw!r}")
        return int(raw)

    def port_or_off(self, name: str, default: int | None) -> int | None:
        """A port (0 for any), or None for `off`."""
        if (self._env.get(name) or "").strip().lower() == "off":
            return None
        return self.port(name, 0) if self._env.get(name) else default

    def host_port(self, name: str) -> str | None:
        """`host:port` (a DNS name or an IPv4 address), or None when unset."""
        raw = self._env.get(name) or None
        if raw is not None and not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", raw):
            raise SettingsError(f"{name} must be host:port such as server:50051, got {raw!r}")
        return raw

    def rate(self, name: str, default: tuple[int, int]) -> tuple[int, int]:
        """`ATTEMPTS/SECONDS`, e.g. 30/60."""
        raw = self._env.get(name)
        if not raw:
            return default
        match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", raw)
        if match is None or int(match[1]) < 1 or int(match[2]) < 1:
            raise SettingsError(f"{name} must be ATTEMPTS/SECONDS such as 30/60, got {raw!r}")
        return int(match[1]), int(match[2])

    def origins(self, name: str, default: str) -> tuple[str, ...]:
        """`*`, or web origins (`scheme://host[:port]`), separated by commas or spaces."""
        items = tuple((self._env.get(name) or default).replace(",", " ").split())
        if items == ("*",):
            return items
        for item in items:
            if not _ORIGIN.fullmatch(item):
                raise SettingsError(
                    f"{name}: {item!r} is not an origin such as https://app.example.com (or use *)"
                )
        return items

    def networks(self, name: str) -> tuple[IPv4Network | IPv6Network, ...]:
        found = []
        for item in (self._env.get(name) or "").replace(",", " ").split():
            try:
                found.append(ip_network(item, strict=False))
            except ValueError:
                raise SettingsError(f"{name}: {item!r} is not an IP network") from None
        return tuple(found)

    def smtp_url(self, name: str) -> str | None:
        url = self._env.get(name) or None
        if url is not None:
            try:
                parts = urlsplit(url)
                usable = parts.scheme in ("smtp", "smtp+starttls", "smtps") and parts.hostname
            except ValueError:
                usable = False
            if not usable:
                # Not echoed: the URL may hold a password.
                raise SettingsError(
                    f"{name} must be smtp://, smtp+starttls:// or smtps:// with a host"
                )
        return url

    def optional_choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        return self.choice(name, "", choices) if self._env.get(name) else None

    def optional_http_url(self, name: str) -> str | None:
        return self.http_url(name, "") if self._env.get(name) else None

    def http_url(self, name: str, default: str) -> str:
        url = (self._env.get(name) or default).rstrip("/")
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise SettingsError(f"{name} must be an http(s) URL, got {url!r}")
        return url


@dataclass(frozen=True)
class Settings:
    """The settings of a server process (and of the CLI)."""

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # None: start the embedded PostgreSQL server in data_dir.
    database_url: str | None = None
    # LISTEN connections (chat fan-out, outbox wake-ups, recording control watches) need a
    # session of their own: behind PgBouncer in transaction mode, a direct or session-mode
    # URL. None: database_url.
    database_listen_url: str | None = None
    data_dir: Path = Path("data")
    token_ttl_seconds: int = 7200
    grpc_workers: int = 16
    # Live chat watches (ChatService.WatchDialog) one process serves at once. Each holds a
    # thread of its own (in addition to grpc_workers, which stay free for calls); one more
    # gets RESOURCE_EXHAUSTED, and its client tries again or another replica.
    chat_watches_max: int = 100
    # A watch with nothing new sends a keepalive this often (proxies and load balancers cut
    # streams idle for 60 s; Envoy's stream_idle_timeout here is 60 s).
    chat_watch_keepalive_seconds: float = 25.0
    # The request path's statements as server-side prepared statements (storage.database).
    # Off behind a pooler that hands each transaction another server connection (PgBouncer
    # in transaction mode does not carry SQL-level PREPARE across).
    db_prepared_statements: bool = True
    # On SIGTERM: NOT_SERVING while still serving this long, so that Envoy's health checks
    # (every second, out after one failure: envoy.yaml) stop routing here before the listener
    # closes; then in-flight calls get shutdown_grace_seconds to finish.
    shutdown_drain_seconds: float = 3.0
    shutdown_grace_seconds: float = 10.0
    health_interval_seconds: float = 1.0
    log_level: str = "INFO"
    # Prometheus' GET /metrics (server.metrics_endpoint): on loopback unless METRICS_HOST
    # exposes it (0.0.0.0 in a container, for the scraper); METRICS_PORT=off: none. Under the
    # supervisor, the supervisor serves it for its server processes.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9464
    # Set by the supervisor for its server processes: where prometheus_client keeps their values.
    metrics_multiprocess_dir: Path | None = None
    # OpenTelemetry traces (server.telemetry.tracing) to this OTLP/HTTP collector (its base
    # URL, e.g. http://otel-collector:4318), from Envoy and the servers; None: no tracing.
    # trace_sample_ratio of the traces are kept (Envoy decides; the servers follow it).
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = 1.0
    # Notification email: an SMTP URL (see delivery.mailer); None keeps mail in mail_sink_dir.
    smtp_url: str | None = None
    # None: <data_dir>/mail.
    mail_sink_dir: Path | None = None
    delivery_enabled: bool = True
    # Longest sleep of the delivery loop between passes (a NOTIFY or a due row wakes it sooner).
    delivery_poll_seconds: float = 1.0
    # How long a claimed message stays with its sender before another may take it over.
    delivery_lease_seconds: float = 60.0
    # Names this process in outbox leases; None: <hostname>:<pid>.
    worker_id: str | None = None
    # Recording files; None: <data_dir>/recordings (one machine's disk: with several
    # machines, set s3_bucket).
    recordings_dir: Path | None = None
    # Recordings in an S3-compatible object store instead (storage.recording_objects): the
    # bucket (it must exist), its endpoint (None: AWS S3), the endpoint clients reach for
    # pre-signed download links (None: the same), region, credentials (None: boto3's own
    # chain: AWS_* variables, instance roles), the key prefix and the addressing style.
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_key_prefix: str = "recordings/"
    # None: path style with an endpoint (MinIO, Ceph, R2), virtual-hosted on AWS.
    s3_addressing_style: str | None = None
    # Every this many seconds (0: never) a process removes what crashes left in the store:
    # files no recording names and partial uploads, once older than the grace (an upload in
    # progress is younger; a 4 GiB one at 10 MB/s takes 7 minutes).
    recordings_sweep_seconds: float = 3600.0
    recordings_sweep_grace_seconds: float = 6 * 3600.0
    # Where clients reach the REST gateway: download links are built on it.
    public_base_url: str = "http://127.0.0.1:8080"
    download_link_ttl_seconds: int = 3600
    max_recording_bytes: int = 4 * 1024**3
    # Webhook receivers at these networks may be called although not public (e.g. 127.0.0.0/8).
    webhook_allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # A meeting whose call was never ended counts as finished this long after end_date.
    webhook_end_grace_seconds: float = 600.0
    webhook_timeout_seconds: float = 10.0
    # Rate limits as (attempts, seconds): sign-ins per source address, failed sign-ins per
    # login (a password guesser spread over many addresses), sign-ups and guest sessions per
    # address. One office behind a NAT address shares the address limits.
    rate_sign_in_per_address: tuple[int, int] = (30, 60)
    rate_failed_sign_in_per_login: tuple[int, int] = (10, 900)
    rate_sign_up_per_address: tuple[int, int] = (20, 3600)
    rate_guest_per_address: tuple[int, int] = (60, 3600)

    @property
    def db_pool_size(self) -> int:
        # One connection per worker thread plus a few for the background loops.
        return self.grpc_workers + 4

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def mail_sink(self) -> Path:
        return self.mail_sink_dir or self.data_dir / "mail"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        d = cls()
        return cls(
            grpc_host=env.text("GRPC_HOST", d.grpc_host),
            grpc_port=env.integer("GRPC_PORT", d.grpc_port, 0, 65535),
            database_url=env.optional("DATABASE_URL"),
            database_listen_url=env.optional("DATABASE_LISTEN_URL"),
            data_dir=env.path("DATA_DIR", d.data_dir),
            token_ttl_seconds=env.integer("TOKEN_TTL_SECONDS", d.token_ttl_seconds, 1, 90 * 86400),
            grpc_workers=env.integer("GRPC_WORKERS", d.grpc_workers, 1, 256),
            chat_watches_max=env.integer("CHAT_WATCHES_MAX", d.chat_watches_max, 0, 10_000),
            chat_watch_keepalive_seconds=env.number(
                "CHAT_WATCH_KEEPALIVE_SECONDS", d.chat_watch_keepalive_seconds, 0.1, 3600
            ),
            db_prepared_statements=env.boolean("DB_PREPARED_STATEMENTS", d.db_prepared_statements),
            shutdown_drain_seconds=env.number(
                "SHUTDOWN_DRAIN_SECONDS", d.shutdown_drain_seconds, 0, 300
            ),
            shutdown_grace_seconds=env.number(
                "SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds, 0, 300
            ),
            health_interval_seconds=env.number(
                "HEALTH_INTERVAL_SECONDS", d.health_interval_seconds, 0.05, 60
            ),
            log_level=env.choice("LOG_LEVEL", d.log_level, LOG_LEVELS),
            metrics_host=env.text("METRICS_HOST", d.metrics_host),
            metrics_port=env.port_or_off("METRICS_PORT", d.metrics_port),
            metrics_multiprocess_dir=env.optional_path("PROMETHEUS_MULTIPROC_DIR"),
            otlp_endpoint=(
                env.http_url("OTEL_EXPORTER_OTLP_ENDPOINT", "")
                if env.optional("OTEL_EXPORTER_OTLP_ENDPOINT")
                else None
            ),
            trace_sample_ratio=env.number("TRACE_SAMPLE_RATIO", d.trace_sample_ratio, 0, 1),
            smtp_url=env.smtp_url("SMTP_URL"),
            mail_sink_dir=env.optional_path("MAIL_SINK_DIR"),
            delivery_enabled=env.boolean("DELIVERY_ENABLED", d.delivery_enabled),
            delivery_poll_seconds=env.number(
                "DELIVERY_POLL_SECONDS", d.delivery_poll_seconds, 0.05, 60
            ),
            delivery_lease_seconds=env.number(
                "DELIVERY_LEASE_SECONDS", d.delivery_lease_seconds, 1, 3600
            ),
            worker_id=env.optional("WORKER_ID"),
            recordings_dir=env.optional_path("RECORDINGS_DIR"),
            s3_bucket=env.optional("S3_BUCKET"),
            s3_endpoint_url=env.optional_http_url("S3_ENDPOINT_URL"),
            s3_public_endpoint_url=env.optional_http_url("S3_PUBLIC_ENDPOINT_URL"),
            s3_region=env.text("S3_REGION", d.s3_region),
            s3_access_key_id=env.optional("S3_ACCESS_KEY_ID"),
            s3_secret_access_key=env.optional("S3_SECRET_ACCESS_KEY"),
            s3_key_prefix=env.text("S3_KEY_PREFIX", d.s3_key_prefix),
            s3_addressing_style=env.optional_choice("S3_ADDRESSING_STYLE", ("path", "virtual")),
            recordings_sweep_seconds=env.number(
                "RECORDINGS_SWEEP_SECONDS", d.recordings_sweep_seconds, 0, 7 * 86400
            ),
            recordings_sweep_grace_seconds=env.number(
                "RECORDINGS_SWEEP_GRACE_SECONDS", d.recordings_sweep_grace_seconds, 0, 30 * 86400
            ),
            public_base_url=env.http_url("PUBLIC_BASE_URL", d.public_base_url),
            download_link_ttl_seconds=env.integer(
                "DOWNLOAD_LINK_TTL_SECONDS", d.download_link_ttl_seconds, 1, 7 * 86400
            ),
            max_recording_bytes=env.integer(
                "MAX_RECORDING_BYTES", d.max_recording_bytes, 1, 1 << 40
            ),
            webhook_allowed_networks=env.networks("WEBHOOK_ALLOWED_NETWORKS"),
            webhook_end_grace_seconds=env.number(
                "WEBHOOK_END_GRACE_SECONDS", d.webhook_end_grace_seconds, 0, 7 * 86400
            ),
            webhook_timeout_seconds=env.number(
                "WEBHOOK_TIMEOUT_SECONDS", d.webhook_timeout_seconds, 0.1, 120
            ),
            rate_sign_in_per_address=env.rate(
                "RATE_SIGN_IN_PER_ADDRESS", d.rate_sign_in_per_address
            ),
            rate_failed_sign_in_per_login=env.rate(
                "RATE_FAILED_SIGN_IN_PER_LOGIN", d.rate_failed_sign_in_per_login
            ),
            rate_sign_up_per_address=env.rate(
                "RATE_SIGN_UP_PER_ADDRESS", d.rate_sign_up_per_address
            ),
            rate_guest_per_address=env.rate("RATE_GUEST_PER_ADDRESS", d.rate_guest_per_address),
        )

    def __post_init__(self) -> None:
        if self.database_listen_url and not self.database_url:
            # The embedded database has one address; a LISTEN URL on its own would point the
            # fan-out and wake-ups at another database than the one the requests write.
            raise SettingsError("DATABASE_LISTEN_URL needs DATABASE_URL (set both, or neither)")


@dataclass(frozen=True)
class GatewaySettings:
    """What `make run` adds around the server processes: Envoy, and how many processes."""

    gateway_host: str = "127.0.0.1"
    # 0: any free port (the base URL printed at start-up says which).
    gateway_port: int = 8080
    envoy_admin_port: int = 9901
    # Envoy's cap on open client connections, all clients together (each is a file
    # descriptor: keep it under `ulimit -n`).
    gateway_max_connections: int = 10000
    # Web origins whose pages may call the user API (CORS); `*`: any, as the hosted API allows.
    cors_allowed_origins: tuple[str, ...] = ("*",)
    # TLS on the gateway listener (PEM files; both or neither): HTTPS with HTTP/2 by ALPN,
    # native gRPC over TLS too. None: plaintext.
    gateway_tls_cert_file: Path | None = None
    gateway_tls_key_file: Path | None = None
    # host:port of the gRPC servers, resolved by DNS (every address it has is a replica: a
    # container platform's service name). Set, `make run`'s supervisor starts Envoy only.
    gateway_upstream: str | None = None
    # On SIGTERM the gateway fails /readyz but goes on serving this long, so that a load
    # balancer probing it takes it out of rotation before it stops (Ctrl-C skips the wait).
    gateway_drain_seconds: float = 5.0
    envoy_bin: Path = Path(sys.executable).parent / "envoy"
    envoy_config: Path = REPO / "envoy.yaml"
    envoy_log_level: str = "warning"
    startup_timeout_seconds: float = 60.0
    # `python -m server` processes on consecutive ports from GRPC_PORT, all behind the one Envoy:
    # one Python process is held to one core by the GIL, so more processes use more cores.
    server_processes: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = _Env(os.environ if environ is None else environ)
        d = cls()
        return cls(
            gateway_host=env.text("GATEWAY_HOST", d.gateway_host),
            gateway_port=env.port("GATEWAY_PORT", d.gateway_port),
            envoy_admin_port=env.port("ENVOY_ADMIN_PORT", d.envoy_admin_port),
            gateway_max_connections=env.integer(
                "GATEWAY_MAX_CONNECTIONS", d.gateway_max_connections, 1, 10_000_000
            ),
            cors_allowed_origins=env.origins("CORS_ALLOWED_ORIGINS", "*"),
            gateway_tls_cert_file=env.optional_path("GATEWAY_TLS_CERT_FILE"),
            gateway_tls_key_file=env.optional_path("GATEWAY_TLS_KEY_FILE"),
            gateway_upstream=env.host_port("GATEWAY_UPSTREAM"),
            gateway_drain_seconds=env.number(
                "GATEWAY_DRAIN_SECONDS", d.gateway_drain_seconds, 0, 300
            ),
            envoy_bin=env.path("ENVOY_BIN", d.envoy_bin),
            envoy_config=env.path("ENVOY_CONFIG", d.envoy_config),
            envoy_log_level=env.choice("ENVOY_LOG_LEVEL", d.envoy_log_level, ENVOY_LOG_LEVELS),
            server_processes=env.integer("SERVER_PROCESSES", d.server_processes, 1, 64),
        )
