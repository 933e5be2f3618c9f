"""The delivery loop: claim due outbox rows, send them outside any transaction, record results.

One runs in every server process (a thread); any number of them share one database. A pass
(`run_once`, which tests drive step by step) claims a batch with FOR UPDATE SKIP LOCKED and a
lease, and for each row checks that it is unchanged since the claim, sends, and records the
outcome. The record of one row and the check of the next are one statement, so a message costs
one database round trip; while it commits, the next message goes to the SMTP server all but its
end of data, which is sent once the record is on disk and the check has passed. `run` repeats
passes until stopped, sleeping until the next row falls due or a NOTIFY says that one was
written, and never dies of an error. A sender that crashes leaves its rows leased; the lease
runs out and another sender takes them over (at-least-once: the message being sent at the crash
may go out twice).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import Message
from typing import Any, TypeVar

import psycopg2

from server.delivery import mailer
from server.domain import clock, emails, meeting_settings
from server.domain import recording_webhooks as webhook_delivery
from server.storage import outbox
from server.storage.database import db

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Rows per claim: one claim round trip per this many messages. The lease of the rows still
# waiting is renewed one by one just before each is sent, so a long batch loses none.
BATCH_SIZE = 50
# The loop writes due recording webhooks and rereads the settings at most this often.
SWEEP_SECONDS = 1.0
RETRY_FIRST_SECONDS = 30.0
RETRY_FACTOR = 2.0
RETRY_MAX_SECONDS = 3600.0
RETRY_JITTER = 0.2
MAX_ATTEMPTS = 12
# Pause after a failed pass (database down): doubles up to this.
ERROR_PAUSE_MAX_SECONDS = 30.0
ERROR_TEXT_MAX = 1000


def retry_delay(attempts: int, rand: float) -> float | None:
    """Seconds to wait after failed attempt number `attempts` (1-based), or None to give up.

        attempt  1    2    3    4    5     6     7     8-11
        delay    30s  1m   2m   4m   8m    16m   32m   1h

    each spread by ±20% (`rand` in [0, 1) picks where) so that retries of many messages do
    not arrive together; after the 12th attempt the message fails, about 5 hours after the first.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    base = min(RETRY_FIRST_SECONDS * RETRY_FACTOR ** max(attempts - 1, 0), RETRY_MAX_SECONDS)
    return base * (1 - RETRY_JITTER + 2 * RETRY_JITTER * rand)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _in_connection(work: Callable[[], _T]) -> _T:
    """Run `work` on a pooled connection of the calling thread."""
    with db.connection_context():
        return work()


def _pending(job: outbox.Claimed) -> list[str]:
    """The addresses this attempt sends to: those not yet delivered or refused."""
    return [r["email"] for r in job.recipients if r["state"] == outbox.PENDING and r.get("email")]


def _abandon(prepared: Future[mailer.Sending] | None) -> None:
    """Drop a message begun for a row that is not sent after all (if it was begun)."""
    if prepared is not None and prepared.exception() is None:
        prepared.result().abandon()


def _summary(problems: dict[str, str]) -> str:
    text = "; ".join(f"{address}: {reason}" for address, reason in problems.items())
    return text[:ERROR_TEXT_MAX]


def settle(
    job: outbox.Claimed, outcome: mailer.Outcome, rand: float
) -> tuple[str, list[dict[str, Any]], str | None, float | None]:
    """The row's new status, recipients, last error and retry delay after one attempt."""
    delay = retry_delay(job.attempts, rand) if outcome.temporary else None
    refused: dict[str, str] = {}
    rows = []
    for row in job.recipients:
        row = dict(row)
        address = row.get("email")
        if row["state"] == outbox.PENDING and address is not None:
            if address in outcome.delivered:
                row.update(state=outbox.DELIVERED, detail=None)
            elif address in outcome.permanent:
                row.update(state=outbox.REFUSED, detail=outcome.permanent[address])
            elif address in outcome.temporary and delay is not None:
                row.update(detail=outcome.temporary[address])
            elif address in outcome.temporary:
                detail = f"gave up after {job.attempts} attempts: {outcome.temporary[address]}"
                row.update(state=outbox.REFUSED, detail=detail)
            if row["state"] == outbox.REFUSED:
                refused[address] = row["detail"]
        elif row["state"] == outbox.REFUSED and address is not None:
            refused[address] = row["detail"]
        rows.append(row)
    if outcome.temporary and delay is not None:
        return outbox.SCHEDULED, rows, "retrying " + _summary(outcome.temporary), delay
    if refused:
        return outbox.FAILED, rows, "refused " + _summary(refused), None
    return outbox.SENT, rows, None, None


