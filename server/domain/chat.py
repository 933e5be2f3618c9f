"""Chat dialogs of meetings: created with `chat: true`, occupants kept in step with the meeting."""

from __future__ import annotations

from collections.abc import Iterable

from server.domain import clock, ids
from server.storage import meeting_rows
from server.storage.models import ChatDialog, ChatDialogOccupant


def create(
    meeting_id: str, name: str, occupant_ids: Iterable[int], dialog_id: str | None = None
) -> str:
    """Create the meeting's dialog (call inside the meeting's transaction); returns its id."""
    dialog_id = dialog_id or ids.new_id()
    meeting_rows.insert_chat_dialog(dialog_id, meeting_id, name, clock.now(), occupant_ids)
    return dialog_id


def sync(dialog_id: str, name: str, occupant_ids: Iterable[int]) -> None:
    """Make the dialog's name and occupants match the meeting's host and attendees (people who
    joined a public meeting's dialog stay)."""
    wanted = set(occupant_ids)
    rows = ChatDialogOccupant.select().where(ChatDialogOccupant.dialog == dialog_id)
    current = {row.user_id for row in rows}
    gone = {row.user_id for row in rows if not row.joined} - wanted
    if gone:
        ChatDialogOccupant.delete().where(
            ChatDialogOccupant.dialog == dialog_id, ChatDialogOccupant.user_id.in_(sorted(gone))
        ).execute()
    _insert_occupants(dialog_id, wanted - current)
    ChatDialog.update(name=name, updated_at=clock.now()).where(ChatDialog.id == dialog_id).execute()


def delete(dialog_id: str) -> None:
    ChatDialog.delete().where(ChatDialog.id == dialog_id).execute()


def occupants(dialog_id: str) -> set[int]:
    return {
        row.user_id
        for row in ChatDialogOccupant.select().where(ChatDialogOccupant.dialog == dialog_id)
    }


def _insert_occupants(dialog_id: str, user_ids: set[int]) -> None:
    if user_ids:
        ChatDialogOccupant.insert_many(
            [{"dialog": dialog_id, "user_id": uid} for uid in sorted(user_ids)]
        ).execute()
