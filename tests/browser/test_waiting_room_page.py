"""The waiting room page in a real browser: a visitor waits, is admitted, lands on the seat map with the
access token and holds a seat (CONTRACT §8.1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from tests.platforms import RunningPlatform


async def create_onsale_event(api: httpx.AsyncClient, prefix: str) -> str:
    """An event behind a waiting room that opens far in the future (the test opens it when it wants)."""
    event_id = f"{prefix}_{uuid.uuid4().hex[:6]}"
    created = await api.post("/events", json={
        "eventId": event_id, "name": "On-sale in the browser", "venue": {"name": "Arena", "city": "Leeds"},
        "startsAt": "2030-08-01T19:30:00Z", "priceCategories": [{"categoryId": "std", "name": "Std", "price": 40}],
        "rows": [{"row": "A", "seats": 10, "section": "Floor", "categoryId": "std"}],
        "onSale": {"opensAt": "2030-01-01T00:00:00Z", "admitPerMinute": 600}})
    assert created.status_code == 201, created.text
    return event_id


async def test_a_visitor_waits_is_admitted_and_holds_a_seat(browser, platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as api:
        event_id = await create_onsale_event(api, "page_onsale")

        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(f"{platform.base_url}/events/{event_id}/queue")
        await page.wait_for_selector("#queue-state:has-text('your place is drawn then')", timeout=15_000)
        assert await page.text_content("#queue-position") == "drawn at the opening"
        assert await page.text_content("#queue-wait-label") == "Sale opens in"  # not a wait for a turn yet

        opened = await api.put(f"/events/{event_id}/onsale", json={
            "opensAt": datetime.now(UTC).isoformat(), "waitingRoom": True, "admitPerMinute": 600})
        assert opened.status_code == 200, opened.text

    # Admitted: the page moves to the seat map, which sends the access token with the hold.
    await page.wait_for_url(f"{platform.base_url}/?event={event_id}", timeout=20_000)
    await page.wait_for_selector("#connection-status:has-text('Live')", timeout=15_000)
    await page.click("[data-seat-id='A3']")
    await page.click("#hold-button")
    await page.wait_for_selector("[data-seat-id='A3'][data-status='RESERVED']", timeout=10_000)
    await page.close()


async def test_the_page_solves_the_proof_of_work_and_joins(browser, proof_platform: RunningPlatform) -> None:
    """With BOXOFFICE_QUEUE_PROOF_OF_WORK_BITS set, the page finds the solution itself (its own SHA-256,
    checked by the gateway's) and the visitor gets a place."""
    async with httpx.AsyncClient(base_url=proof_platform.base_url, timeout=30) as api:
        event_id = await create_onsale_event(api, "page_proof")
        page = await browser.new_page()
        await page.goto(f"{proof_platform.base_url}/events/{event_id}/queue")
        await page.wait_for_selector("#queue-state:has-text('your place is drawn then')", timeout=20_000)
        assert await page.is_hidden("#queue-error")
        event = (await api.get(f"/events/{event_id}")).json()
    assert event["queue"]["size"] == 1, event["queue"]
    await page.close()


async def test_the_page_of_an_unknown_event_says_so_and_joins_nothing(browser, platform: RunningPlatform) -> None:
    page = await browser.new_page()
    response = await page.goto(f"{platform.base_url}/events/no_such_onsale_here/queue")
    assert response is not None and response.status == 404  # as the API answers; still the page, which says so
    await page.wait_for_selector("#queue-error:has-text('does not exist')", timeout=15_000)
    assert await page.locator("#queue-state").text_content() == "Not in the queue."  # not "Joining the queue…"
    assert await page.get_attribute("#queue-elsewhere-link", "href") == "/"
    assert await page.locator("#queue-note").is_hidden()  # not "Keep this page open"
    await page.close()


async def test_the_page_of_an_event_without_a_waiting_room_leads_to_its_seat_map(browser,
                                                                                 platform: RunningPlatform) -> None:
    page = await browser.new_page()
    response = await page.goto(f"{platform.base_url}/events/coldplay_world_tour/queue")
    assert response is not None and response.status == 200
    await page.wait_for_selector("#queue-elsewhere:visible", timeout=15_000)
    await page.click("#queue-elsewhere-link")
    await page.wait_for_url("**/?event=coldplay_world_tour", timeout=10_000)
    await page.wait_for_selector("[data-seat-id]", timeout=15_000)
    await page.close()
