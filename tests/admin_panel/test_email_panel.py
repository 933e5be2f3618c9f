"""The panel's Emails page in headless Chromium through the real Envoy and server: edit a
template, see a refusal under its field, preview the email at phone and desktop widths in its
own frames (their CSP holds: any violation fails the test), send a test email to the real SMTP
server; and every built-in email screenshotted at 375 px and 1024 px."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from server.delivery import mailer
from server.domain import email_templates, service_keys
from tests.admin_panel.conftest import screenshot, sign_in
from tests.conftest import Account
from tests.delivery_helpers import email_loop
from tests.gateway.conftest import Gateway, raw_request
from tests.notifications.conftest import SmtpServer, deliver_all
from tests.rpc_helpers import create, m_id

START = 1894694400  # Tue 15 Jan 2030 08:00 UTC


@pytest.fixture
def admin_key(db: Any) -> str:
    return service_keys.issue(service_keys.ADMIN)


def test_edit_preview_and_send_a_test_email(
    gateway: Gateway,
    page: Page,
    admin_key: str,
    accounts: dict[str, Account],
    meeting_stub: Any,
    smtp: SmtpServer,
    expected_console_errors: list[str],
) -> None:
    expected_console_errors.append("status of 422")  # the refused save below
    made = create(meeting_stub, accounts["host"], start_date=START, end_date=START + 3600,
                  timezone={"offset": 120, "name": "Europe/Riga"},
                  attendees=[{"id": accounts["attendee"].user_id}])  # fmt: skip
    sign_in(page, gateway.base, admin_key)
    page.get_by_role("link", name="Emails").click()
    page.locator("#kind").select_option("reminder")
    page.get_by_label("Meeting _id").fill(m_id(made))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Template: Reminder")).to_be_visible()
    expect(page.locator("#preview-subject")).to_have_text(
        "Reminder: Friday weekly sync @ Tue 15 Jan 2030 10:00 EET"
    )
    phone = page.frame_locator("iframe.w375")
    expect(phone.get_by_role("link", name="Join the meeting")).to_be_visible()
    expect(phone.get_by_text("Starting soon")).to_be_visible()

    # A template with an unknown variable is refused under its field, with the line.
    page.get_by_label("HTML").fill("<p>Hi</p>\n<p>{{ meeting.host }}</p>")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#error-html")).to_have_text(
        "line 2: 'dict object' has no attribute 'host'"
    )
    screenshot(page, "20-email-template-refused")

    page.get_by_label("Subject").fill("Acme: {{ meeting.name }} starts soon")
    page.get_by_label("HTML").fill(
        '{% extends "layout.html" %}{% block heading %}{{ meeting.name }}{% endblock %}'
        "{% block lead %}Acme reminds you{% endblock %}"
    )
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#status")).to_have_text("Template saved: emails use it from now on.")
    # The plain text part went back unchanged: it stays the built-in one.
    expect(page.locator("#custom")).to_contain_text("Changed: subject, html (last ")
    expect(page.locator("#preview-subject")).to_have_text("Acme: Friday weekly sync starts soon")
    expect(page.frame_locator("iframe.w1024").get_by_text("Acme reminds you")).to_be_visible()
    expect(page.frame_locator("iframe.w375").get_by_text("Acme reminds you")).to_be_visible()
    # (Headless captures leave these sandboxed, out-of-process frames blank or half drawn: the
    # frames' emails are checked above, and screenshotted alone by the next tests.)
    screenshot(page, "21-email-template-saved")

    page.get_by_label("To").fill("ops@example.net")
    page.get_by_role("button", name="Send test email").click()
    expect(page.locator("#status")).to_contain_text("Test email queued")
    sender = email_loop(mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id="panel")
    try:
        deliver_all(sender)
    finally:
        sender.close()
    [mail] = smtp.wait_for(1)
    assert (mail.recipients, mail.subject) == (
        ["ops@example.net"],
        "Acme: Friday weekly sync starts soon",
    )
    assert "Acme reminds you" in mail.part("text/html")

    page.get_by_role("button", name="Back to the built-in template").click()
    expect(page.locator("#custom")).to_have_text("Built-in template.")


def test_the_preview_link_is_its_own_locked_down_page(gateway: Gateway, admin_key: str) -> None:
    found = gateway.call("POST", "/admin/email_templates/invitation/preview", json_body={},
                         headers={"CB-Administration-API-Key": admin_key}).json()  # fmt: skip
    page = raw_request(gateway.host, gateway.port, "GET", found["html_url"], None, {})
    assert page.status == 200
    assert page.header("content-type") == "text/html; charset=utf-8"
    csp = page.header("content-security-policy") or ""
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp
    assert "frame-ancestors 'self'" in csp and "sandbox" in csp and "script-src" not in csp
    assert page.body.decode() == found["html"]
    forged = found["html_url"].replace("signature=", "signature=0")
    assert raw_request(gateway.host, gateway.port, "GET", forged, None, {}).status == 404
    refused = gateway.call("PUT", "/admin/email_templates/invitation",
                           json_body={"text": "{% if %}"},
                           headers={"CB-Administration-API-Key": admin_key})  # fmt: skip
    assert refused.status == 422
    assert refused.json() == {
        "errors": {"text": ["line 1: Expected an expression, got 'end of statement block'"]}
    }
    # The transcoder would drop an unknown key silently: the gateway names it instead.
    typo = gateway.call("PUT", "/admin/email_templates/invitation", json_body={"subjekt": "x"},
                        headers={"CB-Administration-API-Key": admin_key})  # fmt: skip
    assert (typo.status, typo.json()) == (
        422,
        {"errors": {"subjekt": ["is not a supported field"]}},
    )


@pytest.mark.parametrize("kind", email_templates.KINDS)
def test_the_built_in_emails_at_phone_and_desktop_widths(
    gateway: Gateway, page: Page, admin_key: str, kind: str
) -> None:
    found = gateway.call("POST", f"/admin/email_templates/{kind}/preview", json_body={},
                         headers={"CB-Administration-API-Key": admin_key}).json()  # fmt: skip
    for width in (375, 1024):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{gateway.base}{found['html_url']}")
        # Nothing wider than the screen: the layout narrows with it.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        card = page.locator("td.card")
        box = card.bounding_box()
        assert box is not None
        assert box["width"] <= min(width, 600) + 1 and box["width"] >= min(width, 600) - 40
        action = "Download the recording" if kind == "recording_done" else "Join the meeting"
        if kind != "cancellation":
            button = page.get_by_role("link", name=action)
            expect(button).to_be_visible()
            # Inlined: the button's colours are on the element, as mail clients need.
            assert "background: #0b57d0" in (
                page.locator("td.button").first.get_attribute("style") or ""
            )
        screenshot(page, f"3x-email-{kind}-{width}")
