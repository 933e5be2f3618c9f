"""No client text with a NUL character reaches PostgreSQL (which refuses it as an error):
each entry point refuses it with a 422 naming the field, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.domain import admin_panel, auth, errors, meeting_settings, webhook_settings
from server.storage.models import MeetingSetting, User

NUL = "\x00"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: auth.create_user(f"dana{NUL}", "correct horse battery"), "login"),
        (lambda: auth.create_user("dana", "correct horse battery", f"d{NUL}@x.org"), "email"),
        (lambda: auth.create_user("dana", "correct horse battery", "", f"D{NUL}"), "full_name"),
        (lambda: auth.sign_in("dana", f"pass{NUL}word", 60), "password"),
        (lambda: auth.sign_in_guest(f"Guest{NUL}", 60), "full_name"),
        (lambda: auth.issue_token(f"dana{NUL}", 60), "login"),
        (lambda: admin_panel.search_meetings(admin_panel.Search(host=f"x{NUL}")), "host"),
        (lambda: admin_panel.search_meetings(admin_panel.Search(name=f"x{NUL}")), "name"),
        (lambda: meeting_settings.update({"sender": f"a{NUL}@example.com"}), "sender"),
        (
            lambda: meeting_settings.update({"meeting_url_template": f"https://x{NUL}/%s"}),
            "meeting_url_template",
        ),
        (lambda: webhook_settings.update(url=f"https://hooks.example.org/{NUL}"), "webhook_url"),
    ],
)
def test_nul_is_refused_naming_the_field(db: Any, call: Callable[[], Any], field: str) -> None:
    with pytest.raises(errors.InvalidFields) as refused:
        call()
    assert refused.value.fields == {field: ["must not contain NUL characters"]}
    assert User.select().count() == 0
    assert MeetingSetting.select().count() == 0


def test_a_url_that_does_not_parse_is_a_field_error(db: Any) -> None:
    """Found by the request fuzzer: urlsplit raises on an unclosed [ (it was a 500)."""
    with pytest.raises(errors.InvalidFields) as refused:
        meeting_settings.update({"meeting_url_template": "https://[meet.example.com/%s"})
    assert refused.value.fields == {"meeting_url_template": ["must be an http:// or https:// URL"]}
    assert webhook_settings.url_problems("https://[hooks.example.org/") == [
        "must be an http:// or https:// URL"
    ]
