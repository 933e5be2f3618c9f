"""The email channel: render a notification, hand it to the mailer, settle each recipient.

A message is begun (rendered, and sent to the SMTP server all but its final dot) while the
previous row's record commits, and finished once its own row is known to be still ours
(see delivery.loop). Temporary refusals (4xx, connection failures) are retried per recipient
with backoff; permanent ones (5xx) fail that recipient at once.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from email.message import Message

from server.delivery import mailer
from server.delivery.channel import Result
from server.domain import (
    clock,
    email_templates,
    emails,
    meeting_settings,
    recording_emails,
    recordings,
)
from server.storage import outbox

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 30.0
RETRY_FACTOR = 2.0
RETRY_MAX_SECONDS = 3600.0
RETRY_JITTER = 0.2
MAX_ATTEMPTS = 12
ERROR_TEXT_MAX = 1000

Begun = Future[mailer.Sending]
# A recording-done email's files with their links, and the links' lifetime in days.
_Links = tuple[list[emails.RecordingLink], int]


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


def pending(job: outbox.Claimed) -> list[str]:
    """The addresses this attempt sends to: those not yet delivered or refused."""
    return [
        r["email"]
        for r in job.recipients
        if r["state"] == outbox.RecipientState.PENDING and r.get("email")
    ]


def settle(job: outbox.Claimed, outcome: mailer.Outcome, rand: float) -> Result:
    """The row's new status, recipients, last error and retry delay after one attempt."""
    delay = retry_delay(job.attempts, rand) if outcome.temporary else None
    state = outbox.RecipientState
    refused: dict[str, str] = {}
    rows = []
    for row in job.recipients:
        row = dict(row)
        address = row.get("email")
        if row["state"] == state.PENDING and address is not None:
            if address in outcome.delivered:
                row.update(state=state.SENT, detail=None)
            elif address in outcome.permanent:
                row.update(state=state.FAILED, detail=outcome.permanent[address])
            elif address in outcome.temporary and delay is not None:
                row.update(detail=outcome.temporary[address])
            elif address in outcome.temporary:
                detail = f"gave up after {job.attempts} attempts: {outcome.temporary[address]}"
                row.update(state=state.FAILED, detail=detail)
        if row["state"] == state.FAILED and address is not None:
            refused[address] = row["detail"]
        rows.append(row)
    if outcome.temporary and delay is not None:
        return Result(
            outbox.Status.SCHEDULED, rows, "retrying " + _summary(outcome.temporary), delay
        )
    if refused:
        return Result(outbox.Status.FAILED, rows, "refused " + _summary(refused))
    return Result(outbox.Status.SENT, rows)


def _summary(problems: dict[str, str]) -> str:
    text = "; ".join(f"{address}: {reason}" for address, reason in problems.items())
    return text[:ERROR_TEXT_MAX]


@dataclass
class _Group:
    """Recipients who get the same message: those whose profiles give this UTC offset."""

    offset: int | None
    header: list[str]  # its To: (everyone of the group, sent to before or not)
    to: list[str]  # its envelope: those still pending


