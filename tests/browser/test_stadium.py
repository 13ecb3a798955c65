"""A 50,000-seat stadium: the monitor draws the whole map and still shows a single change quickly.
Timings are printed (run with -s); the assertions are about what is on screen."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.browser.test_monitor import open_monitor
from tests.platforms import RunningPlatform

ROWS, SEATS_PER_ROW = 200, 250


async def test_a_50000_seat_map_renders_and_follows_changes(browser, platform: RunningPlatform,
                                                            artifacts: Path) -> None:
    event_id = f"stadium_{uuid.uuid4().hex[:6]}"
    labels = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(ROWS)]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as api:
        created = await api.post("/events", json={
            "eventId": event_id, "name": "Stadium", "venue": {"name": "Big Stadium", "city": "Nowhere"},
            "startsAt": "2027-09-01T18:00:00Z",
            "priceCategories": [{"categoryId": "lower", "name": "Lower", "price": 120.0},
                                {"categoryId": "upper", "name": "Upper", "price": 60.0}],
            "rows": [{"row": label, "seats": SEATS_PER_ROW, "section": "Lower" if i < ROWS // 2 else "Upper",
                      "categoryId": "lower" if i < ROWS // 2 else "upper"} for i, label in enumerate(labels)]})
        assert created.status_code in (201, 202), created.text

        started = time.perf_counter()
        page = await open_monitor(browser, platform.base_url, event_id)
        last_seat = f"{labels[-1]}{SEATS_PER_ROW}"
        await page.wait_for_selector(f"[data-seat-id='{last_seat}']", state="attached", timeout=60_000)
        drawn = time.perf_counter() - started
        assert await page.locator("[data-seat-id]").count() == ROWS * SEATS_PER_ROW
        assert (await page.text_content("#available-count")).strip().replace(",", "") == str(ROWS * SEATS_PER_ROW)

        seat = f"{labels[ROWS // 2]}{SEATS_PER_ROW // 2}"
        booked_at = time.perf_counter()
        held = await api.post("/bookings", json={"eventId": event_id, "seatIds": [seat], "userId": "stadium_fan"})
        assert held.status_code == 201
        await page.wait_for_selector(f"[data-seat-id='{seat}'][data-status='RESERVED']", state="attached",
                                     timeout=10_000)
        shown = time.perf_counter() - booked_at
    print(f"50,000-seat map: drawn {drawn:.2f} s after opening; a hold shown {shown * 1000:.0f} ms after POST")
    await page.screenshot(path=str(artifacts / "stadium.png"))
    await page.close()
