"""The webhook channel: sign the recording-done body and POST it to the configured URL.

2xx is done; 410 turns the webhook off and records why; 3xx (never followed), other statuses
and network errors are retried over about three days, honouring Retry-After; an address the
guard refuses fails at once (see delivery.webhook_http).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from server.delivery import webhook_http
from server.delivery.channel import Result
from server.domain import clock, recording_webhooks, recordings, webhook_settings
from server.storage import outbox

# Retry delays in seconds after attempt 1, 2, ...: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 20h
# (about 72 hours in all), each spread by ±20%; then the delivery fails.
RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 72000.0)
RETRY_JITTER = 0.2
RETRY_AFTER_MAX = 86400.0


def retry_delay(attempts: int, rand: float, retry_after: float | None = None) -> float | None:
    """Seconds before attempt `attempts + 1`, or None to give up (see RETRY_DELAYS).

    A receiver's Retry-After wins when it asks for longer (capped at a day)."""
    if attempts > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempts - 1] * (1 - RETRY_JITTER + 2 * RETRY_JITTER * rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX))
    return delay


class WebhookChannel:
    kind = outbox.Kind.WEBHOOK

    def __init__(
        self,
        *,
        links: recordings.DownloadLinks,
        allowed_networks: Sequence[webhook_http.IpNetwork],
        timeout: float = webhook_http.TIMEOUT_SECONDS,
        grace_seconds: float = 600.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.links = links
        self.allowed_networks = tuple(allowed_networks)
        self.timeout = timeout
        # A meeting whose call was never ended counts as finished this long after end_date.
        self.grace_seconds = grace_seconds
        self._rand = rand

    def sweep(self) -> None:
        recording_webhooks.schedule_due(self.grace_seconds)

    def begin(self, job: outbox.Claimed) -> None:
        return None  # nothing to start early: the body is built with fresh links at send time

    def send(self, job: outbox.Claimed, begun: None) -> Result:
        """One attempt (with a database connection open; no row lock held)."""
        config = webhook_settings.load()
        if not config.enabled or not config.url:
            reason = config.disabled_reason or "the webhook is turned off"
            return Result(outbox.Status.CANCELLED, job.recipients, f"not sent: {reason}")
        now = clock.now()
        body = recording_webhooks.body(job.payload, self.links)
        message_id = recording_webhooks.webhook_id(job.dedupe_key)
        headers = webhook_http.headers(
            config.active_secrets(now), message_id, int(now.timestamp()), body
        )
        try:
            response = webhook_http.post(
                config.url, body, headers, self.allowed_networks, self.timeout
            )
        except webhook_http.RefusedAddress as exc:
            return Result(outbox.Status.FAILED, job.recipients, f"refused: {exc}")
        except OSError as exc:
            return self._retry(job, f"network error: {type(exc).__name__}: {exc}", None)
        if 200 <= response.status < 300:
            return Result(outbox.Status.SENT, job.recipients)
        if response.status == 410:
            reason = f"the receiver answered 410 Gone at {clock.iso_ms(now)}; webhook turned off"
            webhook_settings.disable(reason)
            return Result(outbox.Status.FAILED, job.recipients, reason)
        what = "a redirect (not followed)" if 300 <= response.status < 400 else "an error"
        return self._retry(job, f"HTTP {response.status}: {what}", response.retry_after)

    def abandon(self, begun: None) -> None:
        pass

    def failure(self, job: outbox.Claimed, exc: Exception) -> Result:
        """Retried like a network error."""
        return self._retry(job, f"internal error: {type(exc).__name__}", None)

    def close(self) -> None:
        pass

    def _retry(self, job: outbox.Claimed, error: str, retry_after: float | None) -> Result:
        delay = retry_delay(job.attempts, self._rand(), retry_after)
        if delay is None:
            return Result(
                outbox.Status.FAILED,
                job.recipients,
                f"gave up after {job.attempts} attempts: {error}",
            )
        return Result(outbox.Status.SCHEDULED, job.recipients, f"retrying: {error}", delay)
