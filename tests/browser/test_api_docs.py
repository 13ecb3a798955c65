"""/docs and /redoc work with the network off: every script and style comes from the gateway itself, and
the pages' content security policy lets them run."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.browser.offline import offline_page
from tests.platforms import RunningPlatform


async def test_swagger_ui_shows_the_operations_offline(browser, platform: RunningPlatform, artifacts) -> None:
    context, page, outside, refused = await offline_page(browser, platform)
    try:
        response = await page.goto(f"{platform.base_url}/docs")
        assert response is not None and response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await page.wait_for_selector("text=/bookings", timeout=15000)
        assert await page.locator(".opblock").count() >= 10  # every operation, drawn
        await page.screenshot(path=str(artifacts / "api-docs.png"))
        assert outside == [] and refused == [], (outside, refused)
    finally:
        await context.close()


async def test_redoc_shows_the_operations_offline(browser, platform: RunningPlatform) -> None:
    context, page, outside, refused = await offline_page(browser, platform)
    try:
        response = await page.goto(f"{platform.base_url}/redoc")
        assert response is not None and response.status == 200
        assert "script-src 'self';" in response.headers["content-security-policy"]
        await page.locator("h2", has_text="Create Booking").first.wait_for(timeout=15000)  # the operation, drawn
        # Redoc's "powered by" link: its logo (on Redoc's CDN in the bundle as published) is not asked for
        # anywhere; the link shows without it, as Redoc shows it when the logo cannot load.
        powered_by = page.get_by_role("link", name="API docs by Redocly")
        await expect(powered_by).to_be_visible()
        await expect(powered_by.locator("img")).to_have_count(0)
        assert outside == [] and refused == [], (outside, refused)
    finally:
        await context.close()


@pytest.mark.parametrize("asset", ["swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"])
async def test_the_assets_are_served_by_the_gateway(platform: RunningPlatform, asset: str) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as client:
        served = await client.get(f"/static/docs/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000
        assert b"//cdn." not in served.content  # nothing in them asks a CDN for anything
        again = await client.get(f"/static/docs/{asset}", headers={"If-None-Match": served.headers["etag"]})
        assert again.status_code == 304  # a browser keeps its copy


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_on_a_phone_the_docs_are_drawn_at_the_phones_width(browser, platform: RunningPlatform,
                                                                path: str) -> None:
    """Found from outside: without a viewport a phone drew them 980 px wide and shrank them unreadable."""
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        await page.goto(f"{platform.base_url}{path}")
        assert await page.evaluate("() => window.innerWidth") == 390
    finally:
        await page.close()
