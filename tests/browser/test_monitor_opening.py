"""What the monitor shows as it opens and while a hold is on screen: the event's last changes in the activity
log, no buttons standing disabled above a hold, and event names in the picker uncut."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.browser.test_monitor import open_monitor
from tests.e2e.api_client import wait_for
from tests.e2e.sse import LiveStream
from tests.platforms import RunningPlatform


async def create_event(api: httpx.AsyncClient, name: str = "Opening night", venue: str = "Hall") -> str:
    event_id = f"opening_{uuid.uuid4().hex[:10]}"
    created = await api.post("/events", json={
        "eventId": event_id, "name": name, "venue": {"name": venue, "city": "Leeds"},
        "startsAt": "2027-09-01T19:30:00Z", "priceCategories": [{"categoryId": "std", "name": "Std", "price": 20.0}],
        "rows": [{"row": "A", "seats": 6, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    return event_id


async def book(api: httpx.AsyncClient, event_id: str, seat: str) -> str:
    answer = await api.post("/bookings", json={"eventId": event_id, "seatIds": [seat], "userId": "early_fan"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["bookingId"])


async def test_the_activity_log_opens_with_the_last_changes(browser, platform: RunningPlatform,
                                                            artifacts: Path) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api)
        await book(api, event_id, "A1")
        assert (await api.delete(f"/bookings/{await book(api, event_id, 'A2')}")).status_code == 200
        await book(api, event_id, "A3")

        async def snapshot_has_all_four() -> bool:
            async with LiveStream(api, event_id) as stream:
                return len(stream.messages[0].get("recent", [])) == 4

        # Made before anyone watched: the page below can learn of them from its snapshot only.
        assert await wait_for(snapshot_has_all_four, timeout=15)

    page = await open_monitor(browser, platform.base_url, event_id)
    log = page.locator("#activity-log li")
    await expect(log).to_have_count(4, timeout=5_000)
    entries = [text.split(" ", 1)[1] for text in await log.all_text_contents()]
    assert entries == ["A3 reserved", "A2 released (cancelled)", "A2 reserved", "A1 reserved"]
    await page.screenshot(path=str(artifacts / "monitor-opening-log.png"), full_page=True)

    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        await book(api, event_id, "A4")
    await expect(log.first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d A4 reserved$"), timeout=5_000)
    await expect(log).to_have_count(5)
    await page.close()


async def test_no_disabled_buttons_stand_above_a_hold(browser, platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api)
    page = await open_monitor(browser, platform.base_url, event_id)
    await page.fill("#user-id", "hold_viewer")
    await page.click("[data-seat-id='A1']")
    await page.click("#hold-button")
    await expect(page.locator("#hold-panel")).to_be_visible(timeout=10_000)
    await expect(page.locator("#selection-actions")).to_be_hidden()

    # Seats picked meanwhile can be cleared, but not held until this hold is settled.
    await page.click("[data-seat-id='A2']")
    await expect(page.locator("#clear-button")).to_be_visible()
    await expect(page.locator("#hold-button")).to_be_hidden()
    await page.click("#clear-button")
    await expect(page.locator("#selection-actions")).to_be_hidden()

    await page.click("#cancel-button")
    await expect(page.locator("#hold-panel")).to_be_hidden(timeout=10_000)
    await expect(page.locator("#hold-button")).to_have_text("Hold 0 seats")
    await expect(page.locator("#hold-button")).to_be_disabled()
    await page.close()


async def test_the_picker_shows_a_long_event_name_whole(browser, platform: RunningPlatform, artifacts: Path) -> None:
    name = "The Royal Northern Philharmonic plays Mahler's Second Symphony, Resurrection: the anniversary gala"
    async with httpx.AsyncClient(base_url=platform.base_url) as api:
        event_id = await create_event(api, name, venue="Bridgewater Hall")
    page = await open_monitor(browser, platform.base_url, event_id)
    shown = await page.evaluate("""() => {
        const select = document.querySelector('#event-select');
        const style = getComputedStyle(select);
        const pen = document.createElement('canvas').getContext('2d');
        pen.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const text = select.options[select.selectedIndex].text;
        // Room for the text: the box less its padding and the drop-down arrow.
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
        return {text, needed: pen.measureText(text).width, room};
    }""")
    assert shown["text"] == f"{name} — Bridgewater Hall, Leeds"
    assert shown["needed"] <= shown["room"], shown
    await page.screenshot(path=str(artifacts / "monitor-long-name.png"))
    await page.close()
