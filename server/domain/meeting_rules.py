"""The contract's rules for what a client sends to create or update a meeting."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from server.domain import errors, text
from server.domain.meeting_values import Attendee, MeetingPatch, NotifyBefore, Timezone

NAME_MAX = 255
ATTENDEES_MAX = 500
EMAIL_MAX = 254
# The last second of year 9999: anything later only makes sense as milliseconds.
MAX_SECONDS = 253_402_300_799
NOTIFY_BEFORE_RANGES = {"minutes": (0, 55), "hours": (1, 24), "days": (1, 30), "weeks": (1, 4)}
TIMEZONE_OFFSET_RANGE = (-12 * 60, 14 * 60)
# Deliberately simple: one @, no spaces, a dot in the domain. Mail servers decide the rest.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    if "name" in present and text.check(problems, "name", patch.name):
        _check_name(patch.name, problems)
    _check_dates(patch, current_start, current_end, problems)
    emails = (a.email for a in patch.attendees)
    if "attendees" in present and text.check(problems, "attendees", *emails):
        _check_attendees(patch.attendees, problems)
    if "notify_before" in present and patch.notify_before is not None:
        _check_notify_before(patch.notify_before, problems)
    zone = patch.timezone
    if "timezone" in present and zone is not None and text.check(problems, "timezone", zone.name):
        _check_timezone(zone, problems)
    if "host_id" in present and None not in (patch.host_id, current_host):
        if patch.host_id != current_host:
            problems.add("host_id", "cannot be changed")
    problems.raise_if_any()


def _check_name(name: str, problems: errors.FieldErrors) -> None:
    if not name.strip():
        problems.add("name", "must not be blank")
    elif len(name) > NAME_MAX:
        problems.add("name", f"must be at most {NAME_MAX} characters")


def _check_dates(
    patch: MeetingPatch,
    current_start: int | None,
    current_end: int | None,
    problems: errors.FieldErrors,
) -> None:
    """Each given date in whole seconds, and the end (given or current) not before the start."""
    given = {"start_date", "end_date"} & patch.present
    dates_ok = True
    for name in ("start_date", "end_date"):
        if name not in given:
            continue
        problem = seconds_problem(getattr(patch, name))
        if problem:
            problems.add(name, problem)
            dates_ok = False
    if dates_ok and given:
        start = patch.start_date if "start_date" in given else current_start
        end = patch.end_date if "end_date" in given else current_end
        if start is not None and end is not None and end < start:
            problems.add("end_date", "must not be before start_date")


def _check_attendees(attendees: tuple[Attendee, ...], problems: errors.FieldErrors) -> None:
    if len(attendees) > ATTENDEES_MAX:
        problems.add("attendees", f"must have at most {ATTENDEES_MAX} entries")
    for index, attendee in enumerate(attendees):
        if attendee.id is not None and attendee.id <= 0:
            _attendee_problem(problems, index, "id", "must be a positive user id")
        elif attendee.email:
            if not is_email(attendee.email):
                _attendee_problem(problems, index, "email", "is not a valid address")
        elif attendee.id is None:
            _attendee_problem(problems, index, "", "needs an id or an email")


def _attendee_problem(problems: errors.FieldErrors, index: int, part: str, text: str) -> None:
    """REST says "attendee 2: email is not a valid address" (counting from 1); gRPC names
    the element (`attendees[1].email`, from 0) and says "is not a valid address"."""
    path = f"attendees[{index}]" + (f".{part}" if part else "")
    rest = f"attendee {index + 1}: {part} {text}" if part else f"attendee {index + 1}: {text}"
    problems.add("attendees", rest, path, text)


def _check_notify_before(notify_before: NotifyBefore, problems: errors.FieldErrors) -> None:
    metric, value = notify_before.metric, notify_before.value
    if metric not in NOTIFY_BEFORE_RANGES:
        problems.add(
            "notify_before",
            "metric must be one of minutes, hours, days, weeks",
            "notify_before.metric",
        )
        return
    low, high = NOTIFY_BEFORE_RANGES[metric]
    if not low <= value <= high:
        problems.add(
            "notify_before",
            f"value for {metric} must be from {low} to {high}",
            "notify_before.value",
        )


def _check_timezone(timezone: Timezone, problems: errors.FieldErrors) -> None:
    low, high = TIMEZONE_OFFSET_RANGE
    if not is_time_zone(timezone.name):
        problems.add(
            "timezone", "name must be an IANA time zone name such as Europe/Riga", "timezone.name"
        )
    if not low <= timezone.offset <= high:
        problems.add("timezone", f"offset must be from {low} to {high} minutes", "timezone.offset")
