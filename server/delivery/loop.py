"""The delivery loop: claim due outbox rows, send them outside any transaction, record results.

One runs in every server process (a thread); any number of them share one database. A pass
(`run_once`, which tests drive step by step) claims a batch with FOR UPDATE SKIP LOCKED and a
lease, and for each row checks that it is unchanged since the claim, has its channel (email,
webhook) send it, and records the outcome. The record of one row and the check of the next are
one statement, so a message costs one database round trip; while it commits, the channel
begins the next message (an email goes to the SMTP server all but its end of data), which is
finished once the record is on disk and the check has passed. `run` repeats passes until
stopped, sleeping until the next row falls due or a NOTIFY says that one was written, and never
dies of an error. A sender that crashes leaves its rows leased; the lease runs out and another
sender takes them over (at-least-once: the message being sent at the crash may go out twice).
See docs/delivery.md.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from server.delivery.channel import Channel, Result
from server.domain import clock
from server.storage import outbox
from server.storage.database import db
from server.storage.listen import Listener
from server.telemetry import activity, metrics, tracing

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Rows per claim: one claim round trip per this many messages. The lease of the rows still
# waiting is renewed one by one just before each is sent, so a long batch loses none.
BATCH_SIZE = 50
# The channels' sweeps (due recording webhooks, settings) run at most this often: at hundreds
# of messages a second, once per batch they were a tenth of the work (make bench).
SWEEP_SECONDS = 1.0
# An attempt's recorded status, as meetings_deliveries_total names it.
_OUTCOMES = {
    outbox.Status.SENT: "sent",
    outbox.Status.SCHEDULED: "retried",
    outbox.Status.FAILED: "failed",
    outbox.Status.CANCELLED: "cancelled",
}
# Pause after a failed pass (database down): doubles up to this.
ERROR_PAUSE_MAX_SECONDS = 30.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _in_connection(work: Callable[[], _T]) -> _T:
    """Run `work` on a pooled connection of the calling thread."""
    with db.connection_context():
        return work()


class DeliveryLoop:
    """Delivers the outbox rows of its channels' kinds; see the module doc."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        worker_id: str,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        listen_params: dict[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self.channels: dict[str, Channel] = {channel.kind: channel for channel in channels}
        # Only what a channel can send is claimed (a row no channel sends is left alone).
        self.kinds = tuple(self.channels)
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.sweep_seconds = sweep_seconds
        self._swept_at = float("-inf")
        # Commits a record while this thread begins the next message (`_record`).
        self._recorder: ThreadPoolExecutor | None = None
        self._listener = (
            Listener(listen_params, outbox.CHANNEL) if listen_params is not None else None
        )
        self._stop = threading.Event()
        # Seconds until the next row falls due, as of the last pass that found nothing to do.
        self._idle_for: float | None = None

    def run_once(self) -> int:
        """One pass, sweep included: claim a batch and deliver it; returns how many rows were
        claimed. Tests drive the loop with it, so each call sees fresh settings."""
        return self._pass(sweep=True)

    def claim(self) -> list[outbox.Claimed]:
        """The first half of a pass, for tests that act between claiming and sending."""
        with db.connection_context():
            return outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)

    def deliver(self, job: outbox.Claimed) -> None:
        """The second half of a pass, for one claimed row (after a sweep: fresh settings)."""
        with db.connection_context():
            self._sweep()
            self._deliver(job)

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
                    busy = self._pass(sweep=due)
                    failures = 0
                    if not busy:
                        self._wait()
                except Exception:
                    failures += 1
                    log.exception("delivery pass failed", extra={"failures": failures})
                    if self._listener is not None:
                        self._listener.close()
                    stop.wait(min(0.5 * 2 ** (failures - 1), ERROR_PAUSE_MAX_SECONDS))
        finally:
            self.close()

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.shutdown(wait=True)
            self._recorder = None
        for channel in self.channels.values():
            channel.close()
        if self._listener is not None:
            self._listener.close()

    def _wait(self) -> None:
        """Sleep until the next row falls due, a NOTIFY says one was written, or a poll."""
        wait = self.poll_seconds
        if self._idle_for is not None:
            wait = min(wait, max(self._idle_for, 0.0))
        if self._listener is not None:
            self._listener.wait(wait, self._stop)
        else:
            self._stop.wait(wait)

    def _pass(self, *, sweep: bool) -> int:
        with db.connection_context():
            if sweep:
                self._sweep()
            jobs = outbox.claim(self.worker_id, self.batch_size, self.lease_seconds, self.kinds)
            self._deliver_batch(jobs)
            self._idle_for = None if jobs else outbox.seconds_until_due(self.kinds)
        return len(jobs)

    def _sweep(self) -> None:
        for channel in self.channels.values():
            channel.sweep()
        self._swept_at = time.monotonic()

    def _deliver_batch(self, jobs: list[outbox.Claimed]) -> None:
        """Deliver claimed rows in order; on stop, hand back the rows not attempted.

        Each record also fences the next row (one round trip per message), and while it
        commits the next row's channel begins its message (see `_record`).
        """
        checked: bool | None = None  # whether jobs[position] is still ours, if known
        begun: Any = None  # what jobs[position]'s channel began, if anything
        for position, job in enumerate(jobs):
            if self._stop.is_set():
                # Shutting down: hand back what was not attempted, for another replica (a
                # message begun for it is dropped, undelivered).
                self.channels[job.kind].abandon(begun)
                outbox.release(jobs[position:])
                break
            following = jobs[position + 1] if position + 1 < len(jobs) else None
            ahead: list[Any] = []
            meanwhile = None
            if following is not None:
                meanwhile = functools.partial(self._begin_into, ahead, following)
            checked = self._deliver(
                job, checked=checked, following=following, begun=begun, meanwhile=meanwhile
            )
            begun = ahead[0] if ahead else None

    def _begin_into(self, out: list[Any], job: outbox.Claimed) -> None:
        """What the row's channel begins for it, kept (appended to `out`) for its turn."""
        out.append(self.channels[job.kind].begin(job))

    def _deliver(
        self,
        job: outbox.Claimed,
        *,
        checked: bool | None = None,
        following: outbox.Claimed | None = None,
        begun: Any = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> bool | None:
        """Send one claimed row and record the outcome; returns whether `following` is still
        ours (None when that was not checked). `begun`: what its channel began for it."""
        with tracing.delivery(
            f"deliver {job.kind}",
            job.traceparent,
            **{"messaging.destination.name": f"{job.kind}.{job.topic}", "outbox.id": job.id},
        ):
            return self._deliver_traced(job, checked, following, begun, meanwhile)

    def _deliver_traced(
        self,
        job: outbox.Claimed,
        checked: bool | None,
        following: outbox.Claimed | None,
        begun: Any,
        meanwhile: Callable[[], None] | None,
    ) -> bool | None:
        channel = self.channels[job.kind]
        still_ours = checked if checked is not None else outbox.still_ours(job, self.lease_seconds)
        if not still_ours:
            channel.abandon(begun)  # begun while its row was checked: not delivered
            log.info("outbox row changed after its claim: not sent", extra={"outbox_id": job.id})
            return None
        try:
            result = channel.send(job, begun)
        except Exception as exc:
            log.exception(f"{job.kind} could not be built or sent", extra={"outbox_id": job.id})
            result = channel.failure(job, exc)
        recorded, following_ours = self._record(job, result, following, meanwhile)
        self._log(job, result, recorded)
        return following_ours

    def _record(
        self,
        job: outbox.Claimed,
        result: Result,
        following: outbox.Claimed | None,
        meanwhile: Callable[[], None] | None,
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
            status=result.status,
            recipients=result.recipients,
            error=result.error,
            retry_in=result.retry_in,
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
            pending: Future[tuple[bool, bool]] = self._record_thread().submit(
                _in_connection, record
            )
            meanwhile()
            recorded, ours = pending.result()
        return recorded, (None if following is None else ours)

    def _record_thread(self) -> ThreadPoolExecutor:
        if self._recorder is None:
            self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        return self._recorder

    @staticmethod
    def _log(job: outbox.Claimed, result: Result, recorded: bool) -> None:
        """Log an attempt, and count it (telemetry)."""
        extra: dict[str, Any] = {
            "outbox_id": job.id,
            "kind": job.kind,
            "topic": job.topic,
            "status": result.status,
            "attempt": job.attempts,
        }
        due_at = job.payload.get("due_at")
        if job.topic == "reminder" and due_at is not None:
            late = clock.now().timestamp() - due_at
            extra["late_ms"] = round(late * 1000)
            if recorded and result.status == outbox.Status.SENT:
                metrics.REMINDER_LATENESS_SECONDS.observe(late)
                activity.reminder_late(late)
        outcome = _OUTCOMES[result.status] if recorded else "unrecorded"
        metrics.DELIVERIES.labels(job.kind, job.topic, outcome).inc()
        if outcome in ("sent", "retried", "failed"):
            activity.delivery(job.kind, outcome == "sent")
        if not recorded:
            log.warning("outbox row changed while sending: result not recorded", extra=extra)
        elif result.status == outbox.Status.SENT:
            log.info(f"{job.kind} sent", extra=extra)
        else:
            log.warning(f"{job.kind} not delivered", extra={**extra, "error": result.error})


class DeliveryThread:
    """The loop as a daemon thread, started and stopped with the server."""

    def __init__(self, loop: DeliveryLoop) -> None:
        self.loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=loop.run, args=(self._stop,), name="delivery", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("delivery loop started", extra={"worker": self.loop.worker_id})

    def stop(self) -> None:
        """Claim nothing new from now on (the message being sent is finished)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("delivery loop still sending at exit")
        else:
            log.info("delivery loop stopped")
