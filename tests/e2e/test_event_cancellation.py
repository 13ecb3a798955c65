"""An organiser calls an event off (CONTRACT §8.3): closed to new holds, unpaid holds released, the waiting
list ended, progress on GET /events/{id}."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.api_client import wait_for
from tests.platforms import RunningPlatform


@pytest.fixture
async def client(platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as c:
        yield c


async def test_a_cancelled_event_takes_no_holds_and_gives_its_seats_back(client: httpx.AsyncClient) -> None:
    event_id = f"off_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Called off", "venue": {"name": "Hall"}, "startsAt": "2027-08-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 10.0}],
        "rows": [{"row": "A", "seats": 3, "categoryId": "std"}]})
    assert created.status_code == 201 and created.json()["status"] == "on_sale"
    hold = (await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"], "userId": "u1"})).json()
    entry = (await client.post(f"/events/{event_id}/waitlist", json={"quantity": 3, "userId": "u2"})).json()

    cancelled = await client.post(f"/events/{event_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    event = cancelled.json()
    assert event["status"] == "cancelled"
    assert event["cancellation"]["holdsReleased"] == 1 and event["cancellation"]["bookingsToRefund"] == 0
    assert event["cancellation"]["done"] is True and event["cancellation"]["cancelledAt"].endswith("Z")
    listed = {e["eventId"]: e["status"] for e in (await client.get("/events")).json()}
    assert listed[event_id] == "cancelled" and listed["taylor_swift_concert"] == "on_sale"
    booking = (await client.get(f"/bookings/{hold['bookingId']}")).json()
    assert booking["status"] == "cancelled"
    assert (await client.get(f"/waitlist/{entry['waitlistId']}")).json()["status"] == "expired"

    async def all_free() -> bool:
        seats = (await client.get(f"/events/{event_id}/seats")).json()
        return all(s["status"] == "AVAILABLE" for s in seats)
    assert await wait_for(all_free)
    for body in ({"seatIds": ["A3"]}, {"quantity": 1}):
        refused = await client.post("/bookings", json={"eventId": event_id, "userId": "late", **body})
        assert refused.status_code == 409 and refused.json()["code"] == "event_cancelled", refused.text
    # Nor a waiting list that would wait for ever: the join is refused, and no entry is made.
    late = await client.post(f"/events/{event_id}/waitlist", json={"quantity": 1, "userId": "late"})
    assert late.status_code == 409, late.text
    assert late.json() == {"success": False, "code": "event_cancelled",
                           "error": f"Event {event_id} was cancelled by its organiser: its waiting list is closed"}
    again = await client.post(f"/events/{event_id}/cancel")
    assert again.status_code == 200 and again.json()["cancellation"] == event["cancellation"]


async def test_cancelling_an_unknown_or_malformed_event_is_refused(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/events/no_such_event/cancel")
    assert unknown.status_code == 404 and unknown.json()["code"] == "event_not_found"
    assert (await client.post("/events/bad%20id/cancel")).status_code == 422
