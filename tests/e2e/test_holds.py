"""The hold path end to end: HTTP → gateway → Kafka → booking → PostgreSQL → outbox → Kafka → HTTP."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import aiohttp
import httpx
import pytest

from tests.e2e.api_client import book, seat_statuses, wait_for
from tests.platforms import RunningPlatform

EVENT = "taylor_swift_concert"


@pytest.fixture
async def client(platform: RunningPlatform):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30, limits=limits) as c:
        yield c


async def test_three_users_one_seat(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(book(client, EVENT, ["A1"], f"user_{i}") for i in (1, 2, 3)))

    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert winner["success"] is True and winner["status"] == "pending" and winner["seatIds"] == ["A1"]
    assert winner["amount"] == 150.0 and winner["currency"] == "USD" and winner["expiresAt"].endswith("Z")
    for loser in (r.json() for r in responses if r.status_code == 409):
        assert loser == {**loser, "success": False, "error": "Seat A1 is already reserved",
                         "code": "seat_unavailable", "seatIds": ["A1"]}
    assert (await seat_statuses(client, EVENT))["A1"] == "RESERVED"
    booking = (await client.get(f"/bookings/{winner['bookingId']}")).json()
    assert booking["status"] == "pending" and booking["seatIds"] == ["A1"] and booking["userId"] == winner["userId"]


async def test_flash_crowd_on_a_block_never_double_holds(client: httpx.AsyncClient,
                                                        platform: RunningPlatform) -> None:
    block = [f"T{n}" for n in range(1, 31)]
    rng = random.Random(20261125)
    wanted = [rng.sample(block, rng.randint(1, 3)) for _ in range(500)]

    async with aiohttp.ClientSession(platform.base_url, connector=aiohttp.TCPConnector(limit=500)) as session:
        async def one(i: int, seats: list[str]) -> tuple[int, dict]:
            body = {"eventId": EVENT, "seatIds": seats, "userId": f"fan_{i}"}
            async with session.post("/bookings", json=body) as response:
                return response.status, await response.json()

        responses = await asyncio.gather(*(one(i, seats) for i, seats in enumerate(wanted)))

    assert {status for status, _ in responses} <= {201, 409}, Counter(status for status, _ in responses)
    held = [seat for status, body in responses if status == 201 for seat in body["seatIds"]]
    assert held and len(held) == len(set(held)), "a seat appears in two 201 answers"
    for request, (status, body) in zip(wanted, responses, strict=True):
        if status == 409:
            assert set(body["seatIds"]) <= set(request)
            assert set(body["seatIds"]) & set(held)
    statuses = await seat_statuses(client, EVENT)
    assert {s for s in block if statuses[s] == "RESERVED"} == set(held)
    assert all(statuses[s] == "AVAILABLE" for s in block if s not in held)

    async def counts_settled() -> bool:
        event = (await client.get(f"/events/{EVENT}")).json()
        statuses = list((await seat_statuses(client, EVENT)).values())
        reserved, booked = statuses.count("RESERVED"), statuses.count("BOOKED")
        return (event["reserved"], event["booked"], event["available"]) == (
            reserved, booked, event["totalSeats"] - reserved - booked)

    assert await wait_for(counts_settled), "catalog counts do not match the seat map"


async def test_idempotency_key_returns_the_first_answer_and_holds_once(client: httpx.AsyncClient) -> None:
    first = await book(client, EVENT, ["C1"], "user_idem", **{"Idempotency-Key": "order-42"})
    again = await book(client, EVENT, ["C1"], "user_idem", **{"Idempotency-Key": "order-42"})
    other = await book(client, EVENT, ["C2"], "user_idem", **{"Idempotency-Key": "order-42"})

    assert first.status_code == again.status_code == 201
    assert again.json()["bookingId"] == first.json()["bookingId"]
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    statuses = await seat_statuses(client, EVENT)
    assert statuses["C1"] == "RESERVED" and statuses["C2"] == "AVAILABLE"


async def test_one_idempotency_key_sent_at_once_with_two_bodies_holds_one_and_refuses_the_other(
        client: httpx.AsyncClient) -> None:
    """Both answered the first body's hold once; the other body must get 422, never that hold as its answer."""
    for n in range(5):
        key = {"Idempotency-Key": f"twin-bodies-{n}"}
        answers = await asyncio.gather(book(client, EVENT, [f"C{10 + 2 * n}"], "user_twins", **key),
                                       book(client, EVENT, [f"C{11 + 2 * n}"], "user_twins", **key))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 422], [a.text for a in answers]
        held = next(a.json() for a in answers if a.status_code == 201)
        refused = next(a.json() for a in answers if a.status_code == 422)
        assert refused["code"] == "idempotency_key_reused", refused
        statuses = await seat_statuses(client, EVENT)
        assert [statuses[s] for s in (f"C{10 + 2 * n}", f"C{11 + 2 * n}")].count("RESERVED") == 1
        assert statuses[held["seatIds"][0]] == "RESERVED"


async def test_request_status_url_shows_the_outcome(client: httpx.AsyncClient) -> None:
    held = await book(client, EVENT, ["C5"], "user_status")
    status = await client.get(f"/booking-requests/{held.json()['requestId']}")

    assert status.status_code == 200
    assert status.json()["status"] == "processed" and status.json()["result"]["bookingId"] == held.json()["bookingId"]


async def test_booking_service_down_gives_202_then_the_outcome(client: httpx.AsyncClient,
                                                             platform: RunningPlatform) -> None:
    assert platform.cli("stop", "booking").returncode == 0
    try:
        async def reported_down() -> bool:
            health = (await client.get("/health")).json()
            return health["services"]["booking"]["status"] == "down"

        assert await wait_for(reported_down, timeout=15)
        first = await book(client, EVENT, ["D1"], "early_bird")
        second = await book(client, EVENT, ["D1"], "late_bird")
        for response in (first, second):
            assert response.status_code == 202
            body = response.json()
            assert body["status"] == "queued" and body["statusUrl"] == f"/booking-requests/{body['requestId']}"
            waiting = (await client.get(body["statusUrl"])).json()
            assert waiting["status"] == "queued" and waiting["success"] is False
        assert (await seat_statuses(client, EVENT))["D1"] == "AVAILABLE"
    finally:
        assert platform.cli("start", "booking").returncode == 0

    async def outcome(response: httpx.Response) -> dict | None:
        body = (await client.get(response.json()["statusUrl"])).json()
        return body if body["status"] == "processed" else None

    first_outcome = await wait_for(lambda: outcome(first), timeout=30)
    second_outcome = await wait_for(lambda: outcome(second), timeout=30)
    assert first_outcome["httpStatus"] == 201 and first_outcome["result"]["userId"] == "early_bird"
    assert second_outcome["httpStatus"] == 409 and second_outcome["result"]["code"] == "seat_unavailable"
    assert first_outcome["success"] is True and second_outcome["success"] is False
    assert (await seat_statuses(client, EVENT))["D1"] == "RESERVED"
    fresh = await book(client, EVENT, ["D2"], "after_restart")
    assert fresh.status_code == 201
