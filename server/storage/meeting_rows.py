"""Meeting rows and their statements: the request path's SQL, written once as text.

Every meeting RPC runs these, so they are SQL strings rather than Peewee queries: building a
Peewee query costs more CPU than PostgreSQL spends running it (make bench profile: ~1 ms of
Python per get, three quarters of it in query compilation). A meeting is read together with its
attendees (a `json_agg` sub-select) in one round trip. Parameters always travel separately;
the only text put together at run time is column names and operators from fixed tables here.
They run as prepared statements (storage.database.execute_prepared). Rows carry the domain's
value types (meeting_values.Attendee, Condition): storage knows no rule beyond these shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from server.domain.meeting_values import NUMBER_FIELDS, OPERATORS, Attendee, Condition
from server.storage.database import execute_prepared

# Columns in the order of MeetingRow's fields (attendees excepted).
_COLUMNS = (
    "id",
    "name",
    "start_date",
    "end_date",
    "host_id",
    "record",
    "public",
    "scheduled",
    "notify",
    "notify_before_metric",
    "notify_before_value",
    "timezone_offset",
    "timezone_name",
    "chat_dialog_id",
    "created_at",
    "updated_at",
    "version",
)
# Columns an update may change (everything but the id, host and creation time).
_UPDATABLE = tuple(c for c in _COLUMNS if c not in ("id", "host_id", "created_at"))

_ATTENDEES = (
    "coalesce((SELECT json_agg(json_build_array(a.user_id, a.email) ORDER BY a.position)"
    " FROM meeting_attendees a WHERE a.meeting_id = m.id), '[]')"
)
_SELECT_FROM = f"SELECT {', '.join('m.' + c for c in _COLUMNS)}, {_ATTENDEES} FROM"
_SELECT = f"{_SELECT_FROM} meetings m"
_BY_ID = f"{_SELECT} WHERE m.id = %s"
_BY_ID_FOR_UPDATE = f"{_BY_ID} FOR UPDATE OF m"
_INSERT = (
    f"INSERT INTO meetings ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
)
_UPDATE = f"UPDATE meetings SET {', '.join(c + ' = %s' for c in _UPDATABLE)} WHERE id = %s"
_ATTENDEE_ROW = "(%s::integer, %s::integer, %s::text, %s::text)"

# What list filters may compare (field -> column) and how (op -> SQL).
FILTER_COLUMNS = {
    "start_date": "start_date",
    "end_date": "end_date",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "scheduled": "scheduled",
    "_id": "id",
}
_OPERATORS = {
    "eq": "= %s",
    "gt": "> %s",
    "gte": ">= %s",
    "lt": "< %s",
    "lte": "<= %s",
    "ne": "<> %s",
    "in": "= ANY(%s)",
    "nin": "<> ALL(%s)",
}
assert tuple(_OPERATORS) == OPERATORS


@dataclass
class MeetingRow:
    """A meetings row with its attendees in order (mutable: update changes it, then saves)."""

    id: str
    name: str
    start_date: int
    end_date: int
    host_id: int
    record: bool
    public: bool
    scheduled: bool
    notify: bool
    notify_before_metric: str | None
    notify_before_value: int | None
    timezone_offset: int | None
    timezone_name: str | None
    chat_dialog_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    attendees: tuple[Attendee, ...]

    def values(self, columns: Sequence[str]) -> list[Any]:
        return [getattr(self, column) for column in columns]


assert tuple(f.name for f in fields(MeetingRow))[:-1] == _COLUMNS


def _row(values: Sequence[Any]) -> MeetingRow:
    attendees = tuple(Attendee(id=a[0], email=a[1]) for a in values[-1])
    return MeetingRow(*values[:-1], attendees)  # type: ignore[call-arg]  # _COLUMNS order


def fetch(meeting_id: str, *, for_update: bool = False) -> MeetingRow | None:
    """The meeting with its attendees (locked until the transaction ends if `for_update`)."""
    cursor = execute_prepared(_BY_ID_FOR_UPDATE if for_update else _BY_ID, (meeting_id,))
    found = cursor.fetchone()
    return None if found is None else _row(found)


def _where(conditions: Iterable[Condition], alias: str) -> tuple[list[str], list[Any]]:
    """SQL for validated list filters: numbers compare as whole seconds, lists as arrays."""
    clauses, params = [], []
    for condition in conditions:
        value: Any = condition.value
        if condition.field in NUMBER_FIELDS:
            value = [int(v) for v in value] if isinstance(value, tuple) else int(value)
        elif isinstance(value, tuple):
            value = list(value)
        clauses.append(f"{alias}{FILTER_COLUMNS[condition.field]} {_OPERATORS[condition.op]}")
        params.append(value)
    return clauses, params


def _mine(
    user_id: int, email: str | None, conditions: Sequence[Condition], columns: str
) -> tuple[str, list[Any]]:
    """`columns` of the meetings the user hosts, attends by id or attends by account email that
    match `conditions`: a UNION ALL of three branches, each driven by its own index (hosted by
    (host_id, start_date), attended by the attendee indexes, then the meeting by its key) and
    filtered at once. Each branch stays on its index whatever the planner guesses about the
    others: with one filter over the union, a host of thousands of meetings made it scan the
    whole table (make bench, after the create load). A meeting can come out of more than one
    branch; callers dedupe."""
    clauses, values = _where(conditions, "m.")
    attended = f"SELECT {columns} FROM meeting_attendees a JOIN meetings m ON m.id = a.meeting_id"
    branches: list[tuple[str, str, int | str]] = [
        (f"SELECT {columns} FROM meetings m", "m.host_id = %s", user_id),
        (attended, "a.user_id = %s", user_id),
    ]
    if email:
        branches.append((attended, "a.email_norm = %s", email))
    texts, params = [], []
    for select, who, value in branches:
        texts.append(f"{select} WHERE {' AND '.join([who, *clauses])}")
        params += [value, *values]
    return " UNION ALL ".join(texts), params


def list_for(
    user_id: int,
    email: str | None,
    conditions: Sequence[Condition],
    limit: int,
    offset: int,
) -> list[MeetingRow]:
    """The user's meetings matching `conditions`, by start date then id."""
    mine, params = _mine(user_id, email, conditions, "m.*")
    page = (
        f"SELECT DISTINCT ON (m.start_date, m.id) m.* FROM ({mine}) AS m"
        " ORDER BY m.start_date, m.id LIMIT %s OFFSET %s"
    )
    cursor = execute_prepared(
        f"{_SELECT_FROM} ({page}) AS m ORDER BY m.start_date, m.id", (*params, limit, offset)
    )
    return [_row(found) for found in cursor.fetchall()]


