"""/docs and /redoc work with the network off: every script and style comes from the gateway itself, and
the pages' content security policy lets them run."""

from __future__ import annotations

import pytest

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
        # Redoc's "powered by" logo is on its CDN: the policy stops it before the network is asked.
        refused = [r for r in refused if "https://cdn.redoc.ly/" not in r]
        assert outside == [] and refused == [], (outside, refused)
    finally:
        await context.close()


@pytest.mark.parametrize("asset", ["swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"])
async def test_the_assets_are_served_by_the_gateway(platform: RunningPlatform, asset: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=platform.base_url) as client:
        served = await client.get(f"/static/docs/{asset}")
    assert served.status_code == 200 and len(served.content) > 100_000
