"""Reminder delivery: many reminders due at one moment, and reminders falling due at a steady
rate, sent by the servers' delivery loops.

One reminder is planned by the service itself (meetings.create with notify_before) and copied
in SQL to outbox rows, due at the same moment or spread at a steady rate; the running servers
send them to a local SMTP sink (aiosmtpd). Lateness is each row's sent_at against its
payload's due_at. The baseline is a plain smtplib loop sending the same message to the same
sink.
"""

from __future__ import annotations

import smtplib
import threading
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from server import supervisor
from server.domain import (
    auth,
    clock,
    emails,
    meeting_settings,
    meeting_values,
    meetings,
)
from server.domain.meeting_values import Attendee, NotifyBefore

PREFIX = "bench-reminder"


class _Sink:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts and counts every message."""

    def __init__(self) -> None:
        self.handler = _Sink()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=supervisor.free_port("127.0.0.1")
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class DeliveryResult:
    messages: int
    seconds: float
    p50_late_ms: float
    p99_late_ms: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def template_reminder(db: Any, caller: auth.Caller, attendee_ids: tuple[int, ...]) -> int:
    """Plan one real reminder through the service's own create; returns its outbox id."""
    start = int(time.time()) + 7 * 86400
    patch = meeting_values.MeetingPatch(
        name="Bench reminder",
        start_date=start,
        end_date=start + 1800,
        attendees=tuple(Attendee(id=i) for i in attendee_ids),
        notify=True,
        notify_before=NotifyBefore("hours", 1),
        present=frozenset({"name", "start_date", "end_date", "attendees", "notify"}),
    )
    with db.connection_context():
        view = meetings.create(caller, patch)
        row = db.execute_sql(
            "SELECT id FROM outbox WHERE meeting_id = %s AND topic = 'reminder'", (view.id,)
        ).fetchone()
        # The invitation that create also wrote is not part of this benchmark.
        db.execute_sql(
            "DELETE FROM outbox WHERE meeting_id = %s AND topic <> 'reminder'", (view.id,)
        )
    return int(row[0])


def schedule_copies(db: Any, template: int, count: int, tag: str, lead_seconds: float) -> float:
    """`count` copies of the template row, all due `lead_seconds` from now; returns the due time.
    The copies name no meeting (one live reminder per meeting is the rule); they carry it."""
    due = int(time.time() + lead_seconds) + 1
    with db.connection_context():
        db.execute_sql(
            "INSERT INTO outbox (kind, topic, meeting_id, dedupe_key, payload, recipients, status,"
            " next_attempt_at)"
            " SELECT kind, topic, NULL, %s || g,"
            " jsonb_set(payload, '{due_at}', to_jsonb(%s)), recipients, 'scheduled',"
            " to_timestamp(%s)"
            " FROM outbox, generate_series(1, %s) AS g WHERE id = %s",
            (f"{PREFIX}:{tag}:", due, due, count, template),
        )
        # Wake the delivery loops (as the service's own writes do) so they sleep until due.
        db.execute_sql("SELECT pg_notify('meetings_outbox', '')")
    return float(due)


def schedule_steady(
    db: Any, template: int, rate: int, seconds: float, tag: str, lead_seconds: float
) -> float:
    """Copies of the template row falling due one after another at `rate` per second for
    `seconds`, the first `lead_seconds` from now (the realistic shape: many meetings, spread
    out, all planned well ahead); returns when the last falls due."""
    first = time.time() + lead_seconds
    count = int(rate * seconds)
    with db.connection_context():
        db.execute_sql(
            "INSERT INTO outbox (kind, topic, meeting_id, dedupe_key, payload, recipients, status,"
            " next_attempt_at)"
            " SELECT kind, topic, NULL, %s || g,"
            " jsonb_set(payload, '{due_at}', to_jsonb(%s + (g - 1)::float8 / %s)), recipients,"
            " 'scheduled', to_timestamp(%s + (g - 1)::float8 / %s)"
            " FROM outbox, generate_series(1, %s) AS g WHERE id = %s",
            (f"{PREFIX}:{tag}:", first, rate, first, rate, count, template),
        )
        db.execute_sql("SELECT pg_notify('meetings_outbox', '')")
    return first + (count - 1) / rate


def wait_delivered(db: Any, tag: str, count: int, due: float, timeout: float) -> DeliveryResult:
    deadline = time.monotonic() + max(due - time.time(), 0) + timeout
    like = f"{PREFIX}:{tag}:%"
    while time.monotonic() < deadline:
        with db.connection_context():
            done = db.execute_sql(
                "SELECT count(*) FROM outbox"
                " WHERE dedupe_key LIKE %s AND status IN ('sent', 'failed')",
                (like,),
            ).fetchone()[0]
        if done >= count:
            break
        time.sleep(0.25)
    with db.connection_context():
        rows = db.execute_sql(
            "SELECT extract(epoch FROM sent_at) - (payload->>'due_at')::float FROM outbox"
            " WHERE dedupe_key LIKE %s AND status = 'sent' ORDER BY 1",
            (like,),
        ).fetchall()
    late = [float(r[0]) * 1000 for r in rows]
    if not late:
        return DeliveryResult(0, 0.0, 0.0, 0.0)
    return DeliveryResult(
        messages=len(late),
        seconds=max(late) / 1000,
        p50_late_ms=late[len(late) // 2],
        p99_late_ms=late[min(len(late) - 1, int(0.99 * len(late)))],
    )


def discard_unsent(db: Any, tag: str) -> int:
    """Cancel the copies still unsent after a run (it timed out), so that the next run does not
    deliver them; returns how many there were."""
    with db.connection_context():
        cursor = db.execute_sql(
            "UPDATE outbox SET status = 'cancelled', version = version + 1,"
            " last_error = 'benchmark run over' WHERE dedupe_key LIKE %s"
            " AND status NOT IN ('sent', 'failed', 'cancelled')",
            (f"{PREFIX}:{tag}:%",),
        )
        return int(cursor.rowcount)


def rendered_message(db: Any, template: int) -> tuple[Message, str, list[str]]:
    """The template reminder rendered as the delivery loop renders it."""
    with db.connection_context():
        payload, recipients = db.execute_sql(
            "SELECT payload, recipients FROM outbox WHERE id = %s", (template,)
        ).fetchone()
        config = meeting_settings.load()
    to = [r["email"] for r in recipients if r.get("email")]
    message = emails.render(
        "reminder",
        emails.MeetingInfo.from_json(payload["meeting"]),
        to,
        config,
        message_id=emails.message_id(f"{PREFIX}:plain", template, config.sender_address),
        now=clock.now(),
    )
    return message, config.sender_address, to


def plain_smtplib(
    port: int, message: Message, sender: str, to: list[str], count: int, timeout: float
) -> DeliveryResult:
    """The same message `count` times over one connection; bounded by `timeout`."""
    started = time.monotonic()
    sent = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        while sent < count and time.monotonic() - started < timeout:
            smtp.send_message(message, sender, to)
            sent += 1
    return DeliveryResult(sent, time.monotonic() - started, 0.0, 0.0)
