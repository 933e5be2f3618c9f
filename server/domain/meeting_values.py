"""The values meetings are made of: what a client sends, what it gets back, what a list asks for.

Plain frozen dataclasses and the field and operator names of the contract, with no rules
(validation lives in meeting_rules and meeting_filters). Storage may use these types.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

# The fields a client may set on a meeting.
FIELDS = (
    "name",
    "start_date",
    "end_date",
    "attendees",
    "record",
    "chat",
    "public",
    "scheduled",
    "notify",
    "notify_before",
    "timezone",
)
# Keys clients echo back from a fetched meeting; accepted in an update mask and ignored
# (host_id is checked: it may not change).
READ_ONLY_FIELDS = ("id", "host_id", "chat_dialog_id", "created_at", "updated_at")

NOTIFY_BEFORE_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}

# List filters: the fields that take comparisons (dates as unix seconds, times as RFC 3339),
# and the operators, the only list of them (the gateway's Lua copy is tested against it).
NUMBER_FIELDS = ("start_date", "end_date")
TIME_FIELDS = ("created_at", "updated_at")
COMPARISONS = ("eq", "gt", "gte", "lt", "lte", "ne")
SET_OPERATORS = ("in", "nin")
OPERATORS = COMPARISONS + SET_OPERATORS
# The ordering comparisons as Python operators (Peewee expressions overload them): the users/v2
# and chat history filters build their conditions with these.
ORDERINGS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
LIMIT_DEFAULT = 100

FilterValue = float | datetime | bool | str | tuple[float, ...] | tuple[datetime, ...]


@dataclass(frozen=True)
class Attendee:
    """A participant: the keys given are kept (None = not given) and echoed back."""

    id: int | None = None
    email: str | None = None


@dataclass(frozen=True)
class NotifyBefore:
    metric: str
    value: int

    @property
    def seconds(self) -> int:
        return self.value * NOTIFY_BEFORE_SECONDS[self.metric]


@dataclass(frozen=True)
class Timezone:
    offset: int
    name: str


@dataclass(frozen=True)
class MeetingPatch:
    """Field values plus `present`: the names of the fields that the client set."""

    present: frozenset[str]
    name: str = ""
    start_date: float = 0.0
    end_date: float = 0.0
    attendees: tuple[Attendee, ...] = ()
    record: bool = False
    chat: bool = False
    public: bool = False
    scheduled: bool = False
    notify: bool = False
    notify_before: NotifyBefore | None = None
    timezone: Timezone | None = None
    host_id: int | None = None


@dataclass(frozen=True)
class MeetingView:
    """A meeting as the API shows it."""

    id: str
    name: str
    start_date: int
    end_date: int
    attendees: tuple[Attendee, ...]
    public: bool
    scheduled: bool
    record: bool
    chat_dialog_id: str | None
    created_at: datetime
    updated_at: datetime
    host_id: int
    notify: bool
    notify_before: NotifyBefore | None
    timezone: Timezone | None
    version: int


@dataclass(frozen=True)
class Condition:
    """One list filter: `field[op]=value`."""

    field: str
    op: str
    value: FilterValue


@dataclass(frozen=True)
class ListQuery:
    conditions: tuple[Condition, ...] = ()
    limit: int = LIMIT_DEFAULT
    offset: int = 0


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list: its items, how many there are in all, and where it starts."""

    items: list[T]
    total: int
    limit: int
    offset: int
