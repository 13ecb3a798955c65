"""Best available from the monitor (CONTRACT §8.2): the buyer asks for N seats, the service chooses them, and
the page shows them as the buyer's hold; a request that cannot be met together is refused on screen."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform

BUYER = "best_buyer"


def small_hall() -> dict:
    """Two front rows of four and one back row: at most four front seats together."""
    return {
        "eventId": f"best_page_{uuid.uuid4().hex[:8]}", "name": "Best available on the page",
        "venue": {"name": "Small Hall", "city": "York"}, "startsAt": "2027-10-01T19:30:00Z", "currency": "EUR",
        "priceCategories": [{"categoryId": "front", "name": "Front", "price": 80.0},
                            {"categoryId": "back", "name": "Back", "price": 40.0}],
        "rows": [{"row": row, "seats": 4, "section": "Stalls", "categoryId": category}
                 for row, category in (("A", "front"), ("B", "front"), ("C", "back"))],
    }


async def seat_statuses(api: httpx.AsyncClient, event_id: str) -> dict[str, str]:
    return {s["seatId"]: s["status"] for s in (await api.get(f"/events/{event_id}/seats")).json()}


async def test_best_available_holds_seats_together_and_refuses_what_does_not_fit(
        browser, platform: RunningPlatform, artifacts: Path) -> None:
    hall = small_hall()
    event_id = hall["eventId"]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        created = await api.post("/events", json=hall)
        assert created.status_code == 201, created.text

        page = await open_monitor(browser, platform.base_url, event_id)
        await page.wait_for_selector("[data-seat-id='C4']", state="attached", timeout=10_000)
        await page.fill("#user-id", BUYER)
        await page.select_option("#best-quantity", "3")
        await page.select_option("#best-category", label="Front — 80.00 EUR")
        button = page.get_by_role("button", name="Find 3 best seats")
        await expect(button).to_be_enabled()
        await button.click()

        panel = page.locator("#hold-panel")
        await expect(panel).to_be_visible(timeout=10_000)
        booking_id = (await page.text_content("#hold-booking-id")).strip()
        shown = (await page.text_content("#hold-seats")).split(", ")
        assert len(shown) == 3, shown

        booking = (await api.get(f"/bookings/{booking_id}")).json()
        assert booking["status"] == "pending" and booking["userId"] == BUYER
        assert sorted(booking["seatIds"]) == sorted(shown)
        assert (await page.text_content("#hold-amount")).strip() == f"{booking['amount']:.2f} EUR"
        statuses = await seat_statuses(api, event_id)
        assert sorted(s for s, status in statuses.items() if status == "RESERVED") == sorted(shown)
        for seat in shown:
            mark = page.locator(f"[data-seat-id='{seat}']")
            await expect(mark).to_have_class(re.compile(r"\bmine\b"))
            await expect(mark).to_have_attribute("data-status", "RESERVED")
            await expect(mark).to_have_attribute("aria-label", f"Seat {seat}, Stalls, row {seat[0]}, 80.00 EUR, "
                                                               "held by you")
        await expect(page.locator("#seat-map .seat.mine")).to_have_count(3)
        await page.screenshot(path=str(artifacts / "best-available.png"), full_page=True)

        await page.click("#pay-button")
        await expect(page.locator("#booking-result")).to_contain_text("confirmed", timeout=15_000)
        await expect(button).to_be_enabled()

        # No more than a row's four are offered; with B2 held by another buyer, four front seats are left
        # (A4, B1, B3, B4), none four together.
        assert await page.locator("#best-quantity option").all_text_contents() == ["1", "2", "3", "4"]
        other = await api.post("/bookings", json={"eventId": event_id, "seatIds": ["B2"], "userId": "other_buyer"})
        assert other.status_code == 201, other.text
        await page.wait_for_selector("[data-seat-id='B2'][data-status='RESERVED']", state="attached", timeout=10_000)
        await page.select_option("#best-quantity", "4")
        await page.get_by_role("button", name="Find 4 best seats").click()
        result = page.locator("#booking-result[data-kind='error']")
        await expect(result).to_contain_text("not 4 together", timeout=10_000)
        again = await api.post("/bookings", json={"eventId": event_id, "quantity": 4, "categoryId": "front",
                                                  "userId": BUYER})
        assert again.status_code == 409 and again.json()["code"] == "not_enough_adjacent"
        await expect(result).to_have_text(again.json()["error"])

        await expect(panel).to_be_hidden()
        await expect(page.locator("#seat-map .seat.mine")).to_have_count(0)
        statuses = await seat_statuses(api, event_id)
        assert sorted(s for s, status in statuses.items() if status != "AVAILABLE") == sorted([*shown, "B2"])
        assert all(statuses[s] == "BOOKED" for s in shown)
    await page.close()
