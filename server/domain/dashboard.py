"""The admin dashboard: the service's last hour minute by minute and its last day hour by hour,
from every replica's activity (telemetry.activity, stored by `flush`), with what needs an
operator now (delivery behind, the webhook endpoint turned off).

The numbers are the ones /metrics exposes, counted at the same places: requests and their
codes, latency, deliveries and reminder lateness (histograms with the same bucket bounds, so
the percentiles here are what Prometheus' histogram_quantile gives for them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.domain import webhook_settings
from server.storage import activity_rows, outbox
from server.storage.database import db
from server.telemetry import activity
from server.telemetry.metrics import LATENCY_BUCKETS, LATENESS_BUCKETS

MINUTES = 60
HOURS = 24
# Kept for the charts (a day) and a little more; older minutes are deleted by `flush`.
KEEP = timedelta(hours=HOURS + 1)
# Delivery is "behind" once something waits this long past its due time.
BEHIND_SECONDS = 60.0
# How often `flush` samples the backlog and prunes.
SAMPLE_SECONDS = 60
PRUNE_SECONDS = 3600


@dataclass(frozen=True)
class MinutePoint:
    start: datetime
    requests: int
    server_errors: int
    client_errors: int
    p50_ms: float | None  # None: no request that minute
    p99_ms: float | None
    backlog: int | None  # None: no replica sampled it
    oldest_due_seconds: float | None
    reminders: int
    late_p50_ms: float | None
    late_p99_ms: float | None


@dataclass(frozen=True)
class HourPoint:
    start: datetime
    emails_sent: int
    emails_failed: int
    webhooks_sent: int
    webhooks_failed: int


@dataclass(frozen=True)
class Dashboard:
    minutes: list[MinutePoint]  # the last MINUTES, oldest first, one per minute
    hours: list[HourPoint]  # the last HOURS, oldest first, one per hour
    backlog: list[outbox.Backlog]  # now, per kind
    webhook_state: str  # "unset", "enabled" or "disabled"
    webhook_disabled_reason: str
    alerts: list[str]  # what the panel shows in red


def load(now: datetime | None = None) -> Dashboard:
    now = now or datetime.now(UTC)
    this_minute = _floor(now, 60)
    first_minute = this_minute - timedelta(minutes=MINUTES - 1)
    first_hour = _floor(now, 3600) - timedelta(hours=HOURS - 1)
    minutes = {t.start: t for t in activity_rows.totals(first_minute, 60)}
    hours = {t.start: t for t in activity_rows.totals(first_hour, 3600)}
    backlog = outbox.backlog()
    webhook = webhook_settings.load()
    state = webhook.state
    return Dashboard(
        minutes=[
            _minute_point(start, minutes.get(start))
            for start in (first_minute + timedelta(minutes=n) for n in range(MINUTES))
        ],
        hours=[
            _hour_point(start, hours.get(start))
            for start in (first_hour + timedelta(hours=n) for n in range(HOURS))
        ],
        backlog=backlog,
        webhook_state=state,
        webhook_disabled_reason=webhook.disabled_reason if state == "disabled" else "",
        alerts=_alerts(backlog, state, webhook.disabled_reason),
    )


def _alerts(backlog: list[outbox.Backlog], webhook_state: str, reason: str) -> list[str]:
    alerts = [
        f"Delivery is behind: the oldest {b.kind} waiting fell due {_ago(b.oldest_due_seconds)}"
        f" ago ({b.due + b.sending} waiting)."
        for b in backlog
        if b.oldest_due_seconds > BEHIND_SECONDS
    ]
    if webhook_state == "disabled":
        alerts.append(
            "The webhook endpoint is turned off"
            + (f": {reason}" if reason else "")
            + ". Recording-done webhooks are not sent until it is turned on again."
        )
    return alerts


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _minute_point(start: datetime, t: activity_rows.Totals | None) -> MinutePoint:
    if t is None:
        return MinutePoint(start, 0, 0, 0, None, None, None, None, 0, None, None)
    return MinutePoint(
        start,
        t.requests,
        t.server_errors,
        t.client_errors,
        _ms(quantile(t.latency, LATENCY_BUCKETS, 0.5)),
        _ms(quantile(t.latency, LATENCY_BUCKETS, 0.99)),
        t.backlog,
        t.oldest_due_seconds,
        sum(t.lateness),
        _ms(quantile(t.lateness, LATENESS_BUCKETS, 0.5)),
        _ms(quantile(t.lateness, LATENESS_BUCKETS, 0.99)),
    )


def _hour_point(start: datetime, t: activity_rows.Totals | None) -> HourPoint:
    if t is None:
        return HourPoint(start, 0, 0, 0, 0)
    return HourPoint(start, t.emails_sent, t.emails_failed, t.webhooks_sent, t.webhooks_failed)


def quantile(counts: tuple[int, ...], bounds: tuple[float, ...], q: float) -> float | None:
    """The q-quantile of a histogram (counts per bucket, the last one past the last bound),
    interpolated linearly within its bucket as Prometheus' histogram_quantile does (past the
    last bound: that bound). None when it is empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _floor(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, UTC)


class Recorder:
    """Stores this process's activity (`flush`, every few seconds from a thread of app.py):
    the minutes recorded since the last flush, once a minute the backlog as seen now, and once
    an hour the deletion of what the charts no longer show."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self._sampled = 0  # the minute last sampled
        self._pruned = 0.0

    def flush(self) -> None:
        minutes = activity.drain()
        try:
            with db.connection_context(), db.atomic():
                activity_rows.add(self.replica, minutes)
                self._sample()
                if time.monotonic() - self._pruned >= PRUNE_SECONDS:
                    activity_rows.prune(KEEP)
                    self._pruned = time.monotonic()
        except Exception:
            activity.put_back(minutes)  # counted at the next flush
            raise

    def _sample(self) -> None:
        minute = int(time.time()) // SAMPLE_SECONDS * SAMPLE_SECONDS
        if minute == self._sampled:
            return
        backlog = outbox.backlog()
        activity_rows.sample_backlog(
            self.replica,
            minute,
            sum(b.due + b.sending for b in backlog),
            max(b.oldest_due_seconds for b in backlog),
        )
        self._sampled = minute
