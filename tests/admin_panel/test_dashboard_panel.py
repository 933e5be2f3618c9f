"""The panel's dashboard in headless Chromium through the real Envoy and server: after a known
workload, its charts draw the numbers the admin RPC returned to the page, and the red banner
names what needs an operator (a reminder due minutes ago, the webhook endpoint turned off)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from server.delivery import mailer
from server.domain import dashboard, service_keys
from server.storage.models import ActivityMinute
from tests.admin_panel.conftest import screenshot, sign_in
from tests.conftest import Account
from tests.delivery_helpers import email_loop, enqueue_reminders
from tests.gateway.conftest import Gateway
from tests.notifications.conftest import SmtpServer, deliver_all

# Which field of the RPC's answer each chart's series draws, in order.
MINUTE_SERIES = {
    "requests": ["requests", "client_errors", "server_errors"],
    "latency": ["p50_ms", "p99_ms"],
    "backlog": ["backlog"],
    "oldest-due": ["oldest_due_seconds"],
    "lateness": ["late_p50_ms", "late_p99_ms"],
}
HOUR_SERIES = {"deliveries": ["emails_sent", "emails_failed", "webhooks_sent", "webhooks_failed"]}


@pytest.fixture
def admin_key(db: Any) -> str:
    return service_keys.issue(service_keys.ADMIN)


def drawn(page: Page, chart: str) -> list[list[float | None]]:
    """The numbers of each series of a chart, as the panel drew them."""
    found = page.locator(f"#{chart} g.series").evaluate_all(
        "groups => groups.map(g => g.dataset.values)"
    )
    return [[float(v) if v else None for v in values.split(",")] for values in found]


def column(rows: list[dict[str, Any]], name: str) -> list[float | None]:
    return [float(row[name]) if name in row else None for row in rows]


def test_the_dashboard_draws_what_the_admin_rpc_returns(
    gateway: Gateway,
    page: Page,
    admin_key: str,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    db: Any,
    expected_console_errors: list[str],
) -> None:
    token = accounts["host"].token
    admin = {"CB-Administration-API-Key": admin_key}
    # What earlier tests left in this process's activity, stored now: counted before, not after.
    dashboard.Recorder("panel-test").flush()
    time.sleep(0.3)  # a flush of the server's own recorder under way has committed
    before = gateway.call("GET", "/admin/dashboard", headers=admin).json()
    meeting = {"name": "Planning", "start_date": 1613729948, "end_date": 1613731012}
    for _ in range(3):
        assert gateway.call("POST", "/meetings", token=token, json_body=meeting).status == 200
    missing = gateway.call("PUT", f"/meetings/{'0' * 24}", token=token, json_body={"name": "x"})
    assert missing.status == 404
    # Two reminders sent now, one left waiting since five minutes ago, the webhook turned off.
    enqueue_reminders(db, 1, 2, due_in=0, spread=0)
    sender = email_loop(mailer.SmtpMailer(mailer.parse_url(smtp.url)), worker_id="panel-test")
    try:
        assert deliver_all(sender) == 2
    finally:
        sender.close()
    enqueue_reminders(db, 3, 1, due_in=-300, spread=0)
    off = {"webhook_url": "https://hooks.example.com/meetings", "webhook_enabled": False}
    assert (
        gateway.call("PUT", "/admin/settings/meetings", json_body=off, headers=admin).status == 200
    )
    dashboard.Recorder("panel-test").flush()  # this process's activity, stored now

    sign_in(page, gateway.base, admin_key)
    with page.expect_response(lambda r: r.url.endswith("/admin/dashboard")) as answered:
        page.get_by_role("link", name="Dashboard").click()
    board = json.loads(answered.value.body())
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # What the workload did: two reminders sent, in the last hour's minutes and the day's
    # hours; requests (the panel's own too) and the refused update.
    def added(period: str, name: str) -> int:
        return int(sum(r[name] for r in board[period]) - sum(r[name] for r in before[period]))

    assert added("minutes", "reminders") == 2 and added("hours", "emails_sent") == 2
    assert added("hours", "emails_failed") == 0
    assert added("minutes", "requests") >= 5 and added("minutes", "client_errors") >= 1
    # This process sampled the one reminder left waiting; the dashboard shows the largest
    # backlog any replica sampled in a minute, and the server's own recorder (every 5 s) may
    # have sampled the two reminders before they went.
    ours = (
        ActivityMinute.select()
        .where(ActivityMinute.replica == "panel-test", ActivityMinute.backlog.is_null(False))
        .order_by(ActivityMinute.minute.desc())
        .first()
    )
    assert (ours.backlog, ours.oldest_due_seconds >= 300) == (1, True)
    sampled = [m for m in board["minutes"] if "backlog" in m][-1]  # the last minute sampled
    assert sampled["backlog"] >= 1 and sampled["oldest_due_seconds"] >= 300
    # Each chart draws exactly those numbers.
    for chart, names in MINUTE_SERIES.items():
        assert drawn(page, chart) == [column(board["minutes"], n) for n in names], chart
    for chart, names in HOUR_SERIES.items():
        assert drawn(page, chart) == [column(board["hours"], n) for n in names], chart
    rates = drawn(page, "error-rate")[0]
    assert rates == [
        pytest.approx(100 * m["server_errors"] / m["requests"]) if m["requests"] else None
        for m in board["minutes"]
    ]
    assert len(board["minutes"]) == 60 and len(board["hours"]) == 24

    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("Delivery is behind: the oldest email waiting fell due")
    expect(banner).to_contain_text("The webhook endpoint is turned off")
    expect(page.locator(".badge.disabled")).to_have_text("disabled")
    expect(page.locator("#requests circle").last).to_be_visible()
    screenshot(page, "dashboard")