class EmailChannel:
    kind = outbox.Kind.EMAIL

    def __init__(
        self,
        mail: mailer.Mailer,
        links: recordings.DownloadLinks,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.mailer = mail
        # The recording-done email's links (their lifetime is a meetings setting).
        self.links = links
        self._rand = rand
        self._config: meeting_settings.MeetingSettings | None = None
        self._templates: dict[str, email_templates.Template] = {}
        # Why the last rendered message fell back to a built-in template (None: it did not).
        self._fallbacks: dict[int, str] = {}

    def sweep(self) -> None:
        """Reread the settings and templates: changes apply within a second, on every replica."""
        self._config = meeting_settings.load()
        self._templates = email_templates.load_all()

    @property
    def config(self) -> meeting_settings.MeetingSettings:
        if self._config is None:
            self.sweep()
        assert self._config is not None
        return self._config

    def begin(self, job: outbox.Claimed) -> Begun | None:
        if not pending(job):
            return None
        groups = self._groups(job)
        if len(groups) != 1:
            return None  # several messages: `send` sends them one after another
        files = self._recording_links(job)
        if files is None:
            return None  # `send` cancels it
        begun: Begun = Future()
        self._fallbacks.pop(job.id, None)  # what an abandoned attempt left
        try:
            message = self._prepare(job, groups[0], files)
            begun.set_result(self.mailer.begin(message, self.config.sender_address, groups[0].to))
        except Exception as exc:
            begun.set_exception(exc)
        return begun

    def send(self, job: outbox.Claimed, begun: Begun | None) -> Result:
        if not pending(job):
            return Result(outbox.Status.FAILED, job.recipients, "no recipient has an email address")
        if begun is not None:
            outcome = begun.result().finish()
        else:
            files = self._recording_links(job)
            if files is None:
                return Result(
                    outbox.Status.CANCELLED, job.recipients, "its recordings were deleted"
                )
            self._fallbacks.pop(job.id, None)
            outcome = mailer.Outcome()
            for group in self._groups(job):
                sent = self.mailer.send(
                    self._prepare(job, group, files), self.config.sender_address, group.to
                )
                outcome.delivered += sent.delivered
                outcome.temporary |= sent.temporary
                outcome.permanent |= sent.permanent
        result = settle(job, outcome, self._rand())
        fallback = self._fallbacks.pop(job.id, None)
        if fallback is not None and result.error is None:
            # Recorded on the row (the panel shows it) as well as logged.
            result = dataclasses.replace(result, error=fallback)
        return result

    def abandon(self, begun: Begun | None) -> None:
        if begun is not None and begun.exception() is None:
            begun.result().abandon()

    def failure(self, job: outbox.Claimed, exc: Exception) -> Result:
        outcome = mailer.Outcome(temporary=dict.fromkeys(pending(job), f"internal error: {exc}"))
        return settle(job, outcome, self._rand())

    def close(self) -> None:
        self.mailer.close()

    @staticmethod
    def _groups(job: outbox.Claimed) -> list[_Group]:
        """One message per UTC offset that recipients' profiles gave (most rows: one), so that
        each shows the time in its recipients' zone; only groups with someone to send to."""
        meeting = EmailChannel._meeting(job)
        groups: dict[int | None, _Group] = {}
        for row in (r for r in job.recipients if r.get("email")):
            # Noted on the row when it was written (notifications): no query per email.
            offset = row.get("utc_offset")
            if not emails.your_time(meeting, offset):
                offset = None  # unknown, or the meeting's own zone's: the common message
            group = groups.setdefault(offset, _Group(offset, [], []))
            group.header.append(row["email"])
            if row["state"] == outbox.RecipientState.PENDING:
                group.to.append(row["email"])
        return [group for group in groups.values() if group.to]

    def _prepare(self, job: outbox.Claimed, group: _Group, links: _Links) -> Message | bytes:
        """The email of a row for one group of its recipients, made ready for the mailer."""
        config = self.config
        files, days = links
        # Stable across retries, and distinct per group (the first keeps the row's own).
        key = job.dedupe_key if group.offset is None else f"{job.dedupe_key}.z{group.offset}"
        message, fallback = emails.compose(
            job.topic,
            self._meeting(job),
            group.header,
            config,
            message_id=emails.message_id(key, job.id, config.sender_address),
            now=clock.now(),
            template=self._templates.get(job.topic),
            recordings=files,
            link_days=days,
            offset_minutes=group.offset,
        )
        if fallback is not None:
            self._fallbacks[job.id] = fallback
            log.warning("email template failed", extra={"outbox_id": job.id, "error": fallback})
        return self.mailer.prepare(message, config.sender_address, group.to)

    @staticmethod
    def _meeting(job: outbox.Claimed) -> emails.MeetingInfo:
        if job.payload.get("sample"):  # a test email of the sample meeting
            return emails.SAMPLE_MEETING
        return emails.MeetingInfo.from_json(job.payload["meeting"])

    def _recording_links(self, job: outbox.Claimed) -> _Links | None:
        """The recording-done email's recordings with their links and lifetime in days (a test
        email's may be the samples), read once per attempt; None when all were deleted before
        it went out."""
        if job.topic != recording_emails.TOPIC:
            return [], 0
        days = self.config.recording_link_days
        files = recording_emails.links_for(job.payload["recording_ids"], self.links, days)
        if not files:
            if not job.payload.get("test"):
                return None
            files = list(emails.SAMPLE_RECORDINGS)
        return files, days
