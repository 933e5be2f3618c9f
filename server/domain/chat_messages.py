"""A meeting's chat as its occupants use it: their dialogs, joining a public meeting's dialog,
the history, sending, read marks, edits, deletions and unread counts.

Only occupants see or write a dialog (others get the same 403 whether the dialog exists or
not); a deletion is for everyone (the hosted API's `force=1`): one's own messages, or any as
the meeting's host, who is the dialog's admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from server.domain import auth, clock, errors, ids, meeting_values, text
from server.domain.meeting_values import Page
from server.storage.database import db
from server.storage.models import ChatDialog, ChatDialogOccupant, ChatMessage, Meeting

NOT_MEMBER = "You are not a member of this dialog"
MESSAGE_MAX = 10_000  # characters of one message
ATTACHMENTS_MAX = 20
PAGE_MAX = 100
IDS_MAX = 100  # messages or dialogs named in one call


@dataclass(frozen=True)
class Attachment:
    type: str
    id: str
    url: str


@dataclass(frozen=True)
class MessageView:
    id: str
    dialog_id: str
    message: str
    sender_id: int
    date_sent: int
    created_at: datetime
    updated_at: datetime
    read_ids: list[int]
    delivered_ids: list[int]
    attachments: list[Attachment]
    read_by_caller: bool


@dataclass(frozen=True)
class DialogView:
    id: str
    meeting_id: str
    name: str
    host_id: int
    occupant_ids: list[int]
    created_at: datetime
    updated_at: datetime
    last_message: MessageView | None
    unread: int


@dataclass(frozen=True)
class HistoryQuery:
    dialog_id: str
    date_sent: dict[str, float]  # operator (gt, lt, gte, lte) -> unix seconds
    limit: int = PAGE_MAX
    skip: int = 0
    newest_first: bool = False
    mark_read: bool = True


def _is_member(dialog_id: str, user_id: int) -> bool:
    return (
        ChatDialogOccupant.select()
        .where((ChatDialogOccupant.dialog == dialog_id) & (ChatDialogOccupant.user_id == user_id))
        .exists()
    )


def occupied(caller: auth.Caller, dialog_id: str) -> ChatDialog:
    """The dialog if the caller occupies it; the 403 otherwise (also for no such dialog)."""
    text.require(chat_dialog_id=dialog_id)
    if not _is_member(dialog_id, caller.user_id):
        raise errors.PermissionDenied(NOT_MEMBER)
    return ChatDialog.get_by_id(dialog_id)


def view(message: ChatMessage, viewer: int) -> MessageView:
    return MessageView(
        id=message.id,
        dialog_id=message.dialog_id,
        message=message.message,
        sender_id=message.sender_id,
        date_sent=message.date_sent,
        created_at=message.created_at,
        updated_at=message.updated_at,
        read_ids=sorted(message.read_ids),
        delivered_ids=sorted(message.delivered_ids),
        attachments=[Attachment(**a) for a in message.attachments],
        read_by_caller=viewer in message.read_ids,
    )


def _unread(dialog_id: str, user_id: int) -> peewee.ModelSelect[ChatMessage]:
    return ChatMessage.select().where(
        (ChatMessage.dialog == dialog_id) & ~(ChatMessage.read_ids.contains(user_id))
    )


def _dialog_view(dialog: ChatDialog, caller: auth.Caller) -> DialogView:
    meeting = Meeting.get_by_id(dialog.meeting_id)
    occupants = ChatDialogOccupant.select().where(ChatDialogOccupant.dialog == dialog.id)
    last = (
        ChatMessage.select()
        .where(ChatMessage.dialog == dialog.id)
        .order_by(ChatMessage.date_sent.desc(), ChatMessage.id.desc())
        .first()
    )
    return DialogView(
        id=dialog.id,
        meeting_id=dialog.meeting_id,
        name=dialog.name,
        host_id=int(meeting.host_id),
        occupant_ids=sorted(o.user_id for o in occupants),
        created_at=dialog.created_at,
        updated_at=dialog.updated_at,
        last_message=None if last is None else view(last, caller.user_id),
        unread=_unread(dialog.id, caller.user_id).count(),
    )


def dialogs(
    caller: auth.Caller, dialog_ids: Sequence[str], limit: int, skip: int
) -> Page[DialogView]:
    """The dialogs the caller occupies (only those of `dialog_ids`, if any), newest first."""
    text.require(_id=",".join(dialog_ids))
    if not 1 <= limit <= PAGE_MAX:
        raise errors.InvalidFields({"limit": [f"must be 1 to {PAGE_MAX}"]})
    where = ChatDialogOccupant.user_id == caller.user_id
    if dialog_ids:
        where &= ChatDialog.id.in_(list(dialog_ids))
    query = ChatDialog.select().join(ChatDialogOccupant).where(where)
    rows = query.order_by(ChatDialog.updated_at.desc(), ChatDialog.id).limit(limit).offset(skip)
    return Page([_dialog_view(d, caller) for d in rows], query.count(), limit, skip)


def subscribe(caller: auth.Caller, dialog_id: str) -> DialogView:
    """Joins a public meeting's dialog; an occupant gets the dialog as it is."""
    text.require(_id=dialog_id)
    dialog = ChatDialog.get_or_none(ChatDialog.id == dialog_id)
    member = dialog is not None and _is_member(dialog_id, caller.user_id)
    if dialog is None or (not member and not Meeting.get_by_id(dialog.meeting_id).public):
        raise errors.PermissionDenied(NOT_MEMBER)
    if not member:
        ChatDialogOccupant.insert(
            dialog=dialog_id, user_id=caller.user_id, joined=True
        ).on_conflict_ignore().execute()
    return _dialog_view(dialog, caller)


