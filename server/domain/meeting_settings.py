"""Meeting settings kept in the database, so that operators change them without a restart.

The delivery loop rereads them every second (`delivery.loop.SWEEP_SECONDS`): a new meeting URL
template or sender address applies to the emails sent from then on, on every replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from email.headerregistry import Address
from email.utils import parseaddr
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

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    def meeting_url(self, meeting_id: str) -> str:
        return self.meeting_url_template.replace("%s", meeting_id)


NAMES = tuple(field.name for field in fields(MeetingSettings))


def load() -> MeetingSettings:
    """The current settings (defaults for those never set)."""
    return MeetingSettings(**stored(NAMES))


def problems(name: str, value: str) -> list[str]:
    """Why `value` is not usable for setting `name` (empty if it is)."""
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


def update(values: dict[str, str]) -> MeetingSettings:
    """Validate and store settings (InvalidFields names each bad one); returns all of them."""
    found = errors.FieldErrors()
    for name, value in values.items():
        if text.check(found, name, value):
            for problem in problems(name, value.strip()):
                found.add(name, problem)
    found.raise_if_any()
    with db.atomic():
        store({name: value.strip() for name, value in values.items()})
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
