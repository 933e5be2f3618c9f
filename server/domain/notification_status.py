"""What the host sees of a meeting's notifications: each email, its state, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.domain import auth, errors, meetings
from server.storage import outbox


@dataclass(frozen=True)
class Recipient:
    email: str | None
    user_id: int | None
    status: str
    detail: str | None


@dataclass(frozen=True)
class NotificationView:
    id: int
    topic: str
    status: str
    due_at: datetime
    attempts: int
    reason: str | None
    sent_at: datetime | None
    recipients: tuple[Recipient, ...]
    created_at: datetime
    updated_at: datetime


def for_host(caller: auth.Caller, meeting_id: str) -> list[NotificationView]:
    """The meeting's notifications, oldest first: NotFound unless visible, host only."""
    meeting = meetings.get(caller, meeting_id)
    if meeting.host_id != caller.user_id:
        raise errors.PermissionDenied("Only the host can see the notifications of this meeting")
    return [
        NotificationView(
            id=int(row.id),
            topic=row.topic,
            status=row.status,
            due_at=row.next_attempt_at,
            attempts=int(row.attempts),
            reason=row.last_error,
            sent_at=row.sent_at,
            recipients=tuple(
                Recipient(r.get("email"), r.get("user_id"), r["state"], r.get("detail"))
                for r in row.recipients
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in outbox.for_meeting(meeting_id)
        if row.kind == "email"
    ]
