"""Expiring download links: an HMAC-SHA256 over the recording id and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


def signature(secret: bytes, recording_id: str, expires: int) -> str:
    message = f"{recording_id}.{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def make_url(
    base_url: str, secret: bytes, recording_id: str, ttl_seconds: int, now: float | None = None
) -> str:
    expires = int(now if now is not None else time.time()) + ttl_seconds
    query = urlencode({"expires": expires, "signature": signature(secret, recording_id, expires)})
    return f"{base_url.rstrip('/')}/recordings/{recording_id}/download?{query}"


def is_valid(
    secret: bytes, recording_id: str, expires: int, given: str, now: float | None = None
) -> bool:
    """True if `given` signs this recording and expiry, and the expiry has not passed."""
    if expires < int(now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature(secret, recording_id, expires), given)
