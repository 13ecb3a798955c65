"""A cancelled event on the monitor (CONTRACT §8.3): the page says it was called off and how far its refunds
have got, updating until every paid booking is refunded."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform


def hall(event_id: str, name: str, seats: int) -> dict:
    return {"eventId": event_id, "name": name, "venue": {"name": "Hall", "city": "Hull"},
            "startsAt": "2027-08-01T19:30:00Z",
            "priceCategories": [{"categoryId": "std", "name": "Std", "price": 25.0}],
            "rows": [{"row": "A", "seats": seats, "categoryId": "std"}]}


async def test_a_cancelled_event_shows_its_refunds_on_the_monitor(browser, platform: RunningPlatform,
                                                                  artifacts: Path) -> None:
    event_id = f"monitor_off_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as api:
        created = await api.post("/events", json=hall(event_id, "Called off on the monitor", seats=6))
        assert created.status_code == 201, created.text
        paid = (await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"],
                                                  "userId": "monitor_fan"})).json()
        confirmed = await api.put(f"/bookings/{paid['bookingId']}/confirm",
                                  json={"paymentId": "pay_monitor_off", "amount": paid["amount"]})
        assert confirmed.status_code == 200, confirmed.text
        unpaid = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A3"], "userId": "monitor_fan"})
        assert unpaid.status_code == 201

        page = await open_monitor(browser, platform.base_url, event_id)
        status = page.locator("#cancellation-status")
        await expect(status).to_be_hidden()
        assert (await api.post(f"/events/{event_id}/cancel")).status_code == 200
        # The page learns of it from the stream (the unpaid hold released) and follows the refunds.
        await expect(status).to_be_visible(timeout=15_000)
        await expect(status).to_have_text(
            "Cancelled by the organiser. 1 unpaid holds released; 1 of 1 paid bookings refunded.", timeout=20_000)
        event = (await api.get(f"/events/{event_id}")).json()
        assert event["cancellation"]["done"] and event["cancellation"]["bookingsRefunded"] == 1
        for seat in ("A1", "A2", "A3"):
            await expect(page.locator(f"[data-seat-id='{seat}']")).to_have_attribute("data-status", "AVAILABLE")
        # Nothing can be booked any more: free seats are not selectable and the buttons to hold stay off.
        await expect(page.locator("#seat-map [aria-disabled='false']")).to_have_count(0)
        await expect(page.locator("#best-button")).to_be_disabled()
        await page.click("[data-seat-id='A4']", force=True)  # aria-disabled: Playwright would not click it
        await expect(page.locator("#selection-summary")).to_contain_text("cancelled by its organiser")
        await expect(page.locator("#hold-button")).to_be_disabled()
        await page.reload()  # opened afresh on the called-off event: the same
        await page.wait_for_selector("[data-seat-id='A6']", state="attached", timeout=15_000)
        await expect(page.locator("#seat-map [aria-disabled='false']")).to_have_count(0)
        await expect(page.locator("#event-select option:checked")).to_contain_text("(cancelled)")
    await page.screenshot(path=str(artifacts / "monitor-cancelled.png"), full_page=True)
    await page.close()


async def test_an_event_called_off_with_nothing_held_closes_on_the_first_refused_hold(
        browser, platform: RunningPlatform) -> None:
    """No seat of it changes, so the stream says nothing: the hold's 409 event_cancelled is how the page learns."""
    event_id = f"monitor_quiet_off_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as api:
        created = await api.post("/events", json=hall(event_id, "Called off quietly", seats=4))
        assert created.status_code == 201, created.text
        page = await open_monitor(browser, platform.base_url, event_id)
        assert (await api.post(f"/events/{event_id}/cancel")).status_code == 200
    await page.fill("#user-id", "quiet_fan")
    await page.click("[data-seat-id='A1']")
    await page.click("#hold-button")
    await expect(page.locator("#booking-result")).to_contain_text("cancelled by its organiser", timeout=15_000)
    await expect(page.locator("#seat-map [aria-disabled='false']")).to_have_count(0, timeout=15_000)
    await expect(page.locator("#event-select option:checked")).to_contain_text("(cancelled)")
    await expect(page.locator("#hold-button")).to_be_disabled()
    await page.close()
