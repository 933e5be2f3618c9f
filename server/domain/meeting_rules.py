"""What a client sends to create or update a meeting, and the contract's validation rules."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache

from server.domain import errors

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
READ_ONLY_FIELDS = ("_id", "host_id", "chat_dialog_id", "created_at", "updated_at")

NAME_MAX = 255
ATTENDEES_MAX = 500
EMAIL_MAX = 254
# The last second of year 9999: anything later only makes sense as milliseconds.
MAX_SECONDS = 253_402_300_799
NOTIFY_BEFORE_RANGES = {"minutes": (0, 55), "hours": (1, 24), "days": (1, 30), "weeks": (1, 4)}
NOTIFY_BEFORE_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
TIMEZONE_OFFSET_RANGE = (-12 * 60, 14 * 60)
# Deliberately simple: one @, no spaces, a dot in the domain. Mail servers decide the rest.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    extra: dict[str, object] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    return name in _time_zone_names()


def is_email(value: str) -> bool:
    return len(value) <= EMAIL_MAX and bool(_EMAIL.match(value))


def seconds_problem(value: float) -> str | None:
    """Why `value` is not a usable unix time in seconds, or None."""
    if value != value or value in (float("inf"), float("-inf")):
        return "must be a number of seconds"
    if value > MAX_SECONDS:
        return "is beyond year 9999: send unix time in seconds, not milliseconds"
    if value < 0:
        return "must not be negative"
    if not float(value).is_integer():
        return "must be whole seconds"
    return None


def validate(
    patch: MeetingPatch,
    *,
    creating: bool,
    current_start: int | None = None,
    current_end: int | None = None,
    current_host: int | None = None,
) -> None:
    """Raise errors.InvalidFields with one entry per bad field; return if all is well."""
    problems = errors.FieldErrors()
    present = patch.present
    if creating:
        for required in ("name", "start_date", "end_date"):
            if required not in present:
                problems.add(required, "is required")

    if "name" in present:
        if not patch.name.strip():
            problems.add("name", "must not be blank")
        elif len(patch.name) > NAME_MAX:
            problems.add("name", f"must be at most {NAME_MAX} characters")

    dates_ok = True
    for name in ("start_date", "end_date"):
        if name in present:
            problem = seconds_problem(getattr(patch, name))
            if problem:
                problems.add(name, problem)
                dates_ok = False
    if dates_ok and ({"start_date", "end_date"} & present):
        start = patch.start_date if "start_date" in present else current_start
        end = patch.end_date if "end_date" in present else current_end
        if start is not None and end is not None and end < start:
            problems.add("end_date", "must not be before start_date")

    if "attendees" in present:
        if len(patch.attendees) > ATTENDEES_MAX:
            problems.add("attendees", f"must have at most {ATTENDEES_MAX} entries")
        for position, attendee in enumerate(patch.attendees, start=1):
            has_id = attendee.id is not None and attendee.id > 0
            if attendee.id is not None and attendee.id <= 0:
                problems.add("attendees", f"attendee {position}: id must be a positive user id")
            elif attendee.email:
                if not is_email(attendee.email):
                    problems.add("attendees", f"attendee {position}: email is not a valid address")
            elif not has_id:
                problems.add("attendees", f"attendee {position}: needs an id or an email")

    if "notify_before" in present and patch.notify_before is not None:
        metric, value = patch.notify_before.metric, patch.notify_before.value
        if metric not in NOTIFY_BEFORE_RANGES:
            problems.add("notify_before", "metric must be one of minutes, hours, days, weeks")
        else:
            low, high = NOTIFY_BEFORE_RANGES[metric]
            if not low <= value <= high:
                problems.add("notify_before", f"value for {metric} must be from {low} to {high}")

    if "timezone" in present and patch.timezone is not None:
        low, high = TIMEZONE_OFFSET_RANGE
        if not is_time_zone(patch.timezone.name):
            problems.add("timezone", "name must be an IANA time zone name such as Europe/Riga")
        if not low <= patch.timezone.offset <= high:
            problems.add("timezone", f"offset must be from {low} to {high} minutes")

    if (
        "host_id" in present
        and patch.host_id is not None
        and current_host is not None
        and patch.host_id != current_host
    ):
        problems.add("host_id", "cannot be changed")

    problems.raise_if_any()
