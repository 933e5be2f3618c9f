"""This process's activity per minute, for the admin dashboard: requests, errors and latency,
deliveries and reminder lateness, counted where the Prometheus metrics are updated.

Prometheus' counters live in one process (or one machine's processes); the dashboard shows the
whole service, whichever replica serves it. So every process adds its minutes to the database
every few seconds (`drain`, then storage.activity_rows), and the dashboard sums the replicas.
Recording is a dict update under a lock: well under a microsecond per call.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field, fields

from server.telemetry.metrics import LATENCY_BUCKETS, LATENESS_BUCKETS

# gRPC codes a REST client sees as 5xx (rpc.http_error): the service's fault, not the caller's.
SERVER_ERROR_CODES = frozenset(
    {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "DATA_LOSS"}
)


@dataclass
class Minute:
    """What one process did in one minute (its start, in seconds since the epoch)."""

    start: int
    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    # Counts per LATENCY_BUCKETS bound, and one past the last (not cumulative).
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    emails_sent: int = 0
    emails_failed: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    lateness: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS) + 1))


# Minute's fields but its start: counts, and lists of counts per bucket.
COUNT_FIELDS = tuple(f.name for f in fields(Minute) if f.type == "int" and f.name != "start")
BUCKET_FIELDS = tuple(f.name for f in fields(Minute) if f.type == "list[int]")

_lock = threading.Lock()
_minutes: dict[int, Minute] = {}


def _minute(now: float) -> Minute:
    start = int(now // 60 * 60)
    found = _minutes.get(start)
    if found is None:
        found = _minutes[start] = Minute(start)
    return found


def request(code: str, seconds: float | None) -> None:
    """An RPC ended with `code`; `seconds` None: a live stream, whose life is no latency."""
    with _lock:
        minute = _minute(time.time())
        minute.requests += 1
        if code in SERVER_ERROR_CODES:
            minute.server_errors += 1
        elif code != "OK":
            minute.client_errors += 1
        if seconds is not None:
            minute.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


def delivery(kind: str, delivered: bool) -> None:
    """An attempt of an `email` or `webhook` message: delivered, or failed (a retry or not)."""
    with _lock:
        minute = _minute(time.time())
        if kind == "email":
            minute.emails_sent += delivered
            minute.emails_failed += not delivered
        else:
            minute.webhooks_sent += delivered
            minute.webhooks_failed += not delivered


def reminder_late(seconds: float) -> None:
    with _lock:
        minute = _minute(time.time())
        minute.lateness[bisect.bisect_left(LATENESS_BUCKETS, seconds)] += 1


def drain() -> list[Minute]:
    """The minutes recorded since the last drain (the caller stores them, or puts them back)."""
    with _lock:
        found = list(_minutes.values())
        _minutes.clear()
    return found


def put_back(minutes: list[Minute]) -> None:
    """Minutes that could not be stored (database down): merged in, for the next drain."""
    with _lock:
        for old in minutes:
            current = _minutes.setdefault(old.start, Minute(old.start))
            for name in COUNT_FIELDS:
                setattr(current, name, getattr(current, name) + getattr(old, name))
            for name in BUCKET_FIELDS:
                pairs = zip(getattr(current, name), getattr(old, name), strict=True)
                setattr(current, name, [a + b for a, b in pairs])
