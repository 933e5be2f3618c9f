"""The outbox: written with the change or not at all; claims, leases and takeovers."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from server.delivery import loop, mailer
from server.domain import auth, meetings
from server.domain.meeting_values import Attendee, MeetingPatch, NotifyBefore
from server.storage import outbox
from tests.conftest import Account
from tests.delivery_helpers import email_loop
from tests.notifications.conftest import SmtpServer, deliver_all, outbox_rows

START = 1894694400


def patch(**fields: Any) -> MeetingPatch:
    values: dict[str, Any] = {
        "name": "Planning",
        "start_date": START,
        "end_date": START + 3600,
        "notify": True,
        "notify_before": NotifyBefore("hours", 1),
        "attendees": (Attendee(email="guest@example.org"),),
        **fields,
    }
    return MeetingPatch(present=frozenset(values), **values)


class Boom(Exception):
    pass


def test_a_change_that_rolls_back_leaves_no_row(db: Any, accounts: dict[str, Account]) -> None:
    host = auth.authenticate(accounts["host"].token)
    with pytest.raises(Boom), db.atomic():
        meetings.create(host, patch())
        assert len(outbox_rows(db)) == 2  # visible inside the transaction only
        raise Boom
    assert outbox_rows(db) == []

    view = meetings.create(host, patch())
    assert [(r["topic"], r["status"]) for r in outbox_rows(db)] == [
        ("invitation", "scheduled"),
        ("reminder", "scheduled"),
    ]
    with pytest.raises(Boom), db.atomic():
        meetings.update(host, view.id, patch(start_date=START + 60, end_date=START + 3660))
        meetings.delete(host, view.id)
        raise Boom
    assert [(r["topic"], r["status"]) for r in outbox_rows(db)] == [
        ("invitation", "scheduled"),
        ("reminder", "scheduled"),
    ]
    meetings.update(host, view.id, patch(start_date=START + 60, end_date=START + 3660))
    assert [(r["topic"], r["status"]) for r in outbox_rows(db)] == [
        ("invitation", "scheduled"),
        ("reminder", "cancelled"),
        ("update", "scheduled"),
        ("reminder", "scheduled"),
    ]


def test_a_stalled_lease_is_taken_over_and_the_stalled_sender_sends_nothing(
    db: Any, accounts: dict[str, Account], smtp: SmtpServer
) -> None:
    host = auth.authenticate(accounts["host"].token)
    meetings.create(host, patch(notify_before=None))

    def sender(name: str, lease: float) -> loop.DeliveryLoop:
        return email_loop(
            mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id=name, lease_seconds=lease
        )

    stalled, rescuer = sender("stalled", 0.5), sender("rescuer", 30)
    [job] = stalled.claim()
    assert rescuer.claim() == []  # leased
    time.sleep(0.7)
    [taken] = rescuer.claim()
    assert (taken.id, taken.attempts, taken.version) == (job.id, 2, job.version + 1)
    stalled.deliver(job)  # wakes up late: the row is no longer its own
    assert smtp.received == []
    rescuer.deliver(taken)
    assert len(smtp.received) == 1
    [row] = outbox_rows(db)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    for each in (stalled, rescuer):
        each.close()


def test_stopping_hands_back_the_rows_not_yet_attempted(
    db: Any, accounts: dict[str, Account], smtp: SmtpServer
) -> None:
    host = auth.authenticate(accounts["host"].token)
    for _ in range(6):
        meetings.create(host, patch(notify_before=None))
    smtp.data_delay = 0.3
    stop = threading.Event()
    sender = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id="stopping", batch_size=10
    )
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    smtp.wait_for(1)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    sent = len(smtp.received)
    assert 1 <= sent < 6
    rows = outbox_rows(db)
    assert sorted(r["status"] for r in rows) == ["scheduled"] * (6 - sent) + ["sent"] * sent
    assert all(r["attempts"] == (1 if r["status"] == "sent" else 0) for r in rows)

    smtp.data_delay = 0
    rest = email_loop(mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id="rest")
    deliver_all(rest)
    rest.close()
    ids = [r.message_id for r in smtp.received]
    assert len(ids) == len(set(ids)) == 6


def test_claims_by_concurrent_senders_never_overlap(db: Any, accounts: dict[str, Account]) -> None:
    host = auth.authenticate(accounts["host"].token)
    for _ in range(40):
        meetings.create(host, patch(notify_before=None))
    claimed: list[list[int]] = [[] for _ in range(4)]

    def claim_all(mine: list[int]) -> None:
        with db.connection_context():
            while jobs := outbox.claim(f"w{id(mine)}", 3, 60):
                mine.extend(job.id for job in jobs)

    threads = [threading.Thread(target=claim_all, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    everything = [row_id for mine in claimed for row_id in mine]
    assert len(everything) == len(set(everything)) == 40


def test_the_loop_outlives_a_killed_database_connection(
    db: Any, accounts: dict[str, Account], smtp: SmtpServer, postgres: Any
) -> None:
    from server.storage import database

    host = auth.authenticate(accounts["host"].token)
    sender = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)),
        worker_id="survivor",
        poll_seconds=2.0,  # the safety-net poll: slower than LISTEN by far
        listen_params=database.connection_params(postgres.url),
    )
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    try:
        meetings.create(host, patch(notify_before=None))
        assert len(smtp.wait_for(1)) == 1
        killed = db.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = 'LISTEN meetings_outbox'"
        ).fetchall()
        assert killed == [(True,)]
        meetings.create(host, patch(notify_before=None))
        assert len(smtp.wait_for(2, timeout=5)) == 2
        # Listening again (the poll caught the one above): the next one is not left to the poll.
        time.sleep(2.5)
        meetings.create(host, patch(notify_before=None))
        began = time.time()
        assert len(smtp.wait_for(3, timeout=5)) == 3
        assert smtp.received[2].at - began < 0.4
    finally:
        stop.set()
        thread.join(timeout=10)


def _row_id(message_id: str) -> int:
    """The outbox id in a Message-ID (`<key.ID@domain>`)."""
    found = re.search(r"\.(\d+)@", message_id)
    assert found is not None
    return int(found.group(1))


def test_a_row_changed_while_the_one_before_it_is_sent_is_not_sent(
    db: Any, accounts: dict[str, Account], smtp: SmtpServer, deliverer: loop.DeliveryLoop
) -> None:
    # One pass claims all three; the check of each row rides on the record of the one before.
    host = auth.authenticate(accounts["host"].token)
    for _ in range(3):
        meetings.create(host, patch(notify_before=None))
    first, second, third = (r["id"] for r in outbox_rows(db))
    smtp.hold_at = 1
    sender = threading.Thread(target=deliverer.run_once)
    sender.start()
    assert smtp.holding.wait(10)
    with db.connection_context():
        outbox.cancel(second, "changed while the first was being sent")
    smtp.release.set()
    sender.join(timeout=10)
    assert not sender.is_alive()

    assert [_row_id(r.message_id) for r in smtp.received] == [first, third]
    statuses = {r["id"]: r["status"] for r in outbox_rows(db)}
    assert statuses == {first: "sent", second: "cancelled", third: "sent"}


def test_many_rows_in_one_batch_each_go_out_once(
    db: Any, accounts: dict[str, Account], smtp: SmtpServer, deliverer: loop.DeliveryLoop
) -> None:
    # More rows than fit in one claim, with some that cannot be sent in between.
    host = auth.authenticate(accounts["host"].token)
    for _ in range(loop.BATCH_SIZE + 5):
        meetings.create(host, patch(notify_before=None))
    ids = [r["id"] for r in outbox_rows(db)]
    with db.connection_context():
        for row_id in ids[3::10]:
            outbox.cancel(row_id, "changed")
    assert deliver_all(deliverer) == len(ids) - len(ids[3::10])
    sent = sorted(_row_id(r.message_id) for r in smtp.received)
    assert sent == sorted(set(ids) - set(ids[3::10]))
    assert {r["status"] for r in outbox_rows(db)} == {"sent", "cancelled"}