def count_for(user_id: int, email: str | None, conditions: Sequence[Condition]) -> int:
    mine, params = _mine(user_id, email, conditions, "m.id")
    cursor = execute_prepared(f"SELECT count(DISTINCT id) FROM ({mine}) AS mine", params)
    return int(cursor.fetchone()[0])


def insert(row: MeetingRow) -> None:
    """Insert the meeting and its attendees, in one statement (one round trip)."""
    if not row.attendees:
        execute_prepared(_INSERT, row.values(_COLUMNS))
        return
    values, params = _attendee_values(row.attendees)
    execute_prepared(
        f"WITH meeting AS ({_INSERT} RETURNING id)"
        " INSERT INTO meeting_attendees (meeting_id, position, user_id, email, email_norm)"
        " SELECT meeting.id, a.position, a.user_id, a.email, a.email_norm"
        f" FROM meeting, (VALUES {values}) AS a (position, user_id, email, email_norm)",
        (*row.values(_COLUMNS), *params),
    )


def save(row: MeetingRow) -> None:
    """Write back the row's updatable columns (not its attendees)."""
    execute_prepared(_UPDATE, (*row.values(_UPDATABLE), row.id))


def delete(meeting_id: str) -> None:
    # Attendees and the chat dialog go with it (ON DELETE CASCADE).
    execute_prepared("DELETE FROM meetings WHERE id = %s", (meeting_id,))


def insert_attendees(meeting_id: str, attendees: Sequence[Attendee]) -> None:
    if not attendees:
        return
    values, params = _attendee_values(attendees)
    execute_prepared(
        "INSERT INTO meeting_attendees (meeting_id, position, user_id, email, email_norm)"
        " SELECT %s, a.position, a.user_id, a.email, a.email_norm"
        f" FROM (VALUES {values}) AS a (position, user_id, email, email_norm)",
        (meeting_id, *params),
    )


def _attendee_values(attendees: Sequence[Attendee]) -> tuple[str, list[Any]]:
    """A VALUES list of (position, user_id, email, email_norm) rows, typed (NULLs included)."""
    params: list[Any] = []
    for position, a in enumerate(attendees):
        params += [position, a.id, a.email, normalize_email(a.email)]
    return ", ".join([_ATTENDEE_ROW] * len(attendees)), params


def replace_attendees(meeting_id: str, attendees: Sequence[Attendee]) -> None:
    execute_prepared("DELETE FROM meeting_attendees WHERE meeting_id = %s", (meeting_id,))
    insert_attendees(meeting_id, attendees)


def insert_chat_dialog(
    dialog_id: str, meeting_id: str, name: str, at: datetime, occupant_ids: Iterable[int]
) -> None:
    """The meeting's chat dialog and its occupants, in one statement (it runs on every create
    with chat)."""
    execute_prepared(
        "WITH dialog AS (INSERT INTO chat_dialogs (id, meeting_id, name, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id)"
        " INSERT INTO chat_dialog_occupants (dialog_id, user_id)"
        " SELECT dialog.id, occupant FROM dialog, unnest(%s::integer[]) AS occupant",
        (dialog_id, meeting_id, name, at, at, sorted(set(occupant_ids))),
    )


def normalize_email(email: str | None) -> str | None:
    """lower(trimmed email), or None: how attendee emails are matched to accounts."""
    email = (email or "").strip().lower()
    return email or None
