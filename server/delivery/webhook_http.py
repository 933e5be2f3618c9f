"""The recording-done webhook: its settings, Standard Webhooks signing, the URL guard, and the
HTTP call.

Signing follows https://www.standardwebhooks.com: `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` with a `whsec_<base64>` secret; during a rotation both secrets sign.
Before every call the URL's host is resolved and each address checked: loopback, private,
link-local (cloud metadata), multicast and other reserved ranges are refused unless an
operator allow-list (WEBHOOK_ALLOWED_NETWORKS) contains them, and the connection goes to the
checked address, so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from server.domain import clock, errors
from server.domain.meeting_settings import MeetingSetting
from server.storage.database import db

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

URL = "webhook_url"
ENABLED = "webhook_enabled"
DISABLED_REASON = "webhook_disabled_reason"
SECRETS = "webhook_secrets"
URL_MAX = 2048
PREVIOUS_SECRET_SECONDS = 86400
TIMEOUT_SECONDS = 10.0
USER_AGENT = "meetings-api-webhooks/1"


@dataclass(frozen=True)
class WebhookSettings:
    url: str = ""
    enabled: bool = False
    disabled_reason: str = ""
    # [(whsec_..., expires_at or None)], newest first.
    secrets: tuple[tuple[str, datetime | None], ...] = ()

    def active_secrets(self, now: datetime) -> list[str]:
        return [s for s, expires in self.secrets if expires is None or expires > now]


def load() -> WebhookSettings:
    stored = {
        row.name: row.value
        for row in MeetingSetting.select().where(
            MeetingSetting.name.in_([URL, ENABLED, DISABLED_REASON, SECRETS])
        )
    }
    kept = [
        (item["secret"], datetime.fromisoformat(item["expires_at"]) if item["expires_at"] else None)
        for item in json.loads(stored.get(SECRETS, "[]"))
    ]
    return WebhookSettings(
        url=stored.get(URL, ""),
        enabled=stored.get(ENABLED, "false") == "true",
        disabled_reason=stored.get(DISABLED_REASON, ""),
        secrets=tuple(kept),
    )


def _store(values: dict[str, str]) -> None:
    now = clock.now()
    for name, value in values.items():
        MeetingSetting.insert(name=name, value=value, updated_at=now).on_conflict(
            conflict_target=[MeetingSetting.name],
            update={MeetingSetting.value: value, MeetingSetting.updated_at: now},
        ).execute()


def url_problems(url: str) -> list[str]:
    """Why `url` cannot be a webhook URL (its form only; addresses are checked per call)."""
    if url == "":
        return []
    if len(url) > URL_MAX:
        return [f"must be at most {URL_MAX} characters"]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["must be an http:// or https:// URL"]
    if parts.username or parts.password:
        return ["must not contain credentials"]
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return ["has an invalid port"]
    return []


def update(url: str | None = None, enabled: bool | None = None) -> WebhookSettings:
    problems = errors.FieldErrors()
    if url is not None:
        for problem in url_problems(url.strip()):
            problems.add("webhook_url", problem)
    current = load()
    new_url = current.url if url is None else url.strip()
    if enabled and not new_url:
        problems.add("webhook_enabled", "needs a webhook_url")
    problems.raise_if_any()
    values: dict[str, str] = {}
    if url is not None:
        values[URL] = new_url
    if enabled is not None:
        values[ENABLED] = "true" if enabled else "false"
        if enabled:
            values[DISABLED_REASON] = ""
    with db.atomic():
        _store(values)
        if enabled and not current.secrets:
            _rotate(0)
    return load()


def disable(reason: str) -> None:
    """Turn the webhook off because of the receiver (e.g. it answered 410 Gone)."""
    _store({ENABLED: "false", DISABLED_REASON: reason[:500]})


def _rotate(previous_valid_seconds: int) -> str:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    now = clock.now()
    kept: list[dict[str, str | None]] = [{"secret": secret, "expires_at": None}]
    current = load()
    if current.secrets and previous_valid_seconds > 0:
        previous = current.secrets[0][0]
        expires = now + timedelta(seconds=previous_valid_seconds)
        kept.append({"secret": previous, "expires_at": expires.isoformat()})
    _store({SECRETS: json.dumps(kept)})
    return secret


def rotate_secret(previous_valid_seconds: int = PREVIOUS_SECRET_SECONDS) -> str:
    """A new signing secret (returned once); the previous one also signs for a while."""
    with db.atomic():
        return _rotate(previous_valid_seconds)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 signature>` for one secret, as the Standard Webhooks spec defines it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(
    secrets_in_use: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets_in_use),
    }


# --- Where we may connect -------------------------------------------------------------------


class RefusedAddress(Exception):
    """The URL's host is, or resolves to, an address we do not call."""


def parse_networks(spec: str) -> tuple[IpNetwork, ...]:
    """`127.0.0.0/8, ::1/128` -> networks (ValueError names a bad one)."""
    found = []
    for item in spec.replace(",", " ").split():
        found.append(ipaddress.ip_network(item, strict=False))
    return tuple(found)


def _allowed(address: IpAddress, allowed: Sequence[IpNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int, allowed: Sequence[IpNetwork]) -> str:
    """The first acceptable address of `host`; RefusedAddress if any address is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedAddress(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refused = [str(a) for a in addresses if not _allowed(a, allowed)]
    if refused or not addresses:
        raise RefusedAddress(f"{host} resolves to a non-public address ({', '.join(refused)})")
    return str(addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with SNI and certificate checks for the URL's host name."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


@dataclass(frozen=True)
class Response:
    status: int
    retry_after: float | None


def post(
    url: str,
    body: bytes,
    request_headers: dict[str, str],
    allowed: Sequence[IpNetwork],
    timeout: float = TIMEOUT_SECONDS,
) -> Response:
    """POST once, following no redirect. Raises RefusedAddress or OSError (network)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve(host, port, allowed)
    connection_type = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_type(address, host, port, timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=request_headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # what the receiver says is not needed, only that it said it
        return Response(response.status, retry_after(response.getheader("retry-after")))
    except http.client.HTTPException as exc:
        raise OSError(f"bad HTTP response: {type(exc).__name__}") from None
    finally:
        connection.close()


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