def send(
    caller: auth.Caller, dialog_id: str, message: str, attachments: list[Attachment]
) -> MessageView:
    """A new message from the caller in a dialog it occupies."""
    dialog = occupied(caller, dialog_id)
    problems = errors.FieldErrors()
    text.check(problems, "message", message)
    for n, a in enumerate(attachments, 1):
        for name in ("type", "id", "url"):
            text.check(problems, f"attachments {n}: {name}", getattr(a, name))
    problems.raise_if_any()
    if not message.strip() and not attachments:
        problems.add("message", "is required")
    if len(message) > MESSAGE_MAX:
        problems.add("message", f"must be at most {MESSAGE_MAX} characters")
    if len(attachments) > ATTACHMENTS_MAX:
        problems.add("attachments", f"must be at most {ATTACHMENTS_MAX}")
    problems.raise_if_any()
    now = clock.now()
    with db.atomic():
        # The dialog's row first: its lock, held to commit, makes the messages of one dialog
        # commit in the order of their `seq` (a watch resuming after one never misses one).
        ChatDialog.update(updated_at=now).where(ChatDialog.id == dialog.id).execute()
        row = ChatMessage.create(
            id=ids.new_id(),
            dialog=dialog.id,
            sender_id=caller.user_id,
            message=message,
            attachments=[a.__dict__ for a in attachments],
            date_sent=int(now.timestamp()),
            created_at=now,
            updated_at=now,
            read_ids=[caller.user_id],
            delivered_ids=[caller.user_id],
        )
    return view(row, caller.user_id)


def history(caller: auth.Caller, query: HistoryQuery) -> Page[MessageView]:
    """A page of the dialog's messages; marked read for the caller unless asked not to."""
    occupied(caller, query.dialog_id)
    if not 1 <= query.limit <= PAGE_MAX:
        raise errors.InvalidFields({"limit": [f"must be 1 to {PAGE_MAX}"]})
    where = ChatMessage.dialog == query.dialog_id
    for op, value in query.date_sent.items():
        where &= meeting_values.ORDERINGS[op](ChatMessage.date_sent, value)
    order = [ChatMessage.date_sent, ChatMessage.id]
    if query.newest_first:
        order = [ChatMessage.date_sent.desc(), ChatMessage.id.desc()]
    page = ChatMessage.select().where(where).order_by(*order).limit(query.limit)
    rows = list(page.offset(query.skip))
    if query.mark_read and rows:
        _mark([r.id for r in rows], caller.user_id, ChatMessage.read_ids)
        # The same page again, as marked (one query).
        marked = ChatMessage.select().where(ChatMessage.id.in_([r.id for r in rows]))
        rows = list(marked.order_by(*order))
    return Page([view(r, caller.user_id) for r in rows], len(rows), query.limit, query.skip)


