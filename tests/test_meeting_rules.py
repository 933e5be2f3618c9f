"""Validation rules of the contract, on plain values."""

from __future__ import annotations

import pytest

from server.domain import errors, meeting_rules
from server.domain.meeting_values import Attendee, MeetingPatch, NotifyBefore, Timezone

VALID = dict(name="Weekly", start_date=1613729948.0, end_date=1613731012.0)


def patch(**fields: object) -> MeetingPatch:
    return MeetingPatch(present=frozenset(fields), **fields)  # type: ignore[arg-type]


def problems(p: MeetingPatch, **kwargs: object) -> dict[str, list[str]]:
    with pytest.raises(errors.InvalidFields) as caught:
        meeting_rules.validate(p, **kwargs)  # type: ignore[arg-type]
    return caught.value.fields


def test_a_complete_meeting_is_valid() -> None:
    meeting_rules.validate(
        patch(
            **VALID,
            attendees=(Attendee(id=245, email=""), Attendee(id=343), Attendee(email="a@b.co")),
            notify_before=NotifyBefore("minutes", 10),
            timezone=Timezone(120, "Europe/Riga"),
        ),
        creating=True,
    )


def test_create_requires_name_and_dates_one_entry_each() -> None:
    assert problems(patch(), creating=True) == {
        "name": ["is required"],
        "start_date": ["is required"],
        "end_date": ["is required"],
    }


def test_update_requires_nothing() -> None:
    meeting_rules.validate(patch(record=True), creating=False, current_start=1, current_end=2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1613729948000.0, "is beyond year 9999: send unix time in seconds, not milliseconds"),
        (1.5, "must be whole seconds"),
        (-1.0, "must not be negative"),
        (float("nan"), "must be a number of seconds"),
    ],
)
def test_bad_start_dates(value: float, message: str) -> None:
    fields = problems(patch(**{**VALID, "start_date": value}), creating=True)
    assert fields == {"start_date": [message]}


def test_end_before_start_is_rejected_like_the_reference_update_example() -> None:
    fields = problems(
        patch(**{**VALID, "start_date": 1613959948.0, "end_date": 1613956048.0}), creating=True
    )
    assert fields == {"end_date": ["must not be before start_date"]}


def test_end_before_start_uses_stored_start_on_update() -> None:
    fields = problems(patch(end_date=100.0), creating=False, current_start=200, current_end=300)
    assert fields == {"end_date": ["must not be before start_date"]}


@pytest.mark.parametrize(
    ("metric", "value", "ok"),
    [
        ("minutes", 0, True),
        ("minutes", 55, True),
        ("minutes", 56, False),
        ("hours", 0, False),
        ("hours", 1, True),
        ("hours", 24, True),
        ("hours", 25, False),
        ("days", 1, True),
        ("days", 30, True),
        ("days", 31, False),
        ("weeks", 1, True),
        ("weeks", 4, True),
        ("weeks", 5, False),
        ("months", 1, False),
        ("", 0, False),
    ],
)
def test_notify_before_ranges(metric: str, value: int, ok: bool) -> None:
    p = patch(**VALID, notify_before=NotifyBefore(metric, value))
    if ok:
        meeting_rules.validate(p, creating=True)
    else:
        assert list(problems(p, creating=True)) == ["notify_before"]


def test_unknown_time_zone_and_offset_out_of_range() -> None:
    fields = problems(patch(**VALID, timezone=Timezone(2000, "Mars/Olympus")), creating=True)
    assert fields == {
        "timezone": [
            "name must be an IANA time zone name such as Europe/Riga",
            "offset must be from -720 to 840 minutes",
        ]
    }


def test_attendee_needs_id_or_email_and_email_syntax() -> None:
    fields = problems(
        patch(
            **VALID,
            attendees=(
                Attendee(email=""),
                Attendee(email="not-an-email"),
                Attendee(id=0),
                Attendee(id=5),
            ),
        ),
        creating=True,
    )
    assert fields == {
        "attendees": [
            "attendee 1: needs an id or an email",
            "attendee 2: email is not a valid address",
            "attendee 3: id must be a positive user id",
        ]
    }


def test_violations_name_the_element_each_problem_is_about() -> None:
    """gRPC's paths count from 0 and name the part; REST's messages count from 1."""
    bad = patch(
        **VALID,
        attendees=(Attendee(email=""), Attendee(email="x"), Attendee(id=0)),
        notify_before=NotifyBefore("hours", 99),
        timezone=Timezone(2000, "Europe/Riga"),
    )
    with pytest.raises(errors.InvalidFields) as caught:
        meeting_rules.validate(bad, creating=True)
    assert caught.value.violations == [
        ("attendees[0]", "needs an id or an email"),
        ("attendees[1].email", "is not a valid address"),
        ("attendees[2].id", "must be a positive user id"),
        ("notify_before.value", "value for hours must be from 1 to 24"),
        ("timezone.offset", "offset must be from -720 to 840 minutes"),
    ]
    within = caught.value.within("meeting")
    assert within.violations[0] == ("meeting.attendees[0]", "needs an id or an email")
    assert within.fields == caught.value.fields


def test_name_blank_and_too_long() -> None:
    assert problems(patch(**{**VALID, "name": "   "}), creating=True) == {
        "name": ["must not be blank"]
    }
    assert problems(patch(**{**VALID, "name": "x" * 256}), creating=True) == {
        "name": ["must be at most 255 characters"]
    }


def test_host_id_cannot_change_but_may_be_echoed() -> None:
    meeting_rules.validate(patch(host_id=7), creating=False, current_host=7)
    assert problems(patch(host_id=8), creating=False, current_host=7) == {
        "host_id": ["cannot be changed"]
    }


def test_notify_before_seconds() -> None:
    assert NotifyBefore("minutes", 10).seconds == 600
    assert NotifyBefore("weeks", 1).seconds == 7 * 86400


def test_many_bad_attendees_give_ten_messages_and_a_count() -> None:
    fields = problems(
        patch(**VALID, attendees=tuple(Attendee(email="x") for _ in range(25))), creating=True
    )
    assert fields["attendees"][:2] == [
        "attendee 1: email is not a valid address",
        "attendee 2: email is not a valid address",
    ]
    assert fields["attendees"][10:] == ["and 15 more problems like these"]
