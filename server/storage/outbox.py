"""The outbox: messages to deliver, written in the transaction of the change that caused them.

A row is `scheduled` until a sender claims it (`sending`, with a lease), then `sent`, `failed`
(with the reason), or back to `scheduled` for a retry; a reminder that no longer applies is
`cancelled`. `version` is a fencing token: every claim and every change bumps it, and a sender
only sends or records what it claimed at that version, so a reminder that was moved or
cancelled after its claim is not sent, and a sender whose lease was taken over records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg2.extras import Json

from server.storage.database import db
from server.storage.models import Outbox
from server.telemetry import tracing

# The channel that wakes the delivery loops when a row is written (NOTIFY is sent at commit).
CHANNEL = "meetings_outbox"


class Kind(StrEnum):
    """What a row delivers, and so which delivery channel sends it."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class Status(StrEnum):
    """A row's state (the `status` column); see the module doc."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RecipientState(StrEnum):
    """One address of an email (the `state` of each entry of the `recipients` column)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Recipient:
    email: str | None
    user_id: int | None
    state: str
    detail: str | None


@dataclass(frozen=True)
class Entry:
    """A row as the host and the operators see it: what it is, its state, and why."""

    id: int
    kind: str
    topic: str
    meeting_id: str | None
    dedupe_key: str
    status: str
    attempts: int
    last_error: str | None
    due_at: datetime
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True)
class Claimed:
    """A row a sender holds: it may act on it while the row is still at `version`."""

    id: int
    version: int
    kind: str
    topic: str
    meeting_id: str | None
    dedupe_key: str
    payload: dict[str, Any]
    recipients: list[dict[str, Any]]
    attempts: int
    # The W3C traceparent of the request that wrote the row (None: it was not traced).
    traceparent: str | None = None


def wake_senders() -> None:
    """Wake the delivery loops once the current transaction commits."""
    db.execute_sql("SELECT pg_notify(%s, '')", (CHANNEL,))


def enqueue(
    *,
    topic: str,
    meeting_id: str | None,
    dedupe_key: str,
    payload: dict[str, Any],
    recipients: Sequence[dict[str, Any]],
    due: datetime | None = None,
    kind: Kind = Kind.EMAIL,
    status: Status = Status.SCHEDULED,
    reason: str | None = None,
) -> int | None:
    """Insert a row (due now unless `due`); None if a row with this dedupe key exists. The
    current trace's traceparent goes with it: its delivery's span links back to this request."""
    with tracing.span("outbox write", **{"messaging.destination.name": f"{kind}.{topic}"}):
        cursor = db.execute_sql(
            "INSERT INTO outbox (kind, topic, meeting_id, dedupe_key, payload, recipients,"
            " status, next_attempt_at, last_error, traceparent)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s)"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            (
                kind,
                topic,
                meeting_id,
                dedupe_key,
                Json(payload),
                Json(list(recipients)),
                status,
                due,
                reason,
                tracing.traceparent(),
            ),
        )
        row = cursor.fetchone()
    if row is not None and status == Status.SCHEDULED:
        wake_senders()
    return None if row is None else int(row[0])


def revive_or_enqueue(
    *,
    topic: str,
    meeting_id: str,
    dedupe_key: str,
    payload: dict[str, Any],
    recipients: Sequence[dict[str, Any]],
    due: datetime,
) -> int | None:
    """Like enqueue, but a cancelled row with the same key is scheduled again (a reminder
    turned off and on again); a row that was sent is left alone (never remind twice)."""
    with tracing.span("outbox write", **{"messaging.destination.name": f"email.{topic}"}):
        cursor = db.execute_sql(
            "INSERT INTO outbox (kind, topic, meeting_id, dedupe_key, payload, recipients,"
            " status, next_attempt_at, traceparent)"
            " VALUES ('email', %s, %s, %s, %s, %s, 'scheduled', %s, %s)"
            " ON CONFLICT (dedupe_key) DO UPDATE SET status = 'scheduled',"
            " payload = excluded.payload, recipients = excluded.recipients,"
            " next_attempt_at = excluded.next_attempt_at, attempts = 0, last_error = NULL,"
            " lease_owner = NULL, lease_expires_at = NULL, version = outbox.version + 1,"
            " traceparent = excluded.traceparent, updated_at = now()"
            " WHERE outbox.status = 'cancelled' RETURNING id",
            (
                topic,
                meeting_id,
                dedupe_key,
                Json(payload),
                Json(list(recipients)),
                due,
                tracing.traceparent(),
            ),
        )
        row = cursor.fetchone()
    if row is not None:
        wake_senders()
    return None if row is None else int(row[0])


