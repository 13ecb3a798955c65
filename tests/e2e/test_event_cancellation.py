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


async def test_a_backlog_read_after_an_outage_is_decided_in_the_order_it_was_asked(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """Holds, a payment and the event's cancel wait in Kafka on three topics while the booking service is down;
    once it is back, what was asked before the cancel is decided before it, and what came after is refused."""
    event_id = f"off_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Called off in an outage", "venue": {"name": "Hall"},
        "startsAt": "2027-08-01T19:30:00Z", "priceCategories": [{"categoryId": "std", "name": "Std", "price": 10.0}],
        "rows": [{"row": "A", "seats": 6, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    first = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1"], "userId": "u1"})
    assert first.status_code == 201, first.text
    booking_id = first.json()["bookingId"]
    assert platform.cli("stop", "booking").returncode == 0
    try:
        async def reported_down() -> bool:
            return (await client.get("/health")).json()["services"]["booking"]["status"] == "down"
        assert await wait_for(reported_down, timeout=15)
        early = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"], "userId": "u2"})
        best = await client.post("/bookings", json={"eventId": event_id, "quantity": 2, "userId": "u3"})
        paid = await client.put(f"/bookings/{booking_id}/confirm",
                                json={"paymentId": "pay_backlog", "amount": 10.0, "card": "4242424242424242"})
        assert [r.status_code for r in (early, best, paid)] == [202, 202, 202], [early.text, best.text, paid.text]
        assert (await client.post(f"/events/{event_id}/cancel")).status_code == 202
        late = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A5"], "userId": "u4"})
        assert late.status_code == 202, late.text
    finally:
        assert platform.cli("start", "booking").returncode == 0

    async def processed(answer: httpx.Response) -> dict | None:
        status = (await client.get(answer.json()["statusUrl"])).json()
        return status if status["status"] == "processed" else None
    for before in (early, best):
        decided = await wait_for(lambda before=before: processed(before), timeout=30)
        assert decided["httpStatus"] == 201, decided  # held, then released by the cancel
    refused = await wait_for(lambda: processed(late), timeout=30)
    assert (refused["httpStatus"], refused["result"]["code"]) == (409, "event_cancelled"), refused

    async def refunded() -> dict | None:  # the payment asked in time was made, then given back
        booking = (await client.get(f"/bookings/{booking_id}")).json()
        return booking if booking["status"] == "refunded" else None
    assert await wait_for(refunded, timeout=30)

    async def all_free() -> bool:
        seats = (await client.get(f"/events/{event_id}/seats")).json()
        return all(s["status"] == "AVAILABLE" for s in seats)
    assert await wait_for(all_free)
