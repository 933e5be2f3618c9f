"""Recording control events (record false->true "start", true->false "stop") for media servers.

Events are rows of `recording_events`, written in the meeting update's transaction under an
advisory lock, so ids are committed in increasing order and "everything after id N" never
skips one. An insert trigger NOTIFYs the `recording_events` channel; a watcher reads rows after
its cursor, then sleeps on LISTEN until the next notification (or a timeout), so it works
with any number of server replicas and resumes after a reconnect from the last id it saw.
"""

from __future__ import annotations

import select
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2

from server.storage import database
from server.storage.models import RecordingEvent

CHANNEL = "recording_events"
# Held while an event is inserted (transaction-scoped): commits happen in id order.
INSERT_LOCK = 7_242_002
BATCH = 500


@dataclass(frozen=True)
class ControlEvent:
    id: int
    meeting_id: str
    action: str
    created_at: datetime


def after(event_id: int, limit: int = BATCH) -> list[ControlEvent]:
    rows = (
        RecordingEvent.select()
        .where(RecordingEvent.id > event_id)
        .order_by(RecordingEvent.id)
        .limit(limit)
    )
    return [ControlEvent(int(r.id), r.meeting_id, r.action, r.created_at) for r in rows]


def last_id() -> int:
    row = RecordingEvent.select(RecordingEvent.id).order_by(RecordingEvent.id.desc()).first()
    return int(row.id) if row is not None else 0


class Listener:
    """A dedicated connection LISTENing on the channel (not from the pool: it waits long)."""

    def __init__(self, url: str) -> None:
        self._conn: Any = psycopg2.connect(**database.connection_params(url))
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """True if a notification arrived within `timeout` seconds."""
        if not self._conn.notifies:
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if ready:
                self._conn.poll()
        arrived = bool(self._conn.notifies)
        self._conn.notifies.clear()
        return arrived

    def close(self) -> None:
        self._conn.close()
