"""The recording-done webhook (and email): when one is due, and what the webhook says.

`schedule_due` (run by the delivery loop's webhook channel about once a second) finds
recordings not yet reported whose meeting has finished (the media server ended the call, or
end_date plus a grace period has passed) and writes one webhook row and one email row per
meeting for them (each if it is switched on), marking them reported in the same
transaction; recordings that arrive later get deliveries of their own. Every replica may run
it: each recording is reported once. `body` builds the JSON at send time, with fresh download
links.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from server.domain import (
    clock,
    meeting_settings,
    meetings,
    notifications,
    recordings,
    webhook_settings,
)
from server.domain.meeting_values import MeetingView
from server.storage import outbox, recording_rows
from server.storage.database import db
from server.storage.models import Meeting, User

TOPIC = "recordings_ready"
BATCH = 200


def webhook_id(dedupe_key: str) -> str:
    """The `webhook-id` of a delivery: stable across its retries, so receivers can drop repeats."""
    return f"msg_{dedupe_key.replace(':', '_')}"


def _iso(value: datetime | None) -> str | None:
    return clock.iso_ms(value) if value is not None else None


def meeting_json(view: MeetingView) -> dict[str, Any]:
    """The meeting as the REST API prints it."""
    return {
        "_id": view.id,
        "name": view.name,
        "start_date": view.start_date,
        "end_date": view.end_date,
        "attendees": [
            {k: v for k, v in (("id", a.id), ("email", a.email)) if v is not None}
            for a in view.attendees
        ],
        "public": view.public,
        "scheduled": view.scheduled,
        "record": view.record,
        "chat_dialog_id": view.chat_dialog_id,
        "created_at": clock.iso_ms(view.created_at),
        "updated_at": clock.iso_ms(view.updated_at),
        "host_id": view.host_id,
        "notify": view.notify,
        "notify_before": (
            {"metric": view.notify_before.metric, "value": view.notify_before.value}
            if view.notify_before
            else None
        ),
        "timezone": (
            {"offset": view.timezone.offset, "name": view.timezone.name} if view.timezone else None
        ),
    }


def user_json(user: Any) -> dict[str, Any]:
    return {
        "_id": user.object_id,
        "id": user.id,
        "created_at": _iso(user.created_at),
        "updated_at": _iso(user.updated_at),
        "last_request_at": _iso(user.last_request_at),
        "login": user.login,
        "full_name": user.full_name,
        "timezone": user.timezone,
        "email": user.email,
        "phone": user.phone,
        "website": user.website,
        "twitter_id": user.twitter_id,
        "external_user_id": user.external_user_id,
        "facebook_id": user.facebook_id,
        "custom_data": user.custom_data,
        "user_tags": user.user_tags,
        "avatar": user.avatar,
        "external_id": None,
        "is_guest": user.is_guest,
    }


def recording_json(view: recordings.RecordingView, download_url: str) -> dict[str, Any]:
    return {
        "_id": view.id,
        "room_id": view.meeting_id,
        "participants_count": len(view.participant_ids),
        "participants_ids": list(view.participant_ids),
        "file_uid": view.file_uid,
        "duration": view.duration,
        "size": view.size_mb,
        "updated_at": clock.iso_ms(view.updated_at),
        "created_at": clock.iso_ms(view.created_at),
        "download_url": download_url,
    }


def schedule_due(grace_seconds: float) -> int:
    """Write the deliveries for finished meetings' unreported recordings: the webhook (if it
    is on) and the recording-done email (if that is on); returns for how many meetings."""
    hook = webhook_settings.load().enabled
    config = meeting_settings.load()
    if not (hook or config.recording_email):
        return 0
    with db.atomic():
        by_meeting = recording_rows.claim_unreported(grace_seconds, BATCH)
        for meeting_id, recording_ids in by_meeting.items():
            row = Meeting.get_by_id(meeting_id)
            view = meetings.view_of(row)
            reported_by = None
            if config.recording_email:
                reported_by = notifications.recordings_ready(
                    view, recording_ids, to_attendees=config.recording_email_attendees
                )
            if hook:
                reported_by = _enqueue_webhook(view, row.host_id, recording_ids)
            recording_rows.mark_reported(recording_ids, reported_by)
    return len(by_meeting)


def _enqueue_webhook(view: MeetingView, host_id: int, recording_ids: list[str]) -> int | None:
    return outbox.enqueue(
        kind=outbox.Kind.WEBHOOK,
        topic=TOPIC,
        meeting_id=view.id,
        dedupe_key=f"{TOPIC}:{view.id}:{recording_ids[0]}",
        payload={
            "meeting": meeting_json(view),
            "hostUser": user_json(User.get_by_id(host_id)),
            "recording_ids": recording_ids,
        },
        recipients=[],
    )


def body(payload: dict[str, Any], links: recordings.DownloadLinks) -> bytes:
    """The JSON a delivery POSTs: the meeting and host as written, the recordings that still
    exist, each with a fresh download link."""
    found = recordings.by_ids(payload["recording_ids"])
    records = [
        recording_json(view, url) for view, url in zip(found, links.urls(found), strict=True)
    ]
    document = {
        "meeting": payload["meeting"],
        "hostUser": payload["hostUser"],
        "callRecords": records,
    }
    return json.dumps(document, separators=(",", ":")).encode()
