"""Credentials of services, not users: the admin API key and the media server key.

Only a SHA-256 of each key is stored (the keys are 256-bit random strings, so a fast hash is
enough); they are compared in constant time. Server-side signing secrets (download links)
live here too, as random values made on first use and shared by every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from server.domain import clock, errors
from server.storage.models import ServiceKey, ServiceSecret

ADMIN = "admin"
MEDIA = "media"
KINDS = (ADMIN, MEDIA)
DOWNLOAD_SIGNING = "download_signing"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue(kind: str) -> str:
    """A new key for `kind` (replacing the old one); it is shown once and stored hashed."""
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}")
    key = f"{kind}_{secrets.token_urlsafe(32)}"
    (
        ServiceKey.insert(name=kind, key_hash=_hash(key), created_at=clock.now())
        .on_conflict(
            conflict_target=[ServiceKey.name],
            update={ServiceKey.key_hash: _hash(key), ServiceKey.created_at: clock.now()},
        )
        .execute()
    )
    return key


def check(kind: str, given: str | None) -> None:
    """Unauthenticated unless `given` is the current key of `kind`."""
    row = ServiceKey.get_or_none(ServiceKey.name == kind)
    expected = row.key_hash if row is not None else _hash(secrets.token_hex(16))
    if not given or not hmac.compare_digest(_hash(given), expected) or row is None:
        raise errors.Unauthenticated("A valid service key is required")


def existing_secret(name: str) -> bytes | None:
    """The server-side secret if it was ever made (checking a signature makes none)."""
    row = ServiceSecret.get_or_none(ServiceSecret.name == name)
    return None if row is None else bytes.fromhex(row.value)


def secret(name: str) -> bytes:
    """A server-side secret, made (once, race-free) on first use."""
    row = ServiceSecret.get_or_none(ServiceSecret.name == name)
    if row is None:
        (
            ServiceSecret.insert(name=name, value=secrets.token_hex(32), created_at=clock.now())
            .on_conflict_ignore()
            .execute()
        )
        row = ServiceSecret.get_by_id(name)
    return bytes.fromhex(row.value)
