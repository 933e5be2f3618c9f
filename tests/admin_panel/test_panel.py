"""The admin panel end to end: a headless chromium through the real Envoy and server, with a
real SMTP server, a real webhook receiver and the reference signature verifier."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from playwright.sync_api import Page, expect
from standardwebhooks.webhooks import Webhook

from meetings.v1 import recordings_pb2 as rpb
from meetings.v1 import recordings_pb2_grpc
from server.delivery import mailer
from server.domain import service_keys
from server.storage.models import Recording
from server.storage.recording_files import FilesystemStorage
from tests.admin_panel.conftest import screenshot, sign_in
from tests.conftest import Account
from tests.delivery_helpers import email_loop, full_loop, networks
from tests.gateway.conftest import Gateway, raw_request
from tests.notifications.conftest import SmtpServer, deliver_all
from tests.rpc_helpers import create, m_id
from tests.test_recordings import upload
from tests.webhooks.conftest import Receiver


@pytest.fixture
def admin_key(db: Any) -> str:
    return service_keys.issue(service_keys.ADMIN)


def test_the_panel_is_served_with_strict_headers(gateway: Gateway) -> None:
    index = raw_request(gateway.host, gateway.port, "GET", "/admin/", None, {})
    assert index.status == 200 and b'src="/admin/panel.js"' in index.body
    assert index.header("content-type") == "text/html; charset=utf-8"
    csp = index.header("content-security-policy") or ""
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "require-trusted-types-for 'script'" in csp
    assert index.header("x-frame-options") == "DENY"
    for path, kind in (("/admin/panel.js", "text/javascript"), ("/admin/panel.css", "text/css")):
        asset = raw_request(gateway.host, gateway.port, "GET", path, None, {})
        assert asset.status == 200 and asset.header("content-type") == f"{kind}; charset=utf-8"
        assert asset.body == (Path("gateway/admin") / Path(path).name).read_bytes()
    moved = raw_request(gateway.host, gateway.port, "GET", "/admin", None, {})
    assert moved.status == 301 and (moved.header("location") or "").endswith("/admin/")


def test_a_wrong_key_is_refused_and_the_right_one_signs_in(
    gateway: Gateway, page: Page, admin_key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    page.goto(f"{gateway.base}/admin/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Admin API key").fill("admin_not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("That key was refused.")
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "01-sign-in-refused")

    sign_in(page, gateway.base, admin_key)
    assert page.evaluate("Object.values(sessionStorage)") == [admin_key]
    assert admin_key not in page.url
    screenshot(page, "02-meetings-empty")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    # The key never reaches Envoy's access log.
    for log in tmp_path_factory.getbasetemp().glob("envoy*/envoy.log"):
        assert admin_key not in log.read_text()


def test_find_a_meeting_download_and_delete_its_recording(
    gateway: Gateway,
    page: Page,
    admin_key: str,
    accounts: dict[str, Account],
    meeting_stub: Any,
    channel: grpc.Channel,
) -> None:
    host = accounts["host"]
    made = create(
        meeting_stub,
        host,
        name="Quarterly <b>review</b>",
        chat=True,
        attendees=[{"id": accounts["attendee"].user_id}, {"email": "guest@example.org"}],
    )
    create(meeting_stub, host, name="Weekly sync")
    create(meeting_stub, accounts["stranger"], name="Quarterly planning")
    meeting_id = m_id(made)
    data = os.urandom(300_000)
    media = recordings_pb2_grpc.MediaServiceStub(channel)
    recording = upload(media, service_keys.issue(service_keys.MEDIA), meeting_id, data=data)

    sign_in(page, gateway.base, admin_key)
    page.get_by_label("Name").fill("quarterly")
    page.get_by_label("Host").fill("host")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#total")).to_have_text("1 meeting found")
    screenshot(page, "03-meetings-search")
    # Markup in data is shown as text, never interpreted.
    page.get_by_role("link", name="Quarterly <b>review</b>").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Meeting: Quarterly <b>review</b>")
    expect(page.locator("#chat-dialog")).to_have_text(made.chat_dialog_id)
    expect(page.locator("#attendees")).to_contain_text("guest@example.org")
    expect(page.locator("#attendees")).to_contain_text(f"user #{accounts['attendee'].user_id}")
    expect(page.locator("main")).to_contain_text("Host")
    screenshot(page, "04-meeting-detail")

    with page.expect_download() as download:
        page.get_by_role("link", name=f"Download recording {recording.file_uid}").click()
    assert Path(download.value.path()).read_bytes() == data

    page.get_by_role("button", name="Delete all 1 recording…").click()
    page.get_by_role("button", name="Yes, delete them").click()
    expect(page.get_by_text("No recordings.")).to_be_visible()
    assert Recording.select().count() == 0


def test_a_new_url_template_is_used_in_the_next_invitation(
    gateway: Gateway,
    page: Page,
    admin_key: str,
    accounts: dict[str, Account],
    meeting_stub: Any,
    smtp: SmtpServer,
) -> None:
    sign_in(page, gateway.base, admin_key)
    page.get_by_role("link", name="Settings").click()
    template = page.get_by_label("Meeting URL template")
    template.fill("https://video.example.net/join/%s?from=panel")
    expect(page.locator("#preview")).to_have_text(
        "https://video.example.net/join/65f1c0ffee0000000000abcd?from=panel"
    )
    page.get_by_label("Sender address of notification emails").fill("Ops <ops@example.net>")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#status")).to_have_text("Settings saved.")
    screenshot(page, "05-settings")

    meeting_id = m_id(
        create(meeting_stub, accounts["host"], notify=True, attendees=[{"email": "g@example.org"}])
    )
    sender = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id="panel", rand=lambda: 0.5
    )
    try:
        assert deliver_all(sender) >= 1
    finally:
        sender.close()
    [invitation] = [m for m in smtp.wait_for(1) if "g@example.org" in m.recipients]
    assert f"https://video.example.net/join/{meeting_id}?from=panel" in invitation.part(
        "text/plain"
    )
    assert "ops@example.net" in invitation.sender


def test_a_rotated_secret_signs_the_next_delivery_and_resend(
    gateway: Gateway,
    page: Page,
    admin_key: str,
    accounts: dict[str, Account],
    meeting_stub: Any,
    channel: grpc.Channel,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    sign_in(page, gateway.base, admin_key)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Webhook URL").fill(receiver.url)
    page.get_by_label("Webhook enabled").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#status")).to_have_text("Settings saved.")
    page.get_by_role("button", name="Rotate the signing secret").click()
    secret = page.locator("#new-secret").text_content() or ""
    assert secret.startswith("whsec_")
    expect(page.locator("#secret-count")).to_have_text(
        "Secrets signing deliveries now: 2."
    )  # old + new
    screenshot(page, "06-secret-rotated")

    media = recordings_pb2_grpc.MediaServiceStub(channel)
    media_key = service_keys.issue(service_keys.MEDIA)
    meeting_id = m_id(create(meeting_stub, accounts["host"], name="Recorded"))
    upload(media, media_key, meeting_id, data=b"file" * 100)
    media.EndCall(
        rpb.EndCallRequest(meeting_id=meeting_id), metadata=(("cb-service-key", media_key),)
    )
    deliverer = full_loop(
        mailer.from_settings(None, tmp_path / "mail"),
        base_url=gateway.base,
        storage=FilesystemStorage(tmp_path / "recordings"),
        allowed=networks("127.0.0.0/8"),
        rand=lambda: 0.5,
        worker_id="panel",
    )
    deliverer.run_once()
    [first] = receiver.wait_for(1)
    Webhook(secret).verify(first.body, first.headers)  # the reference verifier
    assert json.loads(first.body)["meeting"]["_id"] == meeting_id

    page.get_by_role("link", name="Webhook deliveries").click()
    row = page.locator("tr", has_text=first.headers["webhook-id"])
    expect(row).to_contain_text("sent")
    screenshot(page, "07-webhook-deliveries")
    row.get_by_role("button", name="Re-send").click()
    expect(page.locator("#status")).to_contain_text("will be sent again now as delivery")
    deliverer.run_once()
    second = receiver.wait_for(2)[1]
    Webhook(secret).verify(second.body, second.headers)
    assert second.headers["webhook-id"] != first.headers["webhook-id"]
    # The same recordings (their download links are signed afresh at each send).
    assert [r["file_uid"] for r in json.loads(second.body)["callRecords"]] == [
        r["file_uid"] for r in json.loads(first.body)["callRecords"]
    ]
    page.reload()
    expect(page.locator("tbody tr")).to_have_count(2)
    screenshot(page, "08-webhook-resent")
