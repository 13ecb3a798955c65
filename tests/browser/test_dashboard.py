"""The organiser's on-sale dashboard (issue 18): the sale's figures from the live stream and /metrics, seats
over time as a chart, and a waiting room's queue; no build step, no CDN: it works with the network off."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser.offline import offline_page
from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform


async def create_event(api: httpx.AsyncClient, **extra: object) -> str:
    event_id = f"dash_{uuid.uuid4().hex[:10]}"
    created = await api.post("/events", json={
        "eventId": event_id, "name": "Dashboard night", "venue": {"name": "Arena", "city": "York"},
        "startsAt": "2027-10-01T19:30:00Z", "priceCategories": [{"categoryId": "std", "name": "Std", "price": 20.0}],
        "rows": [{"row": "A", "seats": 6, "categoryId": "std"}], **extra})
    assert created.status_code == 201, created.text
    return event_id


async def open_offline(browser, platform: RunningPlatform, path: str):
    """The page with every request outside the gateway refused, and what the policy refused recorded."""
    context, page, outside, refused = await offline_page(browser, platform, viewport={"width": 1280, "height": 900})
    response = await page.goto(f"{platform.base_url}{path}")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    await expect(page.locator("#connection-status")).to_have_text("Live", timeout=15_000)
    return context, page, outside, refused


async def test_the_dashboard_follows_the_sale(browser, platform: RunningPlatform, artifacts: Path) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api)
        context, page, outside, refused = await open_offline(browser, platform, f"/events/{event_id}/dashboard")
        try:
            await expect(page.locator("#available")).to_have_text("6")
            paid = (await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A1"], "userId": "d1"})).json()
            confirmed = await api.put(f"/bookings/{paid['bookingId']}/confirm",
                                      json={"paymentId": f"pay_{uuid.uuid4().hex[:8]}", "amount": 20.0})
            assert confirmed.status_code == 200, confirmed.text
            held = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"], "userId": "d2"})
            assert held.status_code == 201
            late = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"], "userId": "d3"})
            assert late.status_code == 409

            await expect(page.locator("#sold")).to_have_text("1", timeout=10_000)
            await expect(page.locator("#held")).to_have_text("1")
            await expect(page.locator("#available")).to_have_text("4")
            await expect(page.locator("#revenue")).to_have_text(re.compile(r"20\.00"))
            # Two holds in the last ten seconds (one, should the first be over ten seconds old already).
            await expect(page.locator("#holds-rate")).to_have_text(re.compile(r"^0\.[12]$"), timeout=5_000)
            # The refusal reaches /metrics with the booking service's next heartbeat.
            await expect(page.locator("#refusals-rate")).not_to_have_text(re.compile(r"^(–|0\.0)$"), timeout=10_000)
            await expect(page.locator("#booking-lag")).to_have_text(re.compile(r"^\d+$"), timeout=10_000)
            await expect(page.locator("#chart-summary")).to_have_text(
                re.compile(r"^Now: 1 sold, 1 held, 4 available of 6; \d+ s shown\.$"), timeout=5_000)
            assert await page.get_attribute("#area-sold", "d")
            assert await page.locator("#queue-panel").is_hidden()  # no waiting room
            await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

            seats = {s["seatId"]: s["status"] for s in (await api.get(f"/events/{event_id}/seats")).json()}
            assert (seats["A1"], seats["A2"]) == ("BOOKED", "RESERVED")
            assert outside == [] and refused == [], (outside, refused)
        finally:
            await context.close()


async def test_the_dashboard_shows_the_waiting_room(browser, platform: RunningPlatform) -> None:
    opens = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api, onSale={"opensAt": opens, "waitingRoom": True, "admitPerMinute": 120,
                                                   "admissionMinutes": 10})
        context, page, _, refused = await open_offline(browser, platform, f"/events/{event_id}/dashboard")
        try:
            await expect(page.locator("#queue-panel")).to_be_visible(timeout=10_000)
            for visitor in ("early_1", "early_2"):
                joined = await api.post(f"/events/{event_id}/queue", json={"visitorId": visitor})
                assert joined.status_code == 201, joined.text
            await expect(page.locator("#queue-size")).to_have_text("2", timeout=10_000)
            await expect(page.locator("#queue-rate")).to_have_text("120 a minute")
            await expect(page.locator("#queue-opens")).to_have_text(
                re.compile(r"^opens .* (UTC|GMT[+-]?\d*|[A-Z]{3,5})$"))
            assert refused == []
        finally:
            await context.close()


async def test_a_malformed_event_id_is_refused(platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        answer = await api.get("/events/not%20an%20id/dashboard")
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_id"


async def test_the_monitor_links_to_the_events_dashboard(browser, platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api)
    page = await open_monitor(browser, platform.base_url, event_id)
    await page.click("#dashboard-link")
    await page.wait_for_url(f"**/events/{event_id}/dashboard")
    await expect(page.locator("#event-name")).to_have_text("Dashboard night — on sale", timeout=10_000)
    await expect(page.locator("#available")).to_have_text("6", timeout=10_000)
    await page.close()


async def test_an_unknown_event_says_so(browser, platform: RunningPlatform) -> None:
    page = await browser.new_page()
    await page.goto(f"{platform.base_url}/events/no_such_event_here/dashboard")
    await expect(page.locator("#dashboard-error")).to_have_text("Event “no_such_event_here” does not exist.",
                                                                timeout=10_000)
    await expect(page.locator("#connection-status")).to_have_text("Not connected")
    await expect(page.locator("#event-name")).to_have_text("No such event")  # not "Loading…" beside the error
    await expect(page.locator("#event-meta")).to_be_hidden()  # no lone "·" without a venue and a date
    await expect(page.locator("main")).not_to_contain_text("·", use_inner_text=True)
    await page.close()
