"""Refunds end to end (CONTRACT §8.3): a confirmed booking given back is refunded once through the payment
provider, its seats AVAILABLE again and the buyer emailed; a refund the provider refuses leaves it confirmed."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice.messages import REFUND_REQUESTED, REFUND_SUCCEEDED, Message, decode
from tests.e2e.api_client import wait_for
from tests.platforms import RunningPlatform

CARD = "4242424242424242"


@pytest.fixture
async def client(platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as c:
        yield c


async def paid_booking(client: httpx.AsyncClient, payment_id: str, seats: int = 2,
                       price: float = 40.0) -> tuple[str, dict]:
    event_id = f"rf_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Spring show", "venue": {"name": "Hall"}, "startsAt": "2027-08-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": price}],
        "rows": [{"row": "A", "seats": 4, "categoryId": "std"}]})
    assert created.status_code == 201
    held = (await client.post("/bookings", json={"eventId": event_id, "seatIds": [f"A{n}" for n in
                                                                                 range(1, seats + 1)],
                                                  "userId": "refund_buyer"})).json()
    paid = await client.put(f"/bookings/{held['bookingId']}/confirm",
                            json={"paymentId": payment_id, "amount": held["amount"], "card": CARD})
    assert paid.status_code == 200, paid.text
    return event_id, held


async def provider_refunds(platform: RunningPlatform, booking_id: str) -> tuple[int, list[str]]:
    connection = await asyncpg.connect(str(platform.runtime["database_url"]))
    try:
        made = await connection.fetchval(
            "SELECT count(*) FROM simulated_provider_refunds WHERE idempotency_key = $1",
            f"refund:refund_{booking_id}")
        statuses = [r["status"] for r in await connection.fetch(
            "SELECT status FROM refunds WHERE booking_id = $1", booking_id)]
    finally:
        await connection.close()
    return made, statuses


async def test_a_confirmed_booking_is_refunded_once_and_its_seats_come_back(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, held = await paid_booking(client, f"pay_{uuid.uuid4().hex[:6]}")
    booking_id = held["bookingId"]
    refunded = await client.delete(f"/bookings/{booking_id}")
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert body == {**body, "success": True, "status": "refunded", "bookingId": booking_id,
                    "refundId": f"refund_{booking_id}", "amount": 80.0}
    again = await client.post(f"/bookings/{booking_id}/cancel")
    assert again.status_code == 200 and again.json() == body  # one refund per booking: the same answer

    booking = (await client.get(f"/bookings/{booking_id}")).json()
    assert booking["status"] == "refunded" and booking["refundId"] == f"refund_{booking_id}"
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats["A1"] == seats["A2"] == "AVAILABLE"
    assert await provider_refunds(platform, booking_id) == (1, ["succeeded"])

    # A redelivered refund request (as after a crash) refunds nothing twice.
    producer = AIOKafkaProducer(bootstrap_servers=str(platform.runtime["kafka_bootstrap"]))
    await producer.start()
    try:
        copy = Message(REFUND_REQUESTED, event_id, {"bookingId": booking_id, "paymentId": booking.get("paymentId"),
                                                    "refundId": f"refund_{booking_id}", "amount": 80.0,
                                                    "currency": "USD"}, "req_redelivered")
        await producer.send_and_wait(REFUND_REQUESTED, copy.encode(), key=copy.key)
    finally:
        await producer.stop()

    async def mail() -> list[dict]:
        messages = (await client.get(f"{platform.runtime['mailbox_url']}/messages")).json()
        return [m for m in messages if booking_id in (m.get("text") or "") and "refund" in m["subject"].lower()]
    [sent] = await wait_for(mail)
    assert sent["to"] == ["refund_buyer@boxoffice.test"] and "80.00 USD goes back" in sent["text"]
    # The copy is answered with the first outcome again, and nothing is refunded twice.
    consumer = AIOKafkaConsumer(REFUND_SUCCEEDED, bootstrap_servers=str(platform.runtime["kafka_bootstrap"]),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        async def answered_again() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            return any(decode(r.value).request_id == "req_redelivered" for rs in batches.values() for r in rs
                       if r.value is not None)
        assert await wait_for(answered_again)
    finally:
        await consumer.stop()
    assert await provider_refunds(platform, booking_id) == (1, ["succeeded"])
    assert (await client.get(f"/bookings/{booking_id}")).json()["status"] == "refunded"


async def test_confirming_a_refunded_booking_again_is_refused_at_once_with_either_payment_id(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """The same paymentId's first answer no longer stands once the booking is refunded: the refund is the
    answer, at once (not a 202 after the confirmation's wait), and nothing is charged again."""
    payment_id = f"pay_{uuid.uuid4().hex[:6]}"
    _, held = await paid_booking(client, payment_id, seats=1)
    booking_id = held["bookingId"]
    assert (await client.delete(f"/bookings/{booking_id}")).status_code == 200
    for asked in (payment_id, f"pay_new_{uuid.uuid4().hex[:6]}"):
        again = await client.put(f"/bookings/{booking_id}/confirm",
                                 json={"paymentId": asked, "amount": held["amount"], "card": CARD})
        assert again.status_code == 409, again.text
        assert again.json() == {"success": False, "code": "booking_refunded", "bookingId": booking_id,
                                "status": "refunded",
                                "error": f"Booking {booking_id} was refunded; its seats were released"}
    assert (await client.get(f"/bookings/{booking_id}")).json()["status"] == "refunded"
    connection = await asyncpg.connect(str(platform.runtime["database_url"]))
    try:
        payments = await connection.fetchval("SELECT count(*) FROM payments WHERE booking_id = $1", booking_id)
    finally:
        await connection.close()
    assert payments == 1


async def test_a_free_booking_is_refunded_without_the_provider(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, held = await paid_booking(client, f"free_{uuid.uuid4().hex[:6]}", price=0)
    booking_id = held["bookingId"]
    refunded = await client.delete(f"/bookings/{booking_id}")
    assert refunded.status_code == 200, refunded.text
    assert refunded.json() == {**refunded.json(), "status": "refunded", "refundId": f"refund_{booking_id}",
                               "amount": 0.0}
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats["A1"] == seats["A2"] == "AVAILABLE"
    assert await provider_refunds(platform, booking_id) == (0, ["succeeded"])  # the provider was not asked


async def test_a_refund_the_provider_refuses_leaves_the_booking_confirmed(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, held = await paid_booking(client, "pay_no-refund_" + uuid.uuid4().hex[:6], seats=1)
    refused = await client.delete(f"/bookings/{held['bookingId']}")
    assert refused.status_code == 502 and refused.json()["code"] == "refund_failed", refused.text
    assert "account is closed" in refused.json()["error"]
    assert (await client.get(f"/bookings/{held['bookingId']}")).json()["status"] == "confirmed"
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats["A1"] == "BOOKED"


async def test_refunds_asked_at_once_that_the_provider_refuses_all_get_the_refusal(
        client: httpx.AsyncClient) -> None:
    """Those that came while the first was under way wait for its outcome: the refusal, not a 202 ten seconds
    later."""
    _, held = await paid_booking(client, "pay_no-refund_" + uuid.uuid4().hex[:6], seats=1)
    answers = await asyncio.gather(*(client.delete(f"/bookings/{held['bookingId']}") for _ in range(4)))
    assert [(a.status_code, a.json().get("code")) for a in answers] == [(502, "refund_failed")] * 4, \
        [a.text for a in answers]
    assert (await client.get(f"/bookings/{held['bookingId']}")).json()["status"] == "confirmed"


async def test_a_cancelled_event_refunds_every_paid_booking(client: httpx.AsyncClient,
                                                            platform: RunningPlatform) -> None:
    event_id, held = await paid_booking(client, f"pay_{uuid.uuid4().hex[:6]}")
    assert (await client.post(f"/events/{event_id}/cancel")).status_code == 200

    async def refunded() -> dict | None:
        event = (await client.get(f"/events/{event_id}")).json()
        return event if event["cancellation"]["done"] else None
    event = await wait_for(refunded)
    assert event["cancellation"]["bookingsRefunded"] == 1 and event["cancellation"]["bookingsToRefund"] == 0
    assert (await client.get(f"/bookings/{held['bookingId']}")).json()["status"] == "refunded"
    assert await provider_refunds(platform, held["bookingId"]) == (1, ["succeeded"])
