"""A first visit in a real browser: sign up, make a key, use it, revoke it, log out."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-9"
UNAUTHORIZED_BODY = (
    b'{"error": {"code": "unauthorized", "type": "authentication_error", '
    b'"message": "Missing or invalid credentials.", "param": null}}'
)


def _sign_up(page, base: str, email: str) -> None:
    page.goto(f"{base}/signup")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")


def _balance(base: str, key: str) -> requests.Response:
    return requests.get(
        f"{base}/v1/wits/balance", headers={"Authorization": f"Bearer {key}"}, timeout=15
    )


def test_sign_up_create_a_key_use_it_and_revoke_it(page, live_server, settings):
    settings.WITS_WELCOME_GRANT = 100_000
    base = live_server.url

    # Sign up: the dashboard shows the welcome balance
    _sign_up(page, base, "journey@example.com")
    expect(page.locator("#available")).to_have_text("100,000")

    # Create a key: its plaintext is on the page exactly once
    page.goto(f"{base}/api-keys")
    page.fill("#create-key input[name=name]", "journey key")
    page.click("#create-key button[type=submit]")
    plaintext = page.text_content("#new-key-value").strip()
    assert re.fullmatch(r"cw_sk_[A-Za-z0-9]{52}", plaintext)
    assert page.content().count(plaintext) == 1

    # Load the list again: the plaintext is gone, the visible prefix remains
    page.goto(f"{base}/api-keys")
    assert page.locator("#new-key-value").count() == 0
    assert plaintext not in page.content()
    expect(page.locator("#keys tbody tr code")).to_have_text(f"{plaintext[:14]}…")
    expect(page.locator("#keys td.state")).to_have_text("active")

    # Use it from outside the browser
    response = _balance(base, plaintext)
    assert response.status_code == 200
    assert response.json()["available"] == 100_000

    # Revoke it in the page: the very next call is refused
    page.click("#keys button.revoke")
    expect(page.locator("#keys td.state")).to_have_text("revoked")
    refused = _balance(base, plaintext)
    assert (refused.status_code, refused.content) == (401, UNAUTHORIZED_BODY)


def test_session_cookies_are_invisible_to_scripts(page, live_server):
    base = live_server.url

    _sign_up(page, base, "cookies@example.com")

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert (cookies["cw_access"]["httpOnly"], cookies["cw_access"]["sameSite"]) == (True, "Lax")
    assert (cookies["cw_refresh"]["httpOnly"], cookies["cw_refresh"]["sameSite"]) == (True, "Lax")
    assert "cw_access" not in page.evaluate("document.cookie")
    assert "cw_refresh" not in page.evaluate("document.cookie")


def test_log_out_then_protected_pages_redirect_to_login(page, live_server):
    base = live_server.url
    _sign_up(page, base, "leaver@example.com")

    page.click("#logout")
    page.wait_for_url(f"{base}/")

    names = {c["name"] for c in page.context.cookies()}
    assert {"cw_access", "cw_refresh"} & names == set()
    page.goto(f"{base}/api-keys")
    assert page.url == f"{base}/login?next=/api-keys"
    page.goto(f"{base}/dashboard")
    assert page.url == f"{base}/login?next=/dashboard"

    # Logging in again lands on the page that was asked for
    page.goto(f"{base}/login?next=/api-keys")
    page.fill("#id_email", "leaver@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/api-keys")
    expect(page.locator("h1")).to_have_text("API keys")
