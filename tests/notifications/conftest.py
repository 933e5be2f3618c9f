"""Fixtures for notification tests: a real SMTP server (aiosmtpd) on 127.0.0.1 and a sender."""

from __future__ import annotations

import asyncio
import email
import email.parser
import email.policy
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import icalendar
import pytest
from aiosmtpd.controller import Controller

from server.delivery import loop, mailer
from server.supervisor import free_port
from tests.delivery_helpers import email_loop


@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes
    at: float

    @functools.cached_property
    def message(self) -> EmailMessage:
        # Parsed when a test looks, not in the server's loop: parsing is slow.
        message = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @functools.cached_property
    def message_id(self) -> str:
        headers = email.parser.BytesHeaderParser().parsebytes(self.content)
        return str(headers["Message-ID"])

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                content = part.get_content()
                return content.decode() if isinstance(content, bytes) else str(content)
        raise AssertionError(f"no {content_type} part")

    def calendar(self) -> Any:
        """The attached invite.ics, parsed; it must equal the text/calendar alternative."""
        attached = next(part for part in self.message.walk() if part.get_filename() == "invite.ics")
        data = attached.get_content()
        assert data.decode() == self.part("text/calendar")
        return icalendar.Calendar.from_ical(data)

    def event(self) -> Any:
        return self.calendar().walk("VEVENT")[0]


@dataclass
class SmtpServer:
    """What the server received, and how it should answer (scripted per test)."""

    port: int
    received: list[Received] = field(default_factory=list)
    # address -> replies to RCPT TO, used up one per attempt; a reply without a count stays.
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    always_refuse: dict[str, str] = field(default_factory=dict)
    # Replies to the next DATA commands (the message is not kept), in order.
    data_replies: list[str] = field(default_factory=list)
    # Seconds each accepted message takes (a slow server); the n-th message kept is not
    # answered until `release` is set.
    data_delay: float = 0.0
    hold_at: int | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def subjects(self) -> list[str]:
        return [r.subject for r in self.received]


class _Handler:
    def __init__(self, state: SmtpServer) -> None:
        self.state = state

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.state.lock:
            self.state.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        state = self.state
        if address in state.always_refuse:
            return state.always_refuse[address]
        replies = state.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        state = self.state
        if state.data_replies:
            return state.data_replies.pop(0)
        if state.data_delay:
            await asyncio.sleep(state.data_delay)
        with state.lock:
            state.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, time.time())
            )
            hold = state.hold_at == len(state.received)
        if hold:
            # Kept, but the "250" is held back: the window in which a sender that dies has
            # delivered a message without knowing it.
            state.holding.set()
            while not state.release.is_set():
                await asyncio.sleep(0.01)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    state = SmtpServer(port=free_port("127.0.0.1"))
    controller = Controller(_Handler(state), hostname="127.0.0.1", port=state.port)
    controller.start()
    yield state
    state.release.set()
    controller.stop()


@pytest.fixture
def deliverer(smtp: SmtpServer, db: Any) -> Iterator[loop.DeliveryLoop]:
    """A sender driven step by step by the test (rand fixed: the middle of the jitter)."""
    sender = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)),
        worker_id="test-sender",
        lease_seconds=30,
        rand=lambda: 0.5,
    )
    yield sender
    sender.close()


def deliver_all(sender: loop.DeliveryLoop, passes: int = 50) -> int:
    """Run passes until one finds nothing due; returns how many rows were claimed."""
    total = 0
    for _ in range(passes):
        claimed = sender.run_once()
        if not claimed:
            return total
        total += claimed
    raise AssertionError("still claiming after many passes")


def make_due(pool: Any, meeting_id: str | None = None) -> int:
    """Bring scheduled rows (of one meeting) forward to now: time travel for reminders and
    retries."""
    cursor = pool.execute_sql(
        "UPDATE outbox SET next_attempt_at = now() WHERE status = 'scheduled'"
        " AND (%s::text IS NULL OR meeting_id = %s)",
        (meeting_id, meeting_id),
    )
    return int(cursor.rowcount)


def outbox_rows(pool: Any, meeting_id: str | None = None) -> list[dict[str, Any]]:
    cursor = pool.execute_sql(
        "SELECT id, topic, status, recipients, attempts, last_error, next_attempt_at, payload,"
        " extract(epoch FROM next_attempt_at - now()) AS due_in"
        " FROM outbox WHERE %s::text IS NULL OR meeting_id = %s ORDER BY id",
        (meeting_id, meeting_id),
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
