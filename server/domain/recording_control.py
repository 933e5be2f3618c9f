"""Recording control for media servers: every start and stop of recording, in order, live.

A watch reads the events after its cursor, then sleeps on LISTEN until the next one is written
(or half a second passes), so it works with any number of server replicas; a media server that
reconnects resumes from the last id it saw (see storage.recording_events for the ordering).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from server.storage import database, recording_events
from server.storage.database import db
from server.storage.listen import Listener
from server.storage.recording_events import ControlEvent

BATCH = 500
# Longest sleep between reads when no notification comes.
WAIT_SECONDS = 0.5


class Watch:
    """Events after `after_id` (None: from now on). Call inside a connection: the listener is
    set up, and the cursor read, before the first event is asked for."""

    def __init__(self, database_url: str, after_id: int | None) -> None:
        self._listener = Listener(
            database.connection_params(database_url), recording_events.CHANNEL
        )
        # Listen before reading, so that nothing committed in between is missed.
        self._listener.connect()
        self.cursor = recording_events.last_id() if after_id is None else after_id

    def events(self, keep_going: Callable[[], bool]) -> Iterator[ControlEvent]:
        """Every event from the cursor on, while `keep_going()`; each pass on a connection of
        its own (a watch lasts for hours: it holds none while it waits)."""
        try:
            while keep_going():
                with db.connection_context():
                    events = recording_events.after(self.cursor, BATCH)
                for event in events:
                    self.cursor = event.id
                    yield event
                if len(events) < BATCH:
                    self._listener.wait(WAIT_SECONDS)
        finally:
            self._listener.close()
