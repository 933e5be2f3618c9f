"""Meeting settings kept in the database, so that operators change them without a restart.

The delivery loop rereads them every second (`delivery.loop.SWEEP_SECONDS`): a new meeting URL
template or sender address applies to the emails sent from then on, on every replica. Values
are stored as text; booleans as "true"/"false", numbers in decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from server.domain import clock, errors, meeting_rules, text
from server.storage.database import db
from server.storage.models import MeetingSetting


@dataclass(frozen=True)
class MeetingSettings:
    # The join link in emails: `%s` is replaced by the meeting `_id`.
    meeting_url_template: str = "https://meet.example.com/%s"
    # The From of every notification email ("Name <address>" or an address).
    sender: str = "Meetings <no-reply@example.com>"
    # The service's name as emails show it (templates: app.name).
    app_name: str = "Meetings"
    # The recording-done email to the host when a finished meeting's recordings are ready...
    recording_email: bool = True
    # ... and to its attendees too (they may list the recordings).
    recording_email_attendees: bool = False
    # How long the download links in that email work. At most 7: an S3 pre-signed link
    # (SigV4) cannot outlive a week.
    recording_link_days: int = 7

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    def meeting_url(self, meeting_id: str) -> str:
        return self.meeting_url_template.replace("%s", meeting_id)


NAMES = tuple(field.name for field in fields(MeetingSettings))
_TYPES = {field.name: field.type for field in fields(MeetingSettings)}
LINK_DAYS_MAX = 7


def load() -> MeetingSettings:
    """The current settings (defaults for those never set)."""
    return MeetingSettings(**{name: _parse(name, value) for name, value in stored(NAMES).items()})


def _parse(name: str, value: str) -> Any:
    kind = _TYPES[name]
    if kind == "bool":
        return value == "true"
    if kind == "int":
        return int(value)
    return value


def as_text(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def problems(name: str, value: str) -> list[str]:
    """Why `value` (as text) is not usable for setting `name` (empty if it is)."""
    kind = _TYPES.get(name)
    if kind == "bool":
        return [] if value in ("true", "false") else ["must be true or false"]
    if kind == "int":
        if not value.isdigit() or not 1 <= int(value) <= LINK_DAYS_MAX:
            return [f"must be a whole number of days from 1 to {LINK_DAYS_MAX}"]
        return []
    if name == "app_name":
        return (
            []
            if 0 < len(value) <= 100 and value.isprintable()
            else ["must be 1 to 100 printable characters"]
        )
    if name == "meeting_url_template":
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed [ in the host
            return ["must be an http:// or https:// URL"]
        found = []
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append("must be an http:// or https:// URL")
        if value.count("%s") != 1:
            found.append("must contain %s exactly once (replaced by the meeting _id)")
        return found
    if name == "sender":
        display, address = parseaddr(value)
        if not address or not meeting_rules.is_email(address):
            return ["must be an email address, optionally as 'Name <address>'"]
        try:
            Address(display_name=display, addr_spec=address)
        except (ValueError, IndexError):
            return ["must be an email address, optionally as 'Name <address>'"]
        return []
    return [f"unknown setting; known: {', '.join(NAMES)}"]


def update(values: dict[str, str | bool | int]) -> MeetingSettings:
    """Validate and store settings (InvalidFields names each bad one); returns all of them.
    Booleans and numbers may come typed (the admin API) or as text (the command line)."""
    found = errors.FieldErrors()
    texts = {name: as_text(value) for name, value in values.items()}
    for name, value in texts.items():
        if text.check(found, name, value):
            for problem in problems(name, value):
                found.add(name, problem)
    found.raise_if_any()
    with db.atomic():
        store(texts)
    return load()


def stored(names: Sequence[str]) -> dict[str, str]:
    """The stored values among `names` (a name never set is absent)."""
    rows = MeetingSetting.select().where(MeetingSetting.name.in_(list(names)))
    return {row.name: row.value for row in rows}


def store(values: dict[str, str]) -> None:
    """Set each named setting (inserted or replaced), unchecked: callers validate."""
    now = clock.now()
    for name, value in values.items():
        MeetingSetting.insert(name=name, value=value, updated_at=now).on_conflict(
            conflict_target=[MeetingSetting.name],
            update={MeetingSetting.value: value, MeetingSetting.updated_at: now},
        ).execute()
