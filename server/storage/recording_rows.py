"""The recordings a recording-done webhook has not reported yet, claimed once across replicas."""

from __future__ import annotations

from collections.abc import Sequence

from server.storage.database import db
from server.storage.models import Recording


def claim_unreported(grace_seconds: float, limit: int) -> dict[str, list[str]]:
    """Unreported recordings of finished meetings (the call ended, or end_date plus the grace
    passed), oldest first, by meeting: `{meeting_id: [recording_id, ...]}`. Locked until the
    transaction ends; SKIP LOCKED lets every replica run this at once, each taking others."""
    rows = db.execute_sql(
        "SELECT r.id, r.meeting_id FROM recordings r JOIN meetings m ON m.id = r.meeting_id"
        " WHERE r.reported_by IS NULL AND (m.call_ended_at IS NOT NULL"
        "  OR m.end_date + %s < extract(epoch FROM now()))"
        " ORDER BY r.meeting_id, r.created_at, r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED",
        (grace_seconds, limit),
    ).fetchall()
    by_meeting: dict[str, list[str]] = {}
    for recording_id, meeting_id in rows:
        by_meeting.setdefault(meeting_id, []).append(recording_id)
    return by_meeting


def mark_reported(recording_ids: Sequence[str], outbox_id: int | None) -> None:
    Recording.update(reported_by=outbox_id).where(Recording.id.in_(list(recording_ids))).execute()
