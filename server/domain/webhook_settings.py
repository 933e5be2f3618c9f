"""The recording-done webhook's settings: URL, on/off (and why it was turned off), and the
Standard Webhooks signing secrets, kept with the meeting settings in the database.

During a rotation the previous secret keeps signing beside the new one for a while
(`PREVIOUS_SECRET_SECONDS`), so receivers can switch without losing a delivery.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from server.domain import clock, errors, meeting_settings, text
from server.storage.database import db

URL = "webhook_url"
ENABLED = "webhook_enabled"
DISABLED_REASON = "webhook_disabled_reason"
SECRETS = "webhook_secrets"
URL_MAX = 2048
PREVIOUS_SECRET_SECONDS = 86400
STATES = ("unset", "enabled", "disabled")


@dataclass(frozen=True)
class WebhookSettings:
    url: str = ""
    enabled: bool = False
    disabled_reason: str = ""
    # [(whsec_..., expires_at or None)], newest first.
    secrets: tuple[tuple[str, datetime | None], ...] = ()

    @property
    def state(self) -> str:
        """One of STATES: no URL, on, or turned off (by an operator or after a 410)."""
        return "unset" if not self.url else "enabled" if self.enabled else "disabled"

    def active_secrets(self, now: datetime) -> list[str]:
        return [s for s, expires in self.secrets if expires is None or expires > now]


def load() -> WebhookSettings:
    stored = meeting_settings.stored([URL, ENABLED, DISABLED_REASON, SECRETS])
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


def url_problems(url: str) -> list[str]:
    """Why `url` cannot be a webhook URL (its form only; addresses are checked per call)."""
    if url == "":
        return []
    if len(url) > URL_MAX:
        return [f"must be at most {URL_MAX} characters"]
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [ in the host
        return ["must be an http:// or https:// URL"]
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
    if url is not None and text.check(problems, "webhook_url", url):
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
        meeting_settings.store(values)
        if enabled and not current.secrets:
            _rotate(0)
    return load()


def disable(reason: str) -> None:
    """Turn the webhook off because of the receiver (e.g. it answered 410 Gone)."""
    meeting_settings.store({ENABLED: "false", DISABLED_REASON: reason[:500]})


def _rotate(previous_valid_seconds: int) -> str:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    now = clock.now()
    kept: list[dict[str, str | None]] = [{"secret": secret, "expires_at": None}]
    current = load()
    if current.secrets and previous_valid_seconds > 0:
        previous = current.secrets[0][0]
        expires = now + timedelta(seconds=previous_valid_seconds)
        kept.append({"secret": previous, "expires_at": expires.isoformat()})
    meeting_settings.store({SECRETS: json.dumps(kept)})
    return secret


def rotate_secret(previous_valid_seconds: int = PREVIOUS_SECRET_SECONDS) -> str:
    """A new signing secret (returned once); the previous one also signs for a while."""
    with db.atomic():
        return _rotate(previous_valid_seconds)
