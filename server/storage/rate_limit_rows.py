"""Fixed-window counters of attempts, one row per key, shared by every replica."""

from __future__ import annotations

from datetime import datetime, timedelta

from server.storage.database import db

# One statement counts the attempt and starts a new window when the old one is over, so
# concurrent attempts on several replicas never lose a count.
_HIT = (
    "INSERT INTO rate_limit_counters AS c (key, window_start, hits) VALUES (%s, %s, 1)"
    " ON CONFLICT (key) DO UPDATE SET"
    " hits = CASE WHEN c.window_start <= %s THEN 1 ELSE c.hits + 1 END,"
    " window_start = CASE WHEN c.window_start <= %s THEN EXCLUDED.window_start"
    " ELSE c.window_start END"
    " RETURNING hits, window_start"
)
_PEEK = "SELECT hits, window_start FROM rate_limit_counters WHERE key = %s AND window_start > %s"
_SWEEP = "DELETE FROM rate_limit_counters WHERE window_start < %s"


def hit(key: str, now: datetime, window: timedelta) -> tuple[int, datetime]:
    """Counts an attempt; (attempts in the current window, when that window started)."""
    started = now - window
    row = db.execute_sql(_HIT, (key, now, started, started)).fetchone()
    return int(row[0]), row[1]


def peek(key: str, now: datetime, window: timedelta) -> tuple[int, datetime] | None:
    """The current window's count without counting, or None if there is none."""
    row = db.execute_sql(_PEEK, (key, now - window)).fetchone()
    return None if row is None else (int(row[0]), row[1])


def sweep(before: datetime) -> None:
    db.execute_sql(_SWEEP, (before,))
