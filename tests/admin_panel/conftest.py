"""The admin panel in a real headless browser: Debian's chromium (installed here when missing)
driven by Playwright, in front of the real Envoy and the real server (tests/gateway fixtures).

One browser for the session; a fresh context (no storage) per test. Screenshots go to
test-output/admin-panel/ for a reviewer to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from server import settings
from tests.conftest import install_debian_package
from tests.gateway.conftest import _lua_errors_stay_zero, gateway  # noqa: F401
from tests.notifications.conftest import smtp  # noqa: F401
from tests.webhooks.conftest import receiver  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = settings.REPO / "test-output" / "admin-panel"
# Quiet and self-contained: no GPU, no calls home, no updates or sync in the background.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Debian's chromium, from the distribution's packages (never `playwright install`).
    install_debian_package("chromium", CHROMIUM)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def expected_console_errors() -> list[str]:
    """Parts of console errors a test provokes on purpose (e.g. a refused save's 422)."""
    return ["401"]  # refused keys show up as failed (401) fetches


@pytest.fixture
def page(browser: Browser, expected_console_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on(
        "console",
        lambda msg: errors.append(f"{msg.text} {msg.location}") if msg.type == "error" else None,
    )
    yield opened
    context.close()
    # Anything not provoked on purpose is a bug, CSP violations included.
    unexpected = [e for e in errors if not any(part in e for part in expected_console_errors)]
    assert not unexpected, unexpected


def screenshot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/admin/")
    page.get_by_label("Admin API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Meetings", exact=True).wait_for()


def text(page: Page, selector: str) -> Any:
    return page.locator(selector).text_content()
