"""Delivery loops for tests, built the way server.app builds them."""

from __future__ import annotations

import ipaddress
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.delivery import email_sender, loop, mailer, webhook_http, webhook_sender
from server.domain import recordings
from server.storage.recording_files import FilesystemStorage, Storage


def networks(*specs: str) -> tuple[webhook_http.IpNetwork, ...]:
    return tuple(ipaddress.ip_network(spec) for spec in specs)


def email_loop(
    mail: mailer.Mailer,
    *,
    rand: Callable[[], float] | None = None,
    links: recordings.DownloadLinks | None = None,
    **options: Any,
) -> loop.DeliveryLoop:
    """A loop that sends email only (webhook rows are left alone). Without `links`, the
    recording-done email's links point at recordings no test stores."""
    unused = recordings.DownloadLinks(FilesystemStorage(Path("unused")), "http://127.0.0.1:9", 60)
    channel = email_sender.EmailChannel(mail, links or unused, rand=rand or random.random)
    return loop.DeliveryLoop([channel], **options)


def full_loop(
    mail: mailer.Mailer,
    *,
    base_url: str,
    storage: Storage,
    allowed: tuple[webhook_http.IpNetwork, ...],
    rand: Callable[[], float] | None = None,
    timeout: float = webhook_http.TIMEOUT_SECONDS,
    **options: Any,
) -> loop.DeliveryLoop:
    """A loop with both channels, as every server process runs it."""
    pick = rand or random.random
    links = recordings.DownloadLinks(storage, base_url, 3600)
    webhook = webhook_sender.WebhookChannel(
        links=links, allowed_networks=allowed, timeout=timeout, rand=pick
    )
    email = email_sender.EmailChannel(mail, links, rand=pick)
    return loop.DeliveryLoop([email, webhook], **options)


# The meeting a load of reminder rows is about (enqueue_reminders).
REMINDER_MEETING = {
    "name": "Load test",
    "start_date": 1894694400,
    "end_date": 1894698000,
    "timezone": "Europe/Riga",
    "version": 1,
    "organizer": {"email": "host@example.com", "name": "Host", "user_id": 1},
    "attendees": [],
}


def enqueue_reminders(db: Any, first: int, count: int, due_in: float, spread: float) -> None:
    """`count` reminder rows due `due_in` seconds from now, `spread` seconds apart."""
    db.execute_sql(
        "INSERT INTO outbox (kind, topic, meeting_id, dedupe_key, payload, recipients, status,"
        " next_attempt_at)"
        " SELECT 'email', 'reminder', lpad(to_hex(i), 24, '0'), 'reminder:load:' || i,"
        "  jsonb_build_object('meeting', %s::jsonb || jsonb_build_object('id',"
        "   lpad(to_hex(i), 24, '0')), 'due_at', extract(epoch FROM due)),"
        "  jsonb_build_array(jsonb_build_object('email', 'r' || i || '@example.org',"
        "   'user_id', NULL, 'state', 'pending', 'detail', NULL)),"
        "  'scheduled', due"
        " FROM (SELECT i, now() + make_interval(secs => %s + (i - %s) * %s) AS due"
        "  FROM generate_series(%s, %s) AS i) AS planned",
        (json.dumps(REMINDER_MEETING), due_in, first, spread, first, first + count - 1),
    )
    db.execute_sql("SELECT pg_notify('meetings_outbox', '')")


def wait_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