def live_reminder(meeting_id: str) -> Any:
    """The meeting's reminder waiting to go out (scheduled or being sent), locked, or None."""
    return (
        Outbox.select()
        .where(
            Outbox.meeting_id == meeting_id,
            Outbox.topic == "reminder",
            Outbox.status.in_([Status.SCHEDULED, Status.SENDING]),
        )
        .for_update()
        .first()
    )


def cancel(row_id: int, reason: str) -> None:
    """Cancel a row; a sender that already claimed it will find it changed and not send."""
    db.execute_sql(
        "UPDATE outbox SET status = 'cancelled', last_error = %s, version = version + 1,"
        " lease_owner = NULL, lease_expires_at = NULL, updated_at = now() WHERE id = %s",
        (reason, row_id),
    )


def refresh(row_id: int, payload: dict[str, Any], recipients: Sequence[dict[str, Any]]) -> None:
    """New content for a scheduled row (the meeting changed, its time did not)."""
    db.execute_sql(
        "UPDATE outbox SET payload = %s, recipients = %s, version = version + 1,"
        " updated_at = now() WHERE id = %s AND status = 'scheduled'",
        (Json(payload), Json(list(recipients)), row_id),
    )


def claim(
    owner: str, limit: int, lease_seconds: float, kinds: Sequence[str] = (Kind.EMAIL,)
) -> list[Claimed]:
    """Take up to `limit` due rows of `kinds` (and such rows whose sender's lease ran out).

    SKIP LOCKED lets several senders claim side by side without waiting on each other; the
    claim commits at once, so no row lock is held while sending.
    """
    with db.atomic():
        _relaxed_commit()
        cursor = db.execute_sql(
            "WITH picked AS ("
            " SELECT id FROM outbox WHERE kind = ANY(%s) AND ("
            "  (status = 'scheduled' AND next_attempt_at <= now())"
            "  OR (status = 'sending' AND lease_expires_at <= now()))"
            " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE outbox o SET status = 'sending', attempts = o.attempts + 1,"
            " version = o.version + 1, lease_owner = %s,"
            " lease_expires_at = now() + make_interval(secs => %s), updated_at = now()"
            " FROM picked WHERE o.id = picked.id"
            " RETURNING o.id, o.version, o.kind, o.topic, o.meeting_id, o.dedupe_key,"
            " o.payload, o.recipients, o.attempts, o.traceparent",
            (list(kinds), limit, owner, lease_seconds),
        )
        rows = cursor.fetchall()
    claimed = [Claimed(*row) for row in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


def still_ours(job: Claimed, lease_seconds: float) -> bool:
    """Just before sending: is the row unchanged since our claim? Renews the lease if so.

    An UPDATE rather than a read, so that it waits for a meeting change that holds the row
    and then sees its outcome.
    """
    with db.atomic():
        _relaxed_commit()
        cursor = db.execute_sql(
            "UPDATE outbox SET lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE id = %s AND version = %s AND status = 'sending' RETURNING id",
            (lease_seconds, job.id, job.version),
        )
        return cursor.fetchone() is not None


def _relaxed_commit() -> None:
    """Commit this transaction without waiting for the disk: a database crash may undo it,
    but only with everything after it in the WAL, so at worst a row is claimed again. The
    commit that records a send does wait: undoing many of those would resend many messages."""
    db.execute_sql("SET LOCAL synchronous_commit = off")


def finish_then_check(
    job: Claimed,
    *,
    status: Status,
    recipients: Sequence[dict[str, Any]],
    error: str | None,
    retry_in: float | None = None,
    following: Claimed | None = None,
    lease_seconds: float = 0.0,
) -> tuple[bool, bool]:
    """Record a send (`sent`, `failed`, or `scheduled` again in `retry_in` seconds) and, in the
    same statement, `still_ours(following)`: (recorded, following ours). `recorded` is False if
    the row changed since the claim (the result is then not ours to record).

    One round trip and one synchronous commit per message instead of two round trips: the
    record of this send is on disk before the next one starts. Senders
    lock their rows in claim order (ascending id), so two of them cannot deadlock here; a
    meeting change holding `following` is waited for, as in `still_ours`.
    """
    cursor = db.execute_sql(
        "WITH finished AS (UPDATE outbox SET status = %s, recipients = %s, last_error = %s,"
        "  next_attempt_at = CASE WHEN %s::float8 IS NULL THEN next_attempt_at"
        "   ELSE now() + make_interval(secs => %s::float8) END,"
        "  sent_at = CASE WHEN %s = 'sent' THEN now() ELSE sent_at END,"
        "  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
        "  WHERE id = %s AND version = %s AND status = 'sending' RETURNING id),"
        " checked AS (UPDATE outbox SET lease_expires_at = now() + make_interval(secs => %s)"
        "  WHERE id = %s AND version = %s AND status = 'sending' RETURNING id)"
        " SELECT EXISTS (SELECT 1 FROM finished), EXISTS (SELECT 1 FROM checked)",
        (
            status,
            Json(list(recipients)),
            error,
            retry_in,
            retry_in,
            status,
            job.id,
            job.version,
            lease_seconds,
            None if following is None else following.id,
            None if following is None else following.version,
        ),
    )
    recorded, ours = cursor.fetchone()
    return bool(recorded), bool(ours)


def release(jobs: Sequence[Claimed]) -> None:
    """Give back claimed rows that were not attempted (shutdown): due again at once."""
    for job in jobs:
        db.execute_sql(
            "UPDATE outbox SET status = 'scheduled', attempts = attempts - 1,"
            " lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
            " WHERE id = %s AND version = %s AND status = 'sending'",
            (job.id, job.version),
        )
    if jobs:
        wake_senders()


def seconds_until_due(kinds: Sequence[str] = (Kind.EMAIL,)) -> float | None:
    """Seconds until the next row of `kinds` falls due or a lease runs out (<= 0: now);
    None if none."""
    cursor = db.execute_sql(
        "SELECT extract(epoch FROM least("
        " (SELECT min(next_attempt_at) FROM outbox WHERE status = 'scheduled'"
        "  AND kind = ANY(%s)),"
        " (SELECT min(lease_expires_at) FROM outbox WHERE status = 'sending'"
        "  AND kind = ANY(%s))) - now())",
        (list(kinds), list(kinds)),
    )
    row = cursor.fetchone()
    return None if row is None or row[0] is None else float(row[0])


def entries_for_meeting(meeting_id: str) -> list[Entry]:
    """Every row of a meeting, oldest first."""
    rows = Outbox.select().where(Outbox.meeting_id == meeting_id).order_by(Outbox.id)
    return [_entry(row) for row in rows]


def webhook_entries(limit: int, offset: int) -> tuple[list[Entry], int]:
    """A page of webhook rows of every meeting, newest first, and how many there are."""
    selected = Outbox.select().where(Outbox.kind == Kind.WEBHOOK)
    rows = selected.order_by(Outbox.id.desc()).limit(limit).offset(offset)
    return [_entry(row) for row in rows], selected.count()


def entry(row_id: int) -> Entry:
    return _entry(Outbox.get_by_id(row_id))


def locked(row_id: int, kind: Kind) -> Any:
    """The row of `kind` with this id, locked until the transaction ends, or None."""
    return Outbox.select().where(Outbox.id == row_id, Outbox.kind == kind).for_update().first()


def copies_of(dedupe_key: str) -> int:
    """How many copies of the row with this key were sent again (keys `<key>:resend:<n>`)."""
    return int(Outbox.select().where(Outbox.dedupe_key.startswith(f"{dedupe_key}:resend:")).count())


def due_now(row_id: int) -> None:
    """Make a row that is not being sent due again now (one more attempt, same key)."""
    db.execute_sql(
        "UPDATE outbox SET status = 'scheduled', next_attempt_at = now(),"
        " version = version + 1, lease_owner = NULL, lease_expires_at = NULL,"
        " updated_at = now() WHERE id = %s",
        (row_id,),
    )
    wake_senders()


def _entry(row: Any) -> Entry:
    return Entry(
        id=int(row.id),
        kind=row.kind,
        topic=row.topic,
        meeting_id=row.meeting_id,
        dedupe_key=row.dedupe_key,
        status=row.status,
        attempts=int(row.attempts),
        last_error=row.last_error,
        due_at=row.next_attempt_at,
        sent_at=row.sent_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        recipients=tuple(
            Recipient(r.get("email"), r.get("user_id"), r["state"], r.get("detail"))
            for r in row.recipients or ()
        ),
    )


@dataclass(frozen=True)
class Backlog:
    """What waits to be sent, of one kind: rows due now (not yet claimed), rows being sent,
    and how long ago the longest-waiting of them fell due (0 when none)."""

    kind: str
    due: int
    sending: int
    oldest_due_seconds: float


def backlog() -> list[Backlog]:
    """Every kind's backlog, from the two partial indexes (rows due later are not read: a
    million scheduled reminders cost this query nothing)."""
    cursor = db.execute_sql(
        "SELECT kind, count(*) FILTER (WHERE status = 'scheduled'),"
        " count(*) FILTER (WHERE status = 'sending'),"
        " coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)"
        " FROM outbox WHERE (status = 'scheduled' AND next_attempt_at <= now())"
        " OR (status = 'sending' AND lease_expires_at IS NOT NULL)"
        " GROUP BY kind"
    )
    found = {
        kind: Backlog(kind, due, sending, max(float(age), 0.0))
        for kind, due, sending, age in cursor.fetchall()
    }
    return [found.get(kind, Backlog(kind, 0, 0, 0.0)) for kind in Kind]
