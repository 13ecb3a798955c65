"""Tickets at the door (POST /tickets/verify): the emailed QR codes are signed, each seat gets in once (also
when scanned at several doors at the same moment), a refunded booking's tickets are invalid, and nobody can
make a ticket from the ids the platform shows."""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
import httpx
import pytest

from tests.e2e.api_client import wait_for
from tests.platforms import ADMIN, RunningPlatform

CARD = "4242424242424242"
CODE = re.compile(r"^ +(\S+): (boxoffice:ticket:2:\S+)", re.MULTILINE)


@pytest.fixture
async def client(platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as c:
        yield c


async def paid_booking(client: httpx.AsyncClient, seats: int, payment_id: str | None = None) -> tuple[str, str]:
    event_id = f"door_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Door show", "venue": {"name": "Hall"}, "startsAt": "2027-09-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 25.0}],
        "rows": [{"row": "A", "seats": 4, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    held = (await client.post("/bookings", json={"eventId": event_id, "seatIds": [f"A{n}" for n in range(1, seats + 1)],
                                                  "userId": f"door_{uuid.uuid4().hex[:6]}"})).json()
    paid = await client.put(f"/bookings/{held['bookingId']}/confirm",
                            json={"paymentId": payment_id or f"pay_{uuid.uuid4().hex[:6]}", "amount": held["amount"],
                                  "card": CARD})
    assert paid.status_code == 200, paid.text
    return event_id, held["bookingId"]


async def emailed_tickets(client: httpx.AsyncClient, platform: RunningPlatform, booking_id: str) -> dict[str, str]:
    """Each seat's ticket code, as the confirmation email wrote it out beside the QR codes."""
    async def confirmation() -> list[dict]:
        messages = (await client.get(f"{platform.runtime['mailbox_url']}/messages")).json()
        return [m for m in messages if m["subject"].startswith("Your tickets") and booking_id in (m["text"] or "")]
    [mail] = await wait_for(confirmation)
    return dict(CODE.findall(mail["text"]))


async def verify(client: httpx.AsyncClient, ticket: str, **headers: str) -> dict:
    answer = await client.post("/tickets/verify", json={"ticket": ticket}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def entries(platform: RunningPlatform, booking_id: str) -> dict[str, int]:
    connection = await asyncpg.connect(str(platform.runtime["database_url"]))
    try:
        rows = await connection.fetch(
            "SELECT seat_id, count(*) AS n FROM ticket_entries WHERE booking_id = $1::uuid GROUP BY seat_id",
            booking_id)
    finally:
        await connection.close()
    return {r["seat_id"]: r["n"] for r in rows}


async def test_a_ticket_gets_in_once(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, booking_id = await paid_booking(client, seats=2)
    tickets = await emailed_tickets(client, platform, booking_id)
    assert set(tickets) == {"A1", "A2"}

    first = await verify(client, tickets["A1"])
    assert first["success"] is True and first["status"] == "valid"
    assert (first["eventId"], first["bookingId"], first["seatId"]) == (event_id, booking_id, "A1")
    again = await verify(client, f" {tickets['A1']}\n")
    assert again["success"] is False and again["status"] == "already_used"
    assert again["usedAt"] == first["usedAt"] and again["seatId"] == "A1" and again["bookingId"] == booking_id
    assert (await verify(client, tickets["A2"]))["status"] == "valid"  # each seat has its own entry
    assert await entries(platform, booking_id) == {"A1": 1, "A2": 1}


async def test_scanned_at_many_doors_at_once_exactly_one_gets_in(client: httpx.AsyncClient,
                                                                  platform: RunningPlatform) -> None:
    _, booking_id = await paid_booking(client, seats=1)
    ticket = (await emailed_tickets(client, platform, booking_id))["A1"]
    verdicts = await asyncio.gather(*(verify(client, ticket) for _ in range(12)))
    assert sorted(v["status"] for v in verdicts) == ["already_used"] * 11 + ["valid"]
    assert len({v["usedAt"] for v in verdicts}) == 1  # every door names the one entry
    assert await entries(platform, booking_id) == {"A1": 1}


async def test_a_refunded_bookings_tickets_are_invalid(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    _, booking_id = await paid_booking(client, seats=1)
    ticket = (await emailed_tickets(client, platform, booking_id))["A1"]
    refunded = await client.delete(f"/bookings/{booking_id}")
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded", refunded.text

    verdict = await verify(client, ticket)
    assert (verdict["status"], verdict["reason"], verdict["bookingId"]) == ("invalid", "booking_refunded", booking_id)
    assert await entries(platform, booking_id) == {}


async def test_a_cancelled_events_tickets_are_invalid_also_when_its_refund_was_refused(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """The provider refuses this payment's refund (the simulated provider's `no-refund` payment ids): the booking
    stays confirmed and the cancellation says so, but its ticket lets nobody in."""
    event_id, booking_id = await paid_booking(client, seats=1, payment_id=f"pay_no-refund_{uuid.uuid4().hex[:6]}")
    ticket = (await emailed_tickets(client, platform, booking_id))["A1"]
    assert (await client.post(f"/events/{event_id}/cancel")).status_code == 200

    async def settled() -> dict | None:
        cancellation = (await client.get(f"/events/{event_id}")).json()["cancellation"]
        return cancellation if cancellation["done"] else None
    cancellation = await wait_for(settled)
    assert (cancellation["refundsRefused"], cancellation["bookingsToRefund"], cancellation["bookingsRefunded"]) == (
        1, 0, 0)
    assert (await client.get(f"/bookings/{booking_id}")).json()["status"] == "confirmed"
    verdict = await verify(client, ticket)
    assert (verdict["status"], verdict["reason"]) == ("invalid", "event_cancelled"), verdict
    assert await entries(platform, booking_id) == {}

    async def told() -> list[dict]:  # the buyer learns that the money has not come back
        messages = (await client.get(f"{platform.runtime['mailbox_url']}/messages")).json()
        return [m for m in messages if booking_id in (m.get("text") or "")
                and m["subject"].endswith("was cancelled: your refund could not be made")]
    [mail] = await wait_for(told)
    assert "has not come back to your card" in mail["text"]


async def test_a_booking_whose_ticket_was_used_at_the_door_is_not_refunded_nor_its_seat_sold_again(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, booking_id = await paid_booking(client, seats=2)
    ticket = (await emailed_tickets(client, platform, booking_id))["A2"]
    assert (await verify(client, ticket))["status"] == "valid"

    refund = await client.delete(f"/bookings/{booking_id}")
    assert refund.status_code == 409, refund.text
    assert refund.json()["code"] == "tickets_used" and "seat A2" in refund.json()["error"]
    assert (await client.get(f"/bookings/{booking_id}")).json()["status"] == "confirmed"
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats["A1"] == seats["A2"] == "BOOKED"
    again = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"], "userId": "second_buyer"})
    assert again.status_code == 409 and again.json()["code"] == "seat_unavailable", again.text


async def test_tickets_made_from_public_ids_are_invalid(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, booking_id = await paid_booking(client, seats=2)
    genuine = (await emailed_tickets(client, platform, booking_id))["A1"]
    made_up = {
        f"boxoffice:ticket:{booking_id}:A1": "unsigned",  # the form before tickets were signed
        genuine.replace(":A1:", ":A2:"): "forged",  # another seat of the same booking
        f"boxoffice:ticket:2:{event_id}:{booking_id}:A2:{'x' * 43}": "forged",
        "boxoffice:ticket:2:whatever": "malformed",
        "<script>alert(1)</script>": "malformed",
    }
    for ticket, reason in made_up.items():
        verdict = await verify(client, ticket)
        assert (verdict["status"], verdict["reason"], verdict["success"]) == ("invalid", reason, False), ticket
        assert "bookingId" not in verdict and verdict["message"]
    assert await entries(platform, booking_id) == {}


@pytest.mark.parametrize("body", [
    {}, {"ticket": ""}, {"ticket": 42}, {"ticket": None}, {"ticket": ["a"]}, {"ticket": "x" * 513},
    {"ticket": "boxoffice:ticket:2:a", "eventId": "x"}, "not an object",
])
async def test_a_malformed_body_is_refused(client: httpx.AsyncClient, body: object) -> None:
    answer = await client.post("/tickets/verify", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error" and answer.json()["error"]


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/tickets/verify", content=b"{ticket", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "The request body is not valid JSON (at character 1)"


async def test_with_accounts_on_only_organisers_check_tickets(auth_platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=auth_platform.base_url, timeout=30) as client:
        body = {"ticket": "boxoffice:ticket:2:whatever"}
        anonymous = await client.post("/tickets/verify", json=body)
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"

        email, password = f"door-{uuid.uuid4().hex[:8]}@example.com", "a long enough password"
        registered = await client.post("/auth/register", json={"email": email, "password": password})
        assert registered.status_code == 201, registered.text

        async def token() -> dict[str, str]:
            answer = await client.post("/auth/token", data={"username": email, "password": password})
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}
        buyer = await client.post("/tickets/verify", json=body, headers=await token())
        assert buyer.status_code == 403 and buyer.json()["code"] == "forbidden"

        admin_login = await client.post("/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]})
        admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        granted = await client.put(f"/users/{registered.json()['userId']}/role", json={"role": "organiser"},
                                   headers=admin)
        assert granted.status_code == 200, granted.text
        organiser = await client.post("/tickets/verify", json=body, headers=await token())
        assert organiser.status_code == 200
        assert (organiser.json()["status"], organiser.json()["reason"]) == ("invalid", "malformed")
