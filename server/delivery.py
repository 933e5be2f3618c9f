"""The delivery loop: claim due outbox rows, send them outside any transaction, record results.

One runs in every server process (a thread); any number of them share one database. A pass
(`run_once`, which tests drive step by step) claims a small batch with FOR UPDATE SKIP LOCKED
and a lease, and for each row checks that it is unchanged since the claim, sends, and records
the outcome. `run` repeats passes until stopped, sleeping until the next row falls due or a
NOTIFY says that one was written, and never dies of an error. A sender that crashes leaves its
rows leased; the lease runs out and another sender takes them over (at-least-once: the message
being sent at the crash may go out twice).
"""

from __future__ import annotations

import logging
import os
import random
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg2

from server import clock, emails, mailer, meeting_settings, outbox, webhook_delivery
from server.database import db

log = logging.getLogger(__name__)

BATCH_SIZE = 10
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
        self._rand = rand
        self._listener = _Listener(listen_params) if listen_params is not None else None
        self._stop = threading.Event()
        # Seconds until the next row falls due, as of the last pass that found nothing to do.
        self._idle_for: float | None = None

    def run_once(self) -> int:
        """One pass: claim a batch and deliver it; returns how many rows were claimed."""
        with db.connection_context():
            if self.webhook_sender is not None:
                webhook_delivery.schedule_due(self.webhook_grace_seconds)
            config = meeting_settings.load()
            jobs = outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)
            for position, job in enumerate(jobs):
                if self._stop.is_set():
                    # Shutting down: hand back what was not attempted, for another replica.
                    outbox.release(jobs[position:])
                    break
                self._deliver(job, config)
            self._idle_for = None if jobs else outbox.seconds_until_due(self.kinds)
        return len(jobs)

    def claim(self) -> list[outbox.Claimed]:
        """The first half of a pass, for tests that act between claiming and sending."""
        with db.connection_context():
            return outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)

    def deliver(self, job: outbox.Claimed) -> None:
        """The second half of a pass, for one claimed row."""
        with db.connection_context():
            self._deliver(job, meeting_settings.load())

    def _deliver(self, job: outbox.Claimed, config: meeting_settings.MeetingSettings) -> None:
        if job.kind == "webhook":
            self._deliver_webhook(job)
            return
        pending = [
            r["email"] for r in job.recipients if r["state"] == outbox.PENDING and r.get("email")
        ]
        if not outbox.still_ours(job, self.lease_seconds):
            log.info("outbox row changed after its claim: not sent", extra={"outbox_id": job.id})
            return
        if not pending:
            nobody = "no recipient has an email address"
            outbox.finish(job, status=outbox.FAILED, recipients=job.recipients, error=nobody)
            return
        try:
            meeting = emails.MeetingInfo.from_json(job.payload["meeting"])
            to = [r["email"] for r in job.recipients if r.get("email")]
            message = emails.render(
                job.topic,
                meeting,
                to,
                config,
                message_id=emails.message_id(job.dedupe_key, job.id, config.sender_address),
                now=clock.now(),
            )
            outcome = self.mailer.send(message, config.sender_address, pending)
        except Exception as exc:
            log.exception("email could not be built or sent", extra={"outbox_id": job.id})
            outcome = mailer.Outcome(temporary=dict.fromkeys(pending, f"internal error: {exc}"))
        status, rows, error, retry_in = settle(job, outcome, self._rand())
        recorded = outbox.finish(
            job, status=status, recipients=rows, error=error, retry_in=retry_in
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

    def _deliver_webhook(self, job: outbox.Claimed) -> None:
        assert self.webhook_sender is not None  # only claimed with a sender
        if not outbox.still_ours(job, self.lease_seconds):
            log.info("outbox row changed after its claim: not sent", extra={"outbox_id": job.id})
            return
        try:
            result = self.webhook_sender.deliver(
                job.dedupe_key, job.payload, job.attempts, self._rand()
            )
        except Exception as exc:
            log.exception("webhook could not be built or sent", extra={"outbox_id": job.id})
            result = webhook_delivery.failure_result(job.attempts, self._rand(), exc)
        recorded = outbox.finish(
            job,
            status=result.status,
            recipients=job.recipients,
            error=result.error,
            retry_in=result.retry_in,
        )
        extra = {"outbox_id": job.id, "status": result.status, "attempt": job.attempts}
        if not recorded:
            log.warning("outbox row changed while sending: result not recorded", extra=extra)
        elif result.status == outbox.SENT:
            log.info("webhook delivered", extra=extra)
        else:
            log.warning("webhook not delivered", extra={**extra, "error": result.error})

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then claim nothing more and return."""
        self._stop = stop
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if self._listener is not None:
                        self._listener.connect()
                    if self.run_once():
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
