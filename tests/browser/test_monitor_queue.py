"""The waiting room on the monitor (CONTRACT §8.1): for an event that has one, the page shows the queue's size and
admission rate, polled while the event is on screen; for an event without one, nothing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.platforms import RunningPlatform

LATER = "2030-01-01T00:00:00Z"  # an opening far away: the test opens the room with PUT .../onsale
PLAIN_EVENT = "taylor_swift_concert"  # the demo event without a waiting room
# Counts the page's own GET requests by URL, to tell whether it still polls an event it no longer shows.
COUNT_FETCHES = """
window.__fetched = [];
const fetchOriginal = window.fetch;
window.fetch = (url, options) => {
  if (!options || !options.method || options.method === "GET") window.__fetched.push(String(url));
  return fetchOriginal(url, options);
};
"""


def onsale_event() -> dict:
    return {
        "eventId": f"monitor_onsale_{uuid.uuid4().hex[:8]}", "name": "On-sale on the monitor",
        "venue": {"name": "Arena", "city": "Leeds"}, "startsAt": "2030-08-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 40.0}],
        "rows": [{"row": "A", "seats": 10, "section": "Floor", "categoryId": "std"}],
        "onSale": {"opensAt": LATER, "waitingRoom": True, "admitPerMinute": 600, "admissionMinutes": 10},
    }


async def open_monitor_with_clock(browser, base_url: str, event: str):
    """Like test_monitor's open_monitor, with Playwright's clock installed (time still flows) so the test can run
    the page's timers forward at once, and the page's GET requests counted."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.add_init_script(COUNT_FETCHES)
    await page.clock.install()
    await page.goto(f"{base_url}/?event={event}")
    await page.wait_for_selector("#connection-status:has-text('Live')", timeout=15_000)
    return page


async def polls_of(page, event_id: str) -> int:
    return await page.evaluate("(url) => window.__fetched.filter((u) => u === url).length", f"/events/{event_id}")


async def test_the_monitor_shows_the_waiting_room_of_an_event_that_has_one(
        browser, platform: RunningPlatform, artifacts: Path) -> None:
    body = onsale_event()
    event_id = body["eventId"]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        created = await api.post("/events", json=body)
        assert created.status_code == 201, created.text
        for visitor in ("fan_1", "fan_2", "fan_3"):
            joined = await api.post(f"/events/{event_id}/queue", json={"visitorId": visitor})
            assert joined.status_code == 201, joined.text
        event = (await api.get(f"/events/{event_id}")).json()
        assert event["queue"]["size"] == 3 and event["queue"]["opened"] is False, event["queue"]

        page = await open_monitor_with_clock(browser, platform.base_url, event_id)
        panel = page.locator("#queue-panel")
        await expect(panel).to_be_visible(timeout=10_000)
        await expect(panel).to_have_attribute("aria-labelledby", "queue-heading")
        await expect(page.locator("#queue-size")).to_have_text("3")
        await expect(page.locator("#queue-waiting")).to_have_text("3")
        await expect(page.locator("#queue-serving")).to_have_text("0")
        await expect(page.locator("#queue-admitted")).to_have_text("0")
        await expect(page.locator("#queue-rate")).to_have_text("600")
        opens = page.locator("#queue-opens")
        await expect(opens).to_contain_text("opens")
        # The page's own time zone, named (a browser's local time, not the UTC the emails show).
        await expect(opens).to_have_text(re.compile(r"\d \S*(AM|PM)? (UTC|GMT[+-]?\d*|[A-Z]{3,5})$"))
        await expect(page.locator("#event-date")).to_have_text(re.compile(r" (UTC|GMT[+-]?\d*|[A-Z]{3,5})$"))
        await expect(opens).to_have_attribute("datetime", event["onSale"]["opensAt"])
        await expect(page.locator("#queue-panel .queue-figures")).to_have_attribute("aria-live", "polite")

        # Opened now: the pre-queue is drawn and, at 600 a minute, all three are admitted within a tick. The page
        # is not reloaded: only its polling brings the new figures.
        opened = await api.put(f"/events/{event_id}/onsale", json={
            "opensAt": datetime.now(UTC).isoformat(), "waitingRoom": True, "admitPerMinute": 600,
            "admissionMinutes": 10})
        assert opened.status_code == 200, opened.text
        await expect(opens).to_have_text("open", timeout=15_000)
        await expect(page.locator("#queue-serving")).to_have_text("3", timeout=15_000)
        queue = (await api.get(f"/events/{event_id}")).json()["queue"]
        assert queue["opened"] and queue["servingPosition"] == 3, queue
        await expect(page.locator("#queue-size")).to_have_text(str(queue["size"]))
        await expect(page.locator("#queue-waiting")).to_have_text(str(queue["waiting"]))
        await expect(page.locator("#queue-serving")).to_have_text(str(queue["servingPosition"]))
        await expect(page.locator("#queue-admitted")).to_have_text(str(queue["admittedLastMinute"]))
    await page.screenshot(path=str(artifacts / "monitor-queue.png"), full_page=True)

    # Another event without a room: the panel goes and the first event is polled no more, however long it stays.
    await page.select_option("#event-select", PLAIN_EVENT)
    await expect(page.locator("#event-name")).not_to_have_text("On-sale on the monitor", timeout=10_000)
    await expect(panel).to_be_hidden()
    polled = await polls_of(page, event_id)
    await page.clock.run_for(20_000)  # fires every timer due in the next 20 s now
    assert await polls_of(page, event_id) == polled
    await expect(panel).to_be_hidden()
    await page.close()


async def test_no_waiting_room_panel_for_an_event_without_one(browser, platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        event = (await api.get(f"/events/{PLAIN_EVENT}")).json()
    assert not event.get("queue"), event
    page = await open_monitor_with_clock(browser, platform.base_url, PLAIN_EVENT)
    await expect(page.locator("#event-name")).not_to_have_text("Loading events…")
    await expect(page.locator("#queue-panel")).to_be_hidden()
    await page.clock.run_for(10_000)
    assert await polls_of(page, PLAIN_EVENT) == 1  # the one load of the event: no polling
    await page.close()
