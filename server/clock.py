"""Time as the API shows it: UTC, truncated to milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current UTC time, truncated to milliseconds (what the API prints)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def iso_ms(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds: 2021-02-19T10:26:50.013Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
