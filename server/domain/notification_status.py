"""What the host sees of a meeting's notifications: each email, its state, and why."""

from __future__ import annotations

from server.domain import auth, errors, meetings
from server.storage import outbox


def for_host(caller: auth.Caller, meeting_id: str) -> list[outbox.Entry]:
    """The meeting's emails, oldest first: NotFound unless visible, host only."""
    meeting = meetings.get(caller, meeting_id)
    if meeting.host_id != caller.user_id:
        raise errors.PermissionDenied("Only the host can see the notifications of this meeting")
    entries = outbox.entries_for_meeting(meeting_id)
    return [entry for entry in entries if entry.kind == outbox.Kind.EMAIL]
