"""The host's view of a meeting's notification emails, over REST through the real gateway."""

from __future__ import annotations

from typing import Any

from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting


def test_the_host_sees_each_email_and_its_state(
    gateway: Gateway, accounts: dict[str, Account], db: Any
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    meeting = create_meeting(
        gateway,
        host.token,
        notify=True,
        attendees=[{"id": attendee.user_id}, {"email": "guest@example.org"}],
    )
    for path in (
        f"/meetings/{meeting['_id']}/notifications",
        f"/meetings/{meeting['_id']}/notifications.json",
    ):
        reply = gateway.call("GET", path, token=host.token)
        assert reply.status == 200
        [invitation] = reply.json()  # a bare array: the invitation (no delivery loop runs here)
        assert (invitation["topic"], invitation["status"], invitation["attempts"]) == (
            "invitation",
            "scheduled",
            0,
        )
        assert invitation["sent_at"] is None and invitation["reason"] is None
        assert sorted(r["email"] for r in invitation["recipients"]) == sorted(
            ["host@example.com", "attendee@example.com", "guest@example.org"]
        )
        assert isinstance(invitation["due_at"], (int, float))
    # An attendee may see the meeting but not its mail log; a stranger learns nothing.
    forbidden = gateway.call(
        "GET", f"/meetings/{meeting['_id']}/notifications", token=attendee.token
    )
    assert forbidden.status == 403
    hidden = gateway.call(
        "GET", f"/meetings/{meeting['_id']}/notifications", token=accounts["stranger"].token
    )
    assert (hidden.status, hidden.json()) == (404, {"errors": ["The resource wasn't found"]})
