"""The monitor when parts of the platform are away: the realtime service stopped (the seat map comes from the
API, not live, until the stream is back) and a sale behind a waiting room (a hold without an admission gets a
way in, not the API's words)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import expect

from tests.platforms import RunningPlatform


def small_event(event_id: str, **extra: object) -> dict:
    return {"eventId": event_id, "name": "Away on the monitor", "venue": {"name": "Hall", "city": "Ely"},
            "startsAt": "2027-09-01T19:30:00Z",
            "priceCategories": [{"categoryId": "std", "name": "Std", "price": 20.0}],
            "rows": [{"row": "A", "seats": 8, "categoryId": "std"}], **extra}


async def test_a_page_opened_while_realtime_is_down_shows_the_seat_map_and_goes_live_when_it_is_back(
        browser, platform: RunningPlatform) -> None:
    event_id = f"monitor_away_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        assert (await api.post("/events", json=small_event(event_id))).status_code == 201
        held = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"], "userId": "away_fan"})
        assert held.status_code == 201, held.text
    assert platform.cli("stop", "realtime").returncode == 0
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        await page.goto(f"{platform.base_url}/?event={event_id}")
        await expect(page.locator("#seat-map [data-seat-id]")).to_have_count(8, timeout=15_000)
        await expect(page.locator("[data-seat-id='A2']")).to_have_attribute("data-status", "RESERVED")
        await expect(page.locator("#available-count")).to_have_text("7")
        assert await page.text_content("#connection-status") != "Live"
    finally:
        assert platform.cli("start", "realtime").returncode == 0
    await page.wait_for_selector("#connection-status:has-text('Live')", timeout=30_000)
    await expect(page.locator("#seat-map [data-seat-id]")).to_have_count(8)
    await page.close()


async def test_a_hold_without_an_admission_points_to_the_waiting_room(browser, platform: RunningPlatform) -> None:
    event_id = f"monitor_room_{uuid.uuid4().hex[:8]}"
    opened = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")  # open already
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        created = await api.post("/events", json=small_event(event_id, onSale={
            "opensAt": opened, "waitingRoom": True, "admitPerMinute": 60, "admissionMinutes": 10}))
        assert created.status_code == 201, created.text
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(f"{platform.base_url}/?event={event_id}")
    await page.wait_for_selector("[data-seat-id='A1']", state="attached", timeout=15_000)
    await page.fill("#user-id", "no_admission")
    await page.click("[data-seat-id='A1']")
    await page.click("#hold-button")
    link = page.locator("#booking-result a")
    await expect(link).to_have_text("Join the waiting room")
    assert await link.get_attribute("href") == f"/events/{event_id}/queue"
    await expect(page.locator("#booking-result")).not_to_contain_text("X-Queue-Access")
    await page.close()
