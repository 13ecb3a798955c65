"""The waiting list from the monitor (CONTRACT §8.3): on a sold-out event the page offers to join, shows the
place in line, and when seats come free shows the offered booking in the hold panel, to pay like one's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform

BUYER = "waitlist_buyer"
OTHER = "waitlist_other"


def tiny_hall() -> dict:
    """One row of two seats: one hold sells it out."""
    return {
        "eventId": f"waitlist_page_{uuid.uuid4().hex[:8]}", "name": "Waiting list on the page",
        "venue": {"name": "Tiny Hall", "city": "Bath"}, "startsAt": "2027-11-05T19:30:00Z", "currency": "EUR",
        "priceCategories": [{"categoryId": "stalls", "name": "Stalls", "price": 30.0}],
        "rows": [{"row": "A", "seats": 2, "section": "Stalls", "categoryId": "stalls"}],
    }


async def test_join_the_waiting_list_of_a_sold_out_event_and_pay_the_offer(
        browser, platform: RunningPlatform, artifacts: Path) -> None:
    hall = tiny_hall()
    event_id = hall["eventId"]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        created = await api.post("/events", json=hall)
        assert created.status_code == 201, created.text
        held = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"], "userId": OTHER})
        assert held.status_code == 201, held.text
        other_booking = held.json()["bookingId"]

        page = await open_monitor(browser, platform.base_url, event_id)
        await page.wait_for_selector("[data-seat-id='A2'][data-status='RESERVED']", state="attached", timeout=10_000)
        box = page.locator("#waitlist")
        await expect(box).to_be_visible(timeout=10_000)
        await page.fill("#user-id", BUYER)
        # Found from outside: 1 to 10 were offered for a hall whose row has 2 seats, and best available stayed on.
        offered = await page.locator("#waitlist-quantity option").all_text_contents()
        assert offered == ["1", "2"] == await page.locator("#best-quantity option").all_text_contents(), offered
        await expect(page.locator("#best-button")).to_be_disabled()
        await page.select_option("#waitlist-quantity", "2")
        await page.get_by_role("button", name="Join the waiting list").click()

        status = page.locator("#waitlist-status")
        await expect(status).to_have_text("You are number 1 in line for 2 seats.", timeout=10_000)
        await expect(page.get_by_role("button", name="Join the waiting list")).to_be_hidden()
        waitlist_id = await page.evaluate(f"() => sessionStorage.getItem('boxoffice.waitlist.{event_id}')")
        entry = (await api.get(f"/waitlist/{waitlist_id}")).json()
        assert entry["status"] == "waiting" and entry["position"] == 1, entry
        assert entry["userId"] == BUYER and entry["quantity"] == 2 and entry["eventId"] == event_id, entry

        # A reload keeps following the same entry.
        await page.reload()
        await page.wait_for_selector("#connection-status:has-text('Live')", timeout=15_000)
        await expect(status).to_have_text("You are number 1 in line for 2 seats.", timeout=10_000)
        await expect(page.get_by_role("button", name="Leave")).to_be_visible()
        await page.screenshot(path=str(artifacts / "waitlist-waiting.png"), full_page=True)

        cancelled = await api.delete(f"/bookings/{other_booking}")
        assert cancelled.status_code == 200, cancelled.text

        panel = page.locator("#hold-panel")
        await expect(panel).to_be_visible(timeout=15_000)
        await expect(page.locator("#hold-note")).to_have_text("Seats from the waiting list")
        await expect(page.locator("#hold-seats")).to_have_text("A1, A2")
        booking_id = (await page.text_content("#hold-booking-id")).strip()
        booking = (await api.get(f"/bookings/{booking_id}")).json()
        assert booking["status"] == "pending" and booking["userId"] == BUYER, booking
        assert sorted(booking["seatIds"]) == ["A1", "A2"]
        await expect(page.locator("#hold-amount")).to_have_text(f"{booking['amount']:.2f} EUR")
        entry = (await api.get(f"/waitlist/{waitlist_id}")).json()
        assert entry["status"] == "offered" and entry["bookingId"] == booking_id, entry
        await expect(page.locator("#seat-map .seat.mine")).to_have_count(2)
        await page.screenshot(path=str(artifacts / "waitlist-offered.png"), full_page=True)

        await page.click("#pay-button")
        await expect(page.locator("#booking-result")).to_contain_text("confirmed", timeout=15_000)
        await expect(panel).to_be_hidden()
        await expect(status).to_have_text(f"Your seats from the waiting list are booked (booking {booking_id}).")
        booking = (await api.get(f"/bookings/{booking_id}")).json()
        assert booking["status"] == "confirmed" and booking["userId"] == BUYER, booking
        seats = {s["seatId"]: s["status"] for s in (await api.get(f"/events/{event_id}/seats")).json()}
        assert seats == {"A1": "BOOKED", "A2": "BOOKED"}
    await page.close()


async def test_a_join_queued_while_the_booking_service_is_down_comes_to_its_place_in_line(
        browser, platform: RunningPlatform) -> None:
    hall = tiny_hall()
    event_id = hall["eventId"]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        assert (await api.post("/events", json=hall)).status_code == 201
        held = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"], "userId": OTHER})
        assert held.status_code == 201, held.text
        page = await open_monitor(browser, platform.base_url, event_id)
        await expect(page.locator("#waitlist")).to_be_visible(timeout=10_000)
        await page.fill("#user-id", BUYER)
        await page.select_option("#waitlist-quantity", "1")
        assert platform.cli("stop", "booking").returncode == 0
        try:
            await page.get_by_role("button", name="Join the waiting list").click()
            await expect(page.locator("#booking-result")).to_contain_text("queued", timeout=15_000)
        finally:
            assert platform.cli("start", "booking").returncode == 0
        await expect(page.locator("#waitlist-status")).to_have_text("You are number 1 in line for 1 seat.",
                                                                    timeout=30_000)
        waitlist_id = await page.evaluate(f"() => sessionStorage.getItem('boxoffice.waitlist.{event_id}')")
        entry = (await api.get(f"/waitlist/{waitlist_id}")).json()
        assert (entry["status"], entry["userId"], entry["quantity"]) == ("waiting", BUYER, 1), entry
    await page.close()
