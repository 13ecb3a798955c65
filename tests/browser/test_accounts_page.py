"""With accounts on, the monitor asks the buyer to sign in, and the hold belongs to that account."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from boxoffice.adapters.accounts import TokenSigner
from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform

EVENT = "coldplay_world_tour"


async def test_create_an_account_sign_in_and_hold_from_the_page(browser, auth_platform: RunningPlatform) -> None:
    page = await open_monitor(browser, auth_platform.base_url)
    await page.wait_for_selector("#sign-in:visible", timeout=5_000)
    assert not await page.is_visible("#user-id")

    await page.click("[data-seat-id='M1']")
    await page.click("#hold-button")
    await page.wait_for_function("() => document.querySelector('#booking-result').textContent.includes('Sign in')",
                                 timeout=5_000)
    assert await page.get_attribute("[data-seat-id='M1']", "data-status") == "AVAILABLE"

    email = f"page-{uuid.uuid4().hex[:8]}@example.com"
    await page.fill("#sign-in-email", email)
    await page.fill("#sign-in-password", "page password 1")
    await page.click("#register-button")
    await page.wait_for_selector("#signed-in:visible", timeout=10_000)
    assert (await page.text_content("#signed-in-email")).strip() == email

    await page.click("#hold-button")
    await page.wait_for_selector("#hold-panel:visible", timeout=10_000)
    await page.wait_for_selector("[data-seat-id='M1'][data-status='RESERVED']", timeout=5_000)
    booking_id = (await page.text_content("#hold-booking-id")).strip()

    async with httpx.AsyncClient(base_url=auth_platform.base_url) as api:
        token = (await api.post("/auth/token", data={"username": email, "password": "page password 1"})).json()
        booking = await api.get(f"/bookings/{booking_id}",
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    assert booking.status_code == 200 and booking.json()["userId"] == token["userId"]
    assert booking.json()["seatIds"] == ["M1"]

    # Signing out on the page revokes the page's token on the server, not only in the tab.
    pages_token = await page.evaluate("() => JSON.parse(sessionStorage.getItem('boxoffice.account')).token")
    await page.click("#sign-out-button")
    await page.wait_for_selector("#sign-in:visible", timeout=5_000)
    # The page says so once the server has answered its sign-out call.
    await page.wait_for_function("() => document.querySelector('#booking-result').textContent.includes('Signed out')",
                                 timeout=5_000)
    async with httpx.AsyncClient(base_url=auth_platform.base_url) as api:
        me = await api.get("/auth/me", headers={"Authorization": f"Bearer {pages_token}"})
    assert me.status_code == 401 and me.json()["code"] == "token_revoked", me.text
    await page.close()


async def test_the_mailed_link_confirms_the_address_on_the_page(browser, auth_platform: RunningPlatform) -> None:
    """The link of the confirmation email (<public url>/#verify=<token>) opens the monitor, which confirms the
    address and drops the token from the address bar. The token is made here with the platform's key, as the
    gateway makes it."""
    email = f"link-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=auth_platform.base_url) as api:
        registered = await api.post("/auth/register", json={"email": email, "password": "page password 1"})
        assert registered.status_code == 201 and registered.json()["emailVerified"] is False
        user_id = registered.json()["userId"]
    connection = await asyncpg.connect(str(auth_platform.runtime["database_url"]))
    try:
        key = await connection.fetchval("SELECT value FROM platform_secrets WHERE name = 'token_signing_key'")
    finally:
        await connection.close()
    token, _ = TokenSigner(key, 900).issue_email_check(user_id, email)

    page = await browser.new_page()
    await page.goto(f"{auth_platform.base_url}/?event={EVENT}#verify={token}")
    await page.wait_for_function("() => document.querySelector('#booking-result').textContent"
                                 ".includes('Email confirmed')", timeout=10_000)
    assert "verify" not in page.url
    async with httpx.AsyncClient(base_url=auth_platform.base_url) as api:
        login = await api.post("/auth/token", data={"username": email, "password": "page password 1"})
        me = await api.get("/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["emailVerified"] is True
    await page.close()
