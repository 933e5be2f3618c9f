"""Settings, read once from the environment at start-up and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is present but not usable; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # None: start the embedded PostgreSQL server in data_dir.
    database_url: str | None = None
    data_dir: Path = Path("data")
    token_ttl_seconds: int = 7200
    grpc_workers: int = 16
    # The request path's statements as server-side prepared statements (server.storage.database).
    # Off behind a pooler that hands each transaction another server connection (PgBouncer
    # in transaction mode does not carry SQL-level PREPARE across).
    db_prepared_statements: bool = True
    shutdown_grace_seconds: float = 10.0
    health_interval_seconds: float = 1.0
    log_level: str = "INFO"
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
    # Recording files; None: <data_dir>/recordings.
    recordings_dir: Path | None = None
    # Where clients reach the REST gateway: download links are built on it.
    public_base_url: str = "http://127.0.0.1:8080"
    download_link_ttl_seconds: int = 3600
    max_recording_bytes: int = 4 * 1024**3
    # Webhook receivers at these networks may be called although not public (e.g. 127.0.0.0/8).
    webhook_allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # A meeting whose call was never ended counts as finished this long after end_date.
    webhook_end_grace_seconds: float = 600.0
    webhook_timeout_seconds: float = 10.0

    @property
    def db_pool_size(self) -> int:
        # One connection per worker thread plus a few for the background loops.
        return self.grpc_workers + 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
            return value

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
            return value

        def boolean(name: str, default: bool) -> bool:
            raw = (env.get(name) or "").strip().lower()
            if raw == "":
                return default
            if raw in ("1", "true", "yes", "on"):
                return True
            if raw in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"{name} must be true or false, got {raw!r}")

        smtp_url = env.get("SMTP_URL") or None
        if smtp_url is not None:
            parts = urlsplit(smtp_url)
            if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
                # Not echoed: the URL may hold a password.
                raise SettingsError(
                    "SMTP_URL must be smtp://, smtp+starttls:// or smtps:// with a host"
                )
        sink = env.get("MAIL_SINK_DIR")

        level = env.get("LOG_LEVEL", defaults.log_level).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")

        def networks(name: str) -> tuple[IPv4Network | IPv6Network, ...]:
            found = []
            for item in (env.get(name) or "").replace(",", " ").split():
                try:
                    found.append(ip_network(item, strict=False))
                except ValueError:
                    raise SettingsError(f"{name}: {item!r} is not an IP network") from None
            return tuple(found)

        public_base_url = (env.get("PUBLIC_BASE_URL") or defaults.public_base_url).rstrip("/")
        if urlsplit(public_base_url).scheme not in ("http", "https"):
            raise SettingsError(f"PUBLIC_BASE_URL must be an http(s) URL, got {public_base_url!r}")
        return cls(
            grpc_host=env.get("GRPC_HOST") or defaults.grpc_host,
            grpc_port=integer("GRPC_PORT", defaults.grpc_port, 0, 65535),
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("DATA_DIR") or defaults.data_dir),
            token_ttl_seconds=integer(
                "TOKEN_TTL_SECONDS", defaults.token_ttl_seconds, 1, 90 * 24 * 3600
            ),
            grpc_workers=integer("GRPC_WORKERS", defaults.grpc_workers, 1, 256),
            db_prepared_statements=boolean(
                "DB_PREPARED_STATEMENTS", defaults.db_prepared_statements
            ),
            shutdown_grace_seconds=number(
                "SHUTDOWN_GRACE_SECONDS", defaults.shutdown_grace_seconds, 0, 300
            ),
            health_interval_seconds=number(
                "HEALTH_INTERVAL_SECONDS", defaults.health_interval_seconds, 0.05, 60
            ),
            log_level=level,
            smtp_url=smtp_url,
            mail_sink_dir=Path(sink) if sink else None,
            delivery_enabled=boolean("DELIVERY_ENABLED", defaults.delivery_enabled),
            delivery_poll_seconds=number(
                "DELIVERY_POLL_SECONDS", defaults.delivery_poll_seconds, 0.05, 60
            ),
            delivery_lease_seconds=number(
                "DELIVERY_LEASE_SECONDS", defaults.delivery_lease_seconds, 1, 3600
            ),
            worker_id=env.get("WORKER_ID") or None,
            recordings_dir=Path(env["RECORDINGS_DIR"]) if env.get("RECORDINGS_DIR") else None,
            public_base_url=public_base_url,
            download_link_ttl_seconds=integer(
                "DOWNLOAD_LINK_TTL_SECONDS", defaults.download_link_ttl_seconds, 1, 7 * 86400
            ),
            max_recording_bytes=integer(
                "MAX_RECORDING_BYTES", defaults.max_recording_bytes, 1, 1 << 40
            ),
            webhook_allowed_networks=networks("WEBHOOK_ALLOWED_NETWORKS"),
            webhook_end_grace_seconds=number(
                "WEBHOOK_END_GRACE_SECONDS", defaults.webhook_end_grace_seconds, 0, 7 * 86400
            ),
            webhook_timeout_seconds=number(
                "WEBHOOK_TIMEOUT_SECONDS", defaults.webhook_timeout_seconds, 0.1, 120
            ),
        )

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def mail_sink(self) -> Path:
        return self.mail_sink_dir or self.data_dir / "mail"
