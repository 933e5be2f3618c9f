"""A live watch of a meeting dialog's new messages, for one occupant, across replicas.

A message's insert NOTIFYs its dialog's id (migration 6), which the process's one `Fanout`
hands to the watches of that dialog; each then reads the messages after its cursor, the
`seq` of the last one it sent (seq commits in order within a dialog: chat_messages.send).
A watch holds no database connection while it waits. When nothing happens for
`keepalive_seconds` it checks that the session is still valid and the caller still an
occupant (ending with the error if not) and sends a keepalive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import peewee

from server.domain import auth, chat_messages, errors, ids, text
from server.domain.chat_messages import MessageView
from server.storage.database import db
from server.storage.listen import Fanout, Subscription
from server.storage.models import ChatDialogOccupant, ChatMessage

CHANNEL = "chat_messages"
BATCH = 100  # messages read per pass


@dataclass(frozen=True)
class Keepalive:
    """Nothing new for a while: the stream is alive."""


Event = MessageView | Keepalive


class Watch:
    """The messages of `dialog_id` after `after_id` (None: from now on). Construct it inside a
    connection: the caller's membership and the cursor are checked there, so that a refusal
    comes before the stream starts."""

    def __init__(
        self,
        fanout: Fanout,
        caller: auth.Caller,
        token: str,
        dialog_id: str,
        after_id: str | None,
        keepalive_seconds: float,
    ) -> None:
        chat_messages.occupied(caller, dialog_id)
        self._fanout = fanout
        self._caller = caller
        self._token = token
        self._dialog_id = dialog_id
        self._keepalive_seconds = keepalive_seconds
        self._cursor = _cursor(dialog_id, after_id)
        self._subscription: Subscription | None = None

    def events(self, keep_going: Callable[[], bool]) -> Iterator[Event]:
        """Every new message, and keepalives, while `keep_going()`; each read on a connection
        of its own."""
        with self._fanout.subscribe(self._dialog_id) as subscription:
            self._subscription = subscription
            seen = subscription.version()  # before the read: a message after it wakes us
            quiet_since = time.monotonic()
            while keep_going():
                with db.connection_context():
                    messages = self._new_messages()
                yield from messages
                if messages:
                    quiet_since = time.monotonic()
                    if len(messages) == BATCH:
                        continue
                quiet_left = quiet_since + self._keepalive_seconds - time.monotonic()
                if quiet_left <= 0:
                    with db.connection_context():
                        self._still_allowed()
                    yield Keepalive()
                    quiet_since = time.monotonic()
                    continue
                seen = subscription.wait(seen, quiet_left)

    def cancel(self) -> None:
        """Wakes a waiting `events` (the call ended); it stops once `keep_going()` says so."""
        if self._subscription is not None:
            self._subscription.cancel()

    def _new_messages(self) -> list[MessageView]:
        """The next messages after the cursor, none once the caller is no occupant."""
        occupant = ChatDialogOccupant.select().where(
            (ChatDialogOccupant.dialog == self._dialog_id)
            & (ChatDialogOccupant.user_id == self._caller.user_id)
        )
        rows = list(
            ChatMessage.select()
            .where(
                (ChatMessage.dialog == self._dialog_id)
                & (ChatMessage.seq > self._cursor)
                & peewee.fn.EXISTS(occupant)
            )
            .order_by(ChatMessage.seq)
            .limit(BATCH)
        )
        if rows:
            self._cursor = rows[-1].seq
        return [chat_messages.view(row, self._caller.user_id) for row in rows]

    def _still_allowed(self) -> None:
        auth.authenticate(self._token)  # signed out or expired: Unauthenticated
        chat_messages.occupied(self._caller, self._dialog_id)


def _cursor(dialog_id: str, after_id: str | None) -> int:
    """The seq to read after: that of message `after_id` in the dialog, else the last one."""
    in_dialog = ChatMessage.dialog == dialog_id
    if after_id is None:
        last = ChatMessage.select(peewee.fn.max(ChatMessage.seq)).where(in_dialog).scalar()
        return int(last or 0)
    text.require(after_message_id=after_id)
    row = (
        ChatMessage.select(ChatMessage.seq).where(in_dialog & (ChatMessage.id == after_id)).first()
        if ids.is_valid(after_id)
        else None
    )
    if row is None:
        raise errors.InvalidFields(
            {
                "after_message_id": [
                    "is not a message of this dialog (deleted?): resume from an earlier one,"
                    " or read the history"
                ]
            }
        )
    return int(row.seq)
