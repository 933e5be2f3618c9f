"""The recording-done webhook through the outbox: when to send one, and sending it.

`schedule_due` (run by the delivery loop every pass) finds recordings not yet reported whose
meeting has finished (the media server ended the call, or end_date plus a grace period has
passed) and writes one outbox row per meeting for them, marking them reported in the same
transaction; recordings that arrive later get a delivery of their own. `FOR UPDATE SKIP
LOCKED` lets every replica run it: each recording is reported once.

`WebhookSender.deliver` builds the body at send time (fresh download links), signs it for
every active secret, checks the address and POSTs it: 2xx is done; 410 turns the webhook off
and records why; 3xx (never followed), other statuses and network errors are retried over
about three days, honouring Retry-After.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.delivery import webhook_http as webhooks
from server.domain import clock, meetings, recordings
from server.storage import outbox
from server.storage.database import db
from server.storage.models import Meeting, User

log = logging.getLogger(__name__)

TOPIC = "recordings_ready"
BATCH = 200

# Retry delays in seconds after attempt 1, 2, ...: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 20h
# (about 72 hours in all), each spread by ±20%; then the delivery fails.
RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 72000.0)
RETRY_JITTER = 0.2
RETRY_AFTER_MAX = 86400.0


def webhook_id(dedupe_key: str) -> str:
    """The `webhook-id` of a delivery: stable across its retries, so receivers can drop repeats."""
    return f"msg_{dedupe_key.replace(':', '_')}"


def retry_delay(attempts: int, rand: float, retry_after: float | None = None) -> float | None:
    """Seconds before attempt `attempts + 1`, or None to give up (see RETRY_DELAYS).

    A receiver's Retry-After wins when it asks for longer (capped at a day)."""
    if attempts > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempts - 1] * (1 - RETRY_JITTER + 2 * RETRY_JITTER * rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX))
    return delay


def _iso(value: datetime | None) -> str | None:
    return clock.iso_ms(value) if value is not None else None


def meeting_json(view: meetings.MeetingView) -> dict[str, Any]:
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
    """Write webhook deliveries for finished meetings' unreported recordings; returns how many."""
    if not webhooks.load().enabled:
        return 0
    with db.atomic():
        rows = db.execute_sql(
            "SELECT r.id, r.meeting_id FROM recordings r JOIN meetings m ON m.id = r.meeting_id"
            " WHERE r.reported_by IS NULL AND (m.call_ended_at IS NOT NULL"
            "  OR m.end_date + %s < extract(epoch FROM now()))"
            " ORDER BY r.meeting_id, r.created_at, r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED",
            (grace_seconds, BATCH),
        ).fetchall()
        by_meeting: dict[str, list[str]] = {}
        for recording_id, meeting_id in rows:
            by_meeting.setdefault(meeting_id, []).append(recording_id)
        for meeting_id, recording_ids in by_meeting.items():
            row = Meeting.get_by_id(meeting_id)
            view = meetings.view_of(row)
            host = User.get_by_id(row.host_id)
            outbox_id = outbox.enqueue(
                kind="webhook",
                topic=TOPIC,
                meeting_id=meeting_id,
                dedupe_key=f"{TOPIC}:{meeting_id}:{recording_ids[0]}",
                payload={
                    "meeting": meeting_json(view),
                    "hostUser": user_json(host),
                    "recording_ids": recording_ids,
                },
                recipients=[],
            )
            (
                recordings.Recording.update(reported_by=outbox_id)
                .where(recordings.Recording.id.in_(recording_ids))
                .execute()
            )
    return len(by_meeting)


@dataclass(frozen=True)
class Result:
    status: str  # an outbox status: sent, failed or scheduled (retry)
    error: str | None
    retry_in: float | None


class WebhookSender:
    def __init__(
        self,
        *,
        public_base_url: str,
        link_ttl_seconds: int,
        allowed_networks: Sequence[webhooks.IpNetwork],
        timeout: float = webhooks.TIMEOUT_SECONDS,
    ) -> None:
        self.public_base_url = public_base_url
        self.link_ttl_seconds = link_ttl_seconds
        self.allowed_networks = tuple(allowed_networks)
        self.timeout = timeout

    def body(self, payload: dict[str, Any]) -> bytes:
        found = recordings.by_ids(payload["recording_ids"])
        urls = recordings.download_urls(
            self.public_base_url, (view.id for view in found), self.link_ttl_seconds
        )
        records = [recording_json(view, url) for view, url in zip(found, urls, strict=True)]
        document = {
            "meeting": payload["meeting"],
            "hostUser": payload["hostUser"],
            "callRecords": records,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def deliver(
        self, dedupe_key: str, payload: dict[str, Any], attempts: int, rand: float
    ) -> Result:
        """One attempt (call with a database connection open; no row lock held)."""
        config = webhooks.load()
        if not config.enabled or not config.url:
            reason = config.disabled_reason or "the webhook is turned off"
            return Result("cancelled", f"not sent: {reason}", None)
        now = clock.now()
        secrets_in_use = config.active_secrets(now)
        body = self.body(payload)
        message_id = webhook_id(dedupe_key)
        headers = webhooks.headers(secrets_in_use, message_id, int(now.timestamp()), body)
        try:
            response = webhooks.post(config.url, body, headers, self.allowed_networks, self.timeout)
        except webhooks.RefusedAddress as exc:
            return Result("failed", f"refused: {exc}", None)
        except OSError as exc:
            return _retry(attempts, rand, f"network error: {type(exc).__name__}: {exc}", None)
        if 200 <= response.status < 300:
            return Result("sent", None, None)
        if response.status == 410:
            reason = f"the receiver answered 410 Gone at {clock.iso_ms(now)}; webhook turned off"
            webhooks.disable(reason)
            return Result("failed", reason, None)
        what = "a redirect (not followed)" if 300 <= response.status < 400 else "an error"
        return _retry(attempts, rand, f"HTTP {response.status}: {what}", response.retry_after)


def _retry(attempts: int, rand: float, error: str, retry_after: float | None) -> Result:
    delay = retry_delay(attempts, rand, retry_after)
    if delay is None:
        return Result("failed", f"gave up after {attempts} attempts: {error}", None)
    return Result("scheduled", f"retrying: {error}", delay)


def failure_result(attempts: int, rand: float, exc: Exception) -> Result:
    """An attempt that failed inside our own code: retried like a network error."""
    return _retry(attempts, rand, f"internal error: {type(exc).__name__}", None)
