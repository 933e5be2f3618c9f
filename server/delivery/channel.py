"""What the delivery loop asks of a channel (email, webhook), and what a channel answers.

The loop claims, fences, records and logs once for every kind of row; a channel prepares a
row's message, sends it, and classifies what happened, with its retry policy beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from server.storage import outbox


@dataclass(frozen=True)
class Result:
    """One attempt's outcome, as the row records it."""

    status: outbox.Status  # sent, failed, cancelled, or scheduled again (a retry)
    recipients: list[dict[str, Any]]
    error: str | None = None
    # Seconds until the retry (status scheduled).
    retry_in: float | None = None


class Channel(Protocol):
    # The outbox rows this channel sends.
    kind: outbox.Kind

    def sweep(self) -> None:
        """The chores of a pass that are not deliveries (reread settings, write rows that fell
        due); the loop calls it about once a second, before claiming."""

    def begin(self, job: outbox.Claimed) -> Any:
        """Start the row's message without delivering it (so that it goes out the moment its
        row is known to be still ours), or None; errors are kept for `send`. The loop calls it
        for the next row while the previous record commits."""

    def send(self, job: outbox.Claimed, begun: Any) -> Result:
        """Deliver the row (finishing what `begin` started, if anything)."""

    def abandon(self, begun: Any) -> None:
        """Drop what `begin` started, undelivered (the row changed, or the loop is stopping)."""

    def failure(self, job: outbox.Claimed, exc: Exception) -> Result:
        """The result of an attempt that failed inside our own code (logged by the loop)."""

    def close(self) -> None: ...
