"""Recording control events (`record` false->true "start", true->false "stop"), in order.

Events are written in the meeting update's transaction under an advisory lock, so ids are
committed in increasing order and "everything after id N" never skips one. An insert trigger
NOTIFYs `CHANNEL` (see migrations), which wakes the watchers on every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.storage.database import db
from server.storage.models import RecordingEvent

CHANNEL = "recording_events"
# Held while an event is inserted (transaction-scoped): commits happen in id order.
INSERT_LOCK = 7_242_002


@dataclass(frozen=True)
class ControlEvent:
    id: int
    meeting_id: str
    action: str
    created_at: datetime


def insert(meeting_id: str, action: str, at: datetime) -> None:
    """Add an event (inside the meeting change's transaction)."""
    # Serialize event inserts until commit, so that ids commit in order and a media server
    # resuming "after id N" never misses one.
    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (INSERT_LOCK,))
    RecordingEvent.create(meeting_id=meeting_id, action=action, created_at=at)


def after(event_id: int, limit: int) -> list[ControlEvent]:
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
