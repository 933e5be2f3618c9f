"""The session lookup that every authenticated RPC runs, as a prepared statement.

SQL text rather than a Peewee query: compiling the query cost more CPU than the lookup itself
(make bench profile)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.storage.database import execute_prepared

_LIVE_SESSION = (
    "SELECT s.id, s.expires_at, s.application_id, u.id, u.login, u.email, u.is_guest"
    " FROM sessions s LEFT JOIN users u ON u.id = s.user_id"
    " WHERE s.token_hash = %s AND s.expires_at > %s"
)


def by_token_hash(token_hash: str, now: datetime) -> tuple[Any, ...] | None:
    """(session id, expires_at, application id, user id, login, email, is_guest) of a live
    session, or None; the user's columns are NULL for an application session."""
    row: tuple[Any, ...] | None = execute_prepared(_LIVE_SESSION, (token_hash, now)).fetchone()
    return row
