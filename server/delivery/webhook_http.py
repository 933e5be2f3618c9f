"""Calling a webhook: Standard Webhooks signing, the address guard, and the HTTP request.

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
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TIMEOUT_SECONDS = 10.0
USER_AGENT = "meetings-api-webhooks/1"


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


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it: IPv4-compatible
# (deprecated) and the NAT64 prefixes (RFC 6052, RFC 8215), routed to IPv4 where a network runs
# a translator.
_LAST_32_BITS_IPV4 = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (6to4, Teredo, NAT64, IPv4-compatible)."""
    found = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in prefix for prefix in _LAST_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def allowed_address(address: IpAddress, allowed: Sequence[IpNetwork]) -> bool:
    """Whether we may connect to `address`: a network the operator allows, or a global unicast
    address that is not reserved and leads to no refused IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return True
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        # Judged as public addresses: an allow-list of IPv4 networks (127.0.0.0/8 for a local
        # receiver) names those addresses, not the IPv6 routes that lead to them.
        return all(allowed_address(inner, ()) for inner in _embedded_ipv4(address))
    return True


def resolve(host: str, port: int, allowed: Sequence[IpNetwork]) -> str:
    """The first acceptable address of `host`; RefusedAddress if any address is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedAddress(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refused = [str(a) for a in addresses if not allowed_address(a, allowed)]
    if refused or not addresses:
        raise RefusedAddress(f"{host} resolves to a non-public address ({', '.join(refused)})")
    return str(addresses[0])


def _connect(
    address: str, port: int, timeout: float | None, allowed: Sequence[IpNetwork]
) -> socket.socket:
    """A TCP connection to a checked address, checked again once connected (the peer is what
    the kernel actually reached)."""
    sock = socket.create_connection((address, port), timeout)
    peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
    if not allowed_address(peer, allowed):
        sock.close()
        raise RefusedAddress(f"connected to a non-public address ({peer})")
    return sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with SNI and certificate checks for the URL's host name."""

    def __init__(
        self, address: str, host: str, port: int, timeout: float, allowed: Sequence[IpNetwork]
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._allowed = allowed

    def connect(self) -> None:
        sock = _connect(self._address, self.port, self.timeout, self._allowed)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(
        self, address: str, host: str, port: int, timeout: float, allowed: Sequence[IpNetwork]
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._allowed = allowed

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self.timeout, self._allowed)


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
    connection = connection_type(address, host, port, timeout, allowed)
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