class _Listener:
    """LISTEN on a connection of its own; `wait` returns early when a row is written."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._params = params
        self._conn: Any = None

    def connect(self) -> None:
        if self._conn is None:
            self._conn = psycopg2.connect(**self._params)
            self._conn.autocommit = True
            with self._conn.cursor() as cur:
                cur.execute(f"LISTEN {outbox.CHANNEL}")

    def wait(self, timeout: float, stop: threading.Event) -> None:
        try:
            self.connect()
            ready, _, _ = select.select([self._conn], [], [], max(timeout, 0))
            if ready:
                self._conn.poll()
                self._conn.notifies.clear()
        except (psycopg2.Error, OSError):
            self.close()
            stop.wait(timeout)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None


class Deliverer:
    """Delivers outbox emails through `mail` and webhooks through `webhook_sender`; see the
    module doc. Each pass also writes the recording-done webhooks that have become due."""

    def __init__(
        self,
        mail: mailer.Mailer,
        *,
        worker_id: str,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        listen_params: dict[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        rand: Callable[[], float] = random.random,
        webhook_sender: webhook_delivery.WebhookSender | None = None,
        webhook_grace_seconds: float = 600.0,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self.mailer = mail
        self.webhook_sender = webhook_sender
        # Only what this deliverer can send is claimed (a row it cannot send is left alone).
        self.kinds = ("email", "webhook") if webhook_sender is not None else ("email",)
        self.webhook_grace_seconds = webhook_grace_seconds
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.sweep_seconds = sweep_seconds
        self._config: meeting_settings.MeetingSettings | None = None
        self._swept_at = float("-inf")
        # Commits a record while this thread renders and begins the next email (`_record`).
        self._recorder: ThreadPoolExecutor | None = None
        self._rand = rand
        self._listener = _Listener(listen_params) if listen_params is not None else None
        self._stop = threading.Event()
        # Seconds until the next row falls due, as of the last pass that found nothing to do.
        self._idle_for: float | None = None

    def run_once(self) -> int:
        """One pass, sweep included: claim a batch and deliver it; returns how many rows were
        claimed. Tests drive the loop with it, so each call sees fresh settings."""
        return self._pass(sweep=True)

    def _pass(self, *, sweep: bool) -> int:
        with db.connection_context():
            if sweep or self._config is None:
                self._sweep()
            assert self._config is not None
            jobs = outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)
            self._deliver_batch(jobs, self._config)
            self._idle_for = None if jobs else outbox.seconds_until_due(self.kinds)
        return len(jobs)

    def _sweep(self) -> None:
        """The per-pass chores that are not deliveries: write the recording webhooks that fell
        due, and read the settings. The loop does them at most every `sweep_seconds`, not
        once per batch: at hundreds of messages a second they were a tenth of the work."""
        if self.webhook_sender is not None:
            webhook_delivery.schedule_due(self.webhook_grace_seconds)
        self._config = meeting_settings.load()
        self._swept_at = time.monotonic()

    def _deliver_batch(
        self, jobs: list[outbox.Claimed], config: meeting_settings.MeetingSettings
    ) -> None:
        """Deliver claimed rows in order; on stop, hand back the rows not attempted.

        Each record also fences the next row (one round trip per message), and while it
        commits the next email is rendered and handed to the mailer all but its last step
        (see `_record`, `mailer.SmtpMailer.begin`).
        """
        checked: bool | None = None  # whether jobs[position] is still ours, if known
        prepared: Future[mailer.Sending] | None = None  # jobs[position]'s email, if begun
        for position, job in enumerate(jobs):
            if self._stop.is_set():
                # Shutting down: hand back what was not attempted, for another replica (a
                # message begun for it is dropped, undelivered).
                _abandon(prepared)
                outbox.release(jobs[position:])
                break
            following = jobs[position + 1] if position + 1 < len(jobs) else None
            ahead: list[Future[mailer.Sending]] = []
            meanwhile: Callable[[], None] | None = None
            if following is not None and following.kind == "email":
                meanwhile = functools.partial(self._prepare_into, ahead, following, config)
            checked = self._deliver(
                job,
                config,
                checked=checked,
                following=following,
                prepared=prepared,
                meanwhile=meanwhile,
            )
            prepared = ahead[0] if ahead else None

    def claim(self) -> list[outbox.Claimed]:
        """The first half of a pass, for tests that act between claiming and sending."""
        with db.connection_context():
            return outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)

    def deliver(self, job: outbox.Claimed) -> None:
        """The second half of a pass, for one claimed row."""
        with db.connection_context():
            self._deliver(job, meeting_settings.load())

    def _record_thread(self) -> ThreadPoolExecutor:
        if self._recorder is None:
            self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        return self._recorder

    def _prepare_into(
        self,
        out: list[Future[mailer.Sending]],
        job: outbox.Claimed,
        config: meeting_settings.MeetingSettings,
    ) -> None:
        """The row's email rendered and begun (all but its last step, so nothing is delivered
        yet), or the error, kept (appended to `out`) for when the row is sent or dropped."""
        pending = _pending(job)
        if not pending:
            return
        done: Future[mailer.Sending] = Future()
        try:
            message = self._prepare(job, config)
            done.set_result(self.mailer.begin(message, config.sender_address, pending))
        except Exception as exc:
            done.set_exception(exc)
        out.append(done)

    def _prepare(
        self, job: outbox.Claimed, config: meeting_settings.MeetingSettings
    ) -> Message | bytes:
        """The email of a row, rendered and made ready for the mailer."""
        to = [r["email"] for r in job.recipients if r.get("email")]
        message = emails.render(
            job.topic,
            emails.MeetingInfo.from_json(job.payload["meeting"]),
            to,
            config,
            message_id=emails.message_id(job.dedupe_key, job.id, config.sender_address),
            now=clock.now(),
        )
        return self.mailer.prepare(message, config.sender_address, _pending(job))

    def _still_ours(self, job: outbox.Claimed, checked: bool | None) -> bool:
        """The fencing check just before sending: done by the previous record, or now."""
        if checked is not None:
            return checked
        return outbox.still_ours(job, self.lease_seconds)

    def _record(
        self,
        job: outbox.Claimed,
        following: outbox.Claimed | None,
        *,
        status: str,
        recipients: list[dict[str, Any]],
        error: str | None,
        retry_in: float | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> tuple[bool, bool | None]:
        """Record an attempt (durably, before anything else is sent) and, in the same
        statement, check that `following` is still ours: (recorded, following ours or None).
        `meanwhile` runs while the statement commits."""
        if self._stop.is_set():
            following = None  # handed back unattempted: no lease to renew
            meanwhile = None
        record = functools.partial(
            outbox.finish_then_check,
            job,
            status=status,
            recipients=recipients,
            error=error,
            retry_in=retry_in,
            following=following,
            lease_seconds=self.lease_seconds,
        )
        if meanwhile is None:
            recorded, ours = record()
        else:
            # The commit waits for the disk with the GIL released: the record thread waits
            # for it while this thread renders the next email and sends it all but its final
            # dot (the other way round, the rendering would hold up this thread's many short
            # SMTP waits for the GIL). The dot goes only once this record is on disk and the
            # next row is known to be still ours: one message at most is ever delivered but
            # not recorded.
            pending_record = self._record_thread().submit(_in_connection, record)
            meanwhile()
            recorded, ours = pending_record.result()
        return recorded, (None if following is None else ours)

    def _deliver(
        self,
        job: outbox.Claimed,
        config: meeting_settings.MeetingSettings,
        *,
        checked: bool | None = None,
        following: outbox.Claimed | None = None,
        prepared: Future[mailer.Sending] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> bool | None:
        """Send one claimed row and record the outcome; returns whether `following` is still
        ours (None when that was not checked). `prepared`: the row's email, begun."""
        if job.kind == "webhook":
            return self._deliver_webhook(job, checked, following, meanwhile)
        pending = _pending(job)
        if not self._still_ours(job, checked):
            _abandon(prepared)  # begun while its row was checked: not delivered
            log.info("outbox row changed after its claim: not sent", extra={"outbox_id": job.id})
            return None
        if not pending:
            nobody = "no recipient has an email address"
            return self._record(
                job,
                following,
                status=outbox.FAILED,
                recipients=job.recipients,
                error=nobody,
                meanwhile=meanwhile,
            )[1]
        try:
            if prepared is not None:
                outcome = prepared.result().finish()
            else:
                message = self._prepare(job, config)
                outcome = self.mailer.send(message, config.sender_address, pending)
        except Exception as exc:
            log.exception("email could not be built or sent", extra={"outbox_id": job.id})
            outcome = mailer.Outcome(temporary=dict.fromkeys(pending, f"internal error: {exc}"))
        status, rows, error, retry_in = settle(job, outcome, self._rand())
        recorded, following_ours = self._record(
            job,
            following,
            status=status,
            recipients=rows,
            error=error,
            retry_in=retry_in,
            meanwhile=meanwhile,
        )
        extra: dict[str, Any] = {
            "outbox_id": job.id,
            "topic": job.topic,
            "status": status,
            "attempt": job.attempts,
        }
        due_at = job.payload.get("due_at")
        if job.topic == "reminder" and due_at is not None:
            extra["late_ms"] = round((clock.now().timestamp() - due_at) * 1000)
        if not recorded:
            log.warning("outbox row changed while sending: result not recorded", extra=extra)
        elif status == outbox.SENT:
            log.info("email sent", extra=extra)
        else:
            log.warning("email not delivered", extra={**extra, "error": error})
        return following_ours

    def _deliver_webhook(
        self,
        job: outbox.Claimed,
        checked: bool | None,
        following: outbox.Claimed | None,
        meanwhile: Callable[[], None] | None,
    ) -> bool | None:
        assert self.webhook_sender is not None  # only claimed with a sender
        if not self._still_ours(job, checked):
            log.info("outbox row changed after its claim: not sent", extra={"outbox_id": job.id})
            return None
        try:
            result = self.webhook_sender.deliver(
                job.dedupe_key, job.payload, job.attempts, self._rand()
            )
        except Exception as exc:
            log.exception("webhook could not be built or sent", extra={"outbox_id": job.id})
            result = webhook_delivery.failure_result(job.attempts, self._rand(), exc)
        recorded, following_ours = self._record(
            job,
            following,
            status=result.status,
            recipients=job.recipients,
            error=result.error,
            retry_in=result.retry_in,
            meanwhile=meanwhile,
        )
        extra = {"outbox_id": job.id, "status": result.status, "attempt": job.attempts}
        if not recorded:
            log.warning("outbox row changed while sending: result not recorded", extra=extra)
        elif result.status == outbox.SENT:
            log.info("webhook delivered", extra=extra)
        else:
            log.warning("webhook not delivered", extra={**extra, "error": result.error})
        return following_ours

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then claim nothing more and return."""
        self._stop = stop
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if self._listener is not None:
                        self._listener.connect()
                    due = time.monotonic() - self._swept_at >= self.sweep_seconds
                    if self._pass(sweep=due):
                        failures = 0
                        continue
                    failures = 0
                    wait = self.poll_seconds
                    if self._idle_for is not None:
                        wait = min(wait, max(self._idle_for, 0.0))
                    if self._listener is not None:
                        self._listener.wait(wait, stop)
                    else:
                        stop.wait(wait)
                except Exception:
                    failures += 1
                    log.exception("delivery pass failed", extra={"failures": failures})
                    if self._listener is not None:
                        self._listener.close()
                    stop.wait(min(0.5 * 2 ** (failures - 1), ERROR_PAUSE_MAX_SECONDS))
        finally:
            if self._recorder is not None:
                self._recorder.shutdown(wait=True)
                self._recorder = None
            self.mailer.close()
            if self._listener is not None:
                self._listener.close()


class DeliveryThread:
    """The loop as a daemon thread, started and stopped with the server."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=deliverer.run, args=(self._stop,), name="delivery", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("delivery loop started", extra={"worker": self.deliverer.worker_id})

    def stop(self) -> None:
        """Claim nothing new from now on (the message being sent is finished)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("delivery loop still sending at exit")
        else:
            log.info("delivery loop stopped")
