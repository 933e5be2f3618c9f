"""Limits on sign-in, sign-up and guest sessions, per source address and per login.

Each costs an Argon2 hash (about 50 ms of a core), and guests need no credential, so without
limits one client could guess passwords or fill the users table. Counters are fixed windows
in PostgreSQL, so every replica counts the same attempts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.domain import clock, errors
from server.storage import rate_limit_rows


@dataclass(frozen=True)
class Limit:
    """At most `hits` in `seconds`."""

    hits: int
    seconds: int


def _refuse(hits: int, started: datetime, limit: Limit) -> None:
    if hits > limit.hits:
        elapsed = (clock.now() - started).total_seconds()
        raise errors.TooManyRequests(max(1, math.ceil(limit.seconds - elapsed)))


def hit(key: str, limit: Limit) -> None:
    """Counts an attempt of `key`; TooManyRequests once there are more than the limit."""
    if random.random() < 0.01:  # noqa: S311 (housekeeping, not security)
        rate_limit_rows.sweep(clock.now() - timedelta(days=1))
    hits, started = rate_limit_rows.hit(key, clock.now(), timedelta(seconds=limit.seconds))
    _refuse(hits, started, limit)


def check(key: str, limit: Limit) -> None:
    """TooManyRequests if `key` already reached its limit (counts nothing: see `hit`)."""
    current = rate_limit_rows.peek(key, clock.now(), timedelta(seconds=limit.seconds))
    if current is not None:
        _refuse(current[0] + 1, current[1], limit)