def _mark(message_ids: list[str], user_id: int, column: Any) -> None:
    """Adds the user to `column` (read_ids or delivered_ids) of these messages, once."""
    if not message_ids:
        return
    ChatMessage.update(
        {column: peewee.fn.array_append(column, user_id), ChatMessage.updated_at: clock.now()}
    ).where(ChatMessage.id.in_(message_ids) & ~(column.contains(user_id))).execute()


def _message_ids(raw: str) -> list[str]:
    found = [part.strip() for part in raw.split(",") if part.strip()]
    text.require(ids=raw)
    if not found or len(found) > IDS_MAX:
        raise errors.InvalidFields({"ids": [f"must name 1 to {IDS_MAX} messages"]})
    return found


def update(
    caller: auth.Caller,
    raw_ids: str,
    dialog_id: str,
    *,
    read: bool,
    delivered: bool,
    new_text: str | None,
) -> None:
    """Marks the messages read and/or delivered for the caller; edits the caller's own."""
    dialog = occupied(caller, dialog_id)
    message_ids = _message_ids(raw_ids)
    rows = list(
        ChatMessage.select().where(
            (ChatMessage.dialog == dialog.id) & ChatMessage.id.in_(message_ids)
        )
    )
    if new_text is not None:
        _edit(caller, rows, new_text)
    found = [r.id for r in rows]
    if read:
        _mark(found, caller.user_id, ChatMessage.read_ids)
    if delivered or read:
        _mark(found, caller.user_id, ChatMessage.delivered_ids)


def _edit(caller: auth.Caller, rows: list[ChatMessage], new_text: str) -> None:
    text.require(message=new_text)
    if not new_text.strip() or len(new_text) > MESSAGE_MAX:
        raise errors.InvalidFields({"message": [f"must be 1 to {MESSAGE_MAX} characters"]})
    if any(r.sender_id != caller.user_id for r in rows):
        raise errors.PermissionDenied("You can edit only your own messages")
    ChatMessage.update(message=new_text, updated_at=clock.now()).where(
        ChatMessage.id.in_([r.id for r in rows])
    ).execute()


@dataclass(frozen=True)
class Deletion:
    deleted: list[str]
    not_found: list[str]
    wrong_permissions: list[str]


def delete(caller: auth.Caller, raw_ids: str) -> Deletion:
    """Deletes messages for everyone: the caller's own, or any in a meeting it hosts."""
    message_ids = _message_ids(raw_ids)
    # Each message with the host of its meeting (one query).
    rows = {
        r.id: r
        for r in ChatMessage.select(
            ChatMessage.id, ChatMessage.sender_id, Meeting.host.alias("host_id")
        )
        .join(ChatDialog)
        .join(Meeting)
        .where(ChatMessage.id.in_(message_ids))
        .objects()
    }
    allowed: list[str] = []
    wrong: list[str] = []
    for message_id in message_ids:
        row = rows.get(message_id)
        if row is None:
            continue
        mine = caller.user_id in (row.sender_id, getattr(row, "host_id"))  # noqa: B009 (joined)
        (allowed if mine else wrong).append(message_id)
    if allowed:
        ChatMessage.delete().where(ChatMessage.id.in_(allowed)).execute()
    missing = [m for m in message_ids if m not in rows]
    return Deletion(allowed, missing, wrong)


def unread_counts(caller: auth.Caller, dialog_ids: Sequence[str]) -> dict[str, int]:
    """{"total": unread in every dialog the caller occupies, dialog id: unread in it}."""
    text.require(chat_dialog_ids=",".join(dialog_ids))
    if len(dialog_ids) > IDS_MAX:
        raise errors.InvalidFields({"chat_dialog_ids": [f"must name at most {IDS_MAX} dialogs"]})
    mine = ChatDialogOccupant.select(ChatDialogOccupant.dialog).where(
        ChatDialogOccupant.user_id == caller.user_id
    )
    unread = (
        ChatMessage.select(ChatMessage.dialog, peewee.fn.count(ChatMessage.id).alias("n"))
        .where(ChatMessage.dialog.in_(mine) & ~(ChatMessage.read_ids.contains(caller.user_id)))
        .group_by(ChatMessage.dialog)
    )
    per_dialog = {row.dialog_id: int(getattr(row, "n")) for row in unread}  # noqa: B009
    counts = {"total": sum(per_dialog.values())}
    for dialog_id in dialog_ids:
        counts[dialog_id] = per_dialog.get(dialog_id, 0)
    return counts
