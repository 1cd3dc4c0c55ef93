"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against `live_server`.

The live server speaks plain http, so these tests turn Secure cookies off through the
`settings` fixture (cookie flags are read from settings at request time).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _plain_http_cookies(settings) -> None:
    settings.SECURE_COOKIES = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture
def page(live_server) -> Iterator[object]:
    """A fresh browser per test, started after the database is set up and stopped before it is
    flushed: Playwright's sync API keeps an event loop running on this thread while it lives,
    and Django refuses ORM calls (the flush included) while one runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
