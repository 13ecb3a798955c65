"""The waiting list end to end (CONTRACT §8.3): released seats go to the first entry that fits, as an offer
held like any hold, emailed and shown in the seat map; the crowd never gets them first."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.api_client import wait_for
from tests.platforms import RunningPlatform


def small_hall(seats: int = 4) -> dict:
    return {
        "eventId": f"wl_{uuid.uuid4().hex[:8]}", "name": "Small hall", "venue": {"name": "Hall", "city": "York"},
        "startsAt": "2027-08-01T19:30:00Z", "priceCategories": [{"categoryId": "std", "name": "Std", "price": 30.0}],
        "rows": [{"row": "A", "seats": seats, "categoryId": "std"}],
    }


async def sold_out_event(client: httpx.AsyncClient) -> tuple[str, list[dict]]:
    body = small_hall()
    assert (await client.post("/events", json=body)).status_code == 201
    event_id = body["eventId"]
    holds = []
    for seats, user in ((["A1", "A2"], "early_1"), (["A3", "A4"], "early_2")):
        held = await client.post("/bookings", json={"eventId": event_id, "seatIds": seats, "userId": user})
        assert held.status_code == 201, held.text
        holds.append(held.json())
    return event_id, holds


async def join(client: httpx.AsyncClient, event_id: str, user: str, quantity: int) -> httpx.Response:
    return await client.post(f"/events/{event_id}/waitlist",
                             json={"quantity": quantity, "userId": user, "email": f"{user}@example.com"})


async def entry_once(client: httpx.AsyncClient, waitlist_id: str, status: str) -> dict | None:
    entry = (await client.get(f"/waitlist/{waitlist_id}")).json()
    return entry if entry["status"] == status else None


@pytest.fixture
async def client(platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as c:
        yield c


async def test_released_seats_are_offered_in_order_and_not_to_the_crowd(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, holds = await sold_out_event(client)
    big = await join(client, event_id, "wl_big", 3)  # first in line, but three will not fit two released seats
    ann = await join(client, event_id, "wl_ann", 2)
    assert (big.status_code, ann.status_code) == (201, 201), ann.text
    assert (big.json()["position"], ann.json()["position"]) == (1, 2) and ann.json()["status"] == "waiting"
    again = await join(client, event_id, "wl_ann", 2)
    assert again.status_code == 200 and again.json()["waitlistId"] == ann.json()["waitlistId"]

    assert (await client.delete(f"/bookings/{holds[0]['bookingId']}")).status_code == 200
    grabbed = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1"], "userId": "crowd"})
    assert grabbed.status_code == 409  # the released seats were offered in the release's own transaction
    offered = await wait_for(lambda: entry_once(client, ann.json()["waitlistId"], "offered"))
    booking = (await client.get(f"/bookings/{offered['bookingId']}")).json()
    assert booking["status"] == "pending" and booking["userId"] == "wl_ann" and booking["seatIds"] == ["A1", "A2"]
    assert booking["amount"] == 60.0
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats == {"A1": "RESERVED", "A2": "RESERVED", "A3": "RESERVED", "A4": "RESERVED"}
    first = (await client.get(f"/waitlist/{big.json()['waitlistId']}")).json()
    assert first["status"] == "waiting" and first["position"] == 1

    async def offer_mail() -> list[dict]:
        messages = (await client.get(f"{platform.runtime['mailbox_url']}/messages")).json()
        return [m for m in messages if offered["bookingId"] in (m.get("text") or "")
                and "wl_ann@example.com" in m["to"]]
    [mail] = await wait_for(offer_mail)
    assert "held for you" in mail["subject"]

    # The offer is paid like any hold.
    paid = await client.put(f"/bookings/{offered['bookingId']}/confirm",
                            json={"paymentId": "pay_wl", "amount": 60.0, "card": "4242424242424242"})
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed"


async def test_leaving_and_declining_an_offer_pass_the_seats_on(client: httpx.AsyncClient) -> None:
    event_id, holds = await sold_out_event(client)
    first, second, third = [(await join(client, event_id, user, 2)).json() for user in ("wl_1", "wl_2", "wl_3")]
    left = await client.delete(f"/waitlist/{first['waitlistId']}")
    assert left.status_code == 200 and left.json()["status"] == "left"
    assert (await client.delete(f"/waitlist/{first['waitlistId']}")).json()["status"] == "left"  # once is enough
    assert (await client.get(f"/waitlist/{third['waitlistId']}")).json()["position"] == 2

    assert (await client.delete(f"/bookings/{holds[1]['bookingId']}")).status_code == 200
    offered = await wait_for(lambda: entry_once(client, second["waitlistId"], "offered"))
    declined = await client.delete(f"/waitlist/{second['waitlistId']}")
    assert declined.status_code == 200 and declined.json()["status"] == "left"
    passed_on = await wait_for(lambda: entry_once(client, third["waitlistId"], "offered"))
    assert passed_on["bookingId"] != offered["bookingId"]
    assert (await client.get(f"/bookings/{offered['bookingId']}")).json()["status"] == "cancelled"
    assert (await client.get(f"/bookings/{passed_on['bookingId']}")).json()["seatIds"] == ["A3", "A4"]


async def test_single_seats_released_one_by_one_are_offered_together_before_a_stranger_gets_them(
        client: httpx.AsyncClient) -> None:
    body = small_hall()
    assert (await client.post("/events", json=body)).status_code == 201
    event_id = body["eventId"]
    holds = {}
    for seats, user in ((["A1"], "single_1"), (["A2"], "single_2"), (["A3", "A4"], "pair_owner")):
        held = await client.post("/bookings", json={"eventId": event_id, "seatIds": seats, "userId": user})
        assert held.status_code == 201, held.text
        holds[seats[0]] = held.json()["bookingId"]
    pair = await join(client, event_id, "wl_pair", 2)
    assert pair.status_code == 201 and pair.json()["position"] == 1
    waitlist_id = pair.json()["waitlistId"]

    assert (await client.delete(f"/bookings/{holds['A1']}")).status_code == 200
    alone = (await client.get(f"/waitlist/{waitlist_id}")).json()
    assert alone["status"] == "waiting"  # one seat does not make a pair
    assert (await client.delete(f"/bookings/{holds['A2']}")).status_code == 200
    offered = await wait_for(lambda: entry_once(client, waitlist_id, "offered"))
    assert offered, "the pair was not offered A1 and A2"
    booking = (await client.get(f"/bookings/{offered['bookingId']}")).json()
    assert booking["status"] == "pending" and booking["userId"] == "wl_pair" and booking["seatIds"] == ["A1", "A2"]
    stranger = await client.post("/bookings", json={"eventId": event_id, "quantity": 2, "userId": "stranger"})
    assert stranger.status_code == 409 and stranger.json()["code"] == "sold_out", stranger.text
    seats = {s["seatId"]: s["status"] for s in (await client.get(f"/events/{event_id}/seats")).json()}
    assert seats == {"A1": "RESERVED", "A2": "RESERVED", "A3": "RESERVED", "A4": "RESERVED"}


async def test_an_offer_that_runs_out_goes_to_the_next_in_line(short_hold_platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=short_hold_platform.base_url, timeout=30) as client:
        body = small_hall(seats=2)  # no seat free besides those released: one offer at a time
        assert (await client.post("/events", json=body)).status_code == 201
        event_id = body["eventId"]
        # In line before the event sells out; the hold that sells it out runs out in 2 s, unpaid.
        first, second = [(await join(client, event_id, user, 2)).json() for user in ("slow_1", "slow_2")]
        held = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"], "userId": "x"})
        assert held.status_code == 201
        offer = await wait_for(lambda: entry_once(client, first["waitlistId"], "offered"))
        assert (await client.get(f"/waitlist/{second['waitlistId']}")).json()["status"] == "waiting"
        # Nobody pays: the offer runs out, the next in line gets the seats, and then they are free again.
        await wait_for(lambda: entry_once(client, first["waitlistId"], "expired"))
        passed_on = await wait_for(lambda: entry_once(client, second["waitlistId"], "offered"))
        assert passed_on["bookingId"] != offer["bookingId"]
        await wait_for(lambda: entry_once(client, second["waitlistId"], "expired"))

        async def all_free() -> bool:
            seats = (await client.get(f"/events/{event_id}/seats")).json()
            return all(s["status"] == "AVAILABLE" for s in seats)
        assert await wait_for(all_free)
        assert (await client.get(f"/bookings/{offer['bookingId']}")).json()["status"] == "expired"


@pytest.mark.parametrize(("path_body", "status", "code"), [
    (("taylor_swift_concert", {"quantity": 0, "userId": "u"}), 422, "validation_error"),
    (("taylor_swift_concert", {"quantity": 11, "userId": "u"}), 422, "too_many_seats"),
    (("taylor_swift_concert", {"quantity": 2}), 422, "validation_error"),
    (("taylor_swift_concert", {"quantity": 2, "userId": "u", "extra": 1}), 422, "validation_error"),
    (("no_such_event", {"quantity": 2, "userId": "u"}), 404, "event_not_found"),
])
async def test_bad_joins_are_refused(client: httpx.AsyncClient, path_body: tuple[str, dict], status: int,
                                     code: str) -> None:
    event_id, body = path_body
    answer = await client.post(f"/events/{event_id}/waitlist", json=body)
    assert answer.status_code == status and answer.json()["code"] == code, answer.text


async def test_an_entry_for_more_seats_than_the_event_holds_together_is_refused(client: httpx.AsyncClient) -> None:
    """Found from outside: an entry for five seats of a four-seat event was made, and could never be offered any."""
    body = small_hall(seats=4)
    assert (await client.post("/events", json=body)).status_code == 201
    event_id = body["eventId"]
    refused = await join(client, event_id, "wl_five", 5)
    assert refused.status_code == 422 and refused.json()["code"] == "too_many_seats", refused.text
    assert "at most 4 seats together" in refused.json()["error"]
    # Nothing was stored: the buyer's next join is a new entry, first in line.
    four = await join(client, event_id, "wl_five", 4)
    assert four.status_code == 201 and four.json()["position"] == 1 and four.json()["quantity"] == 4, four.text


async def test_unknown_and_malformed_entries(client: httpx.AsyncClient) -> None:
    assert (await client.get("/waitlist/not-a-uuid")).status_code == 422
    unknown = await client.get(f"/waitlist/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "waitlist_not_found"
    assert (await client.delete(f"/waitlist/{uuid.uuid4()}")).status_code == 404


async def test_joins_answered_while_the_booking_service_is_down_all_come_to_an_outcome(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    event_id, _ = await sold_out_event(client)
    waiting = (await join(client, event_id, "wl_down_1", 2)).json()
    called_off = small_hall()
    assert (await client.post("/events", json=called_off)).status_code == 201
    assert (await client.post(f"/events/{called_off['eventId']}/cancel")).status_code == 200
    calling_off = small_hall()
    assert (await client.post("/events", json=calling_off)).status_code == 201
    assert platform.cli("stop", "booking").returncode == 0
    try:
        async def reported_down() -> bool:
            return (await client.get("/health")).json()["services"]["booking"]["status"] == "down"
        assert await wait_for(reported_down, timeout=15)
        # Waiting already: queued too (a leave of that entry could be queued ahead of it), answered with the entry.
        again = await join(client, event_id, "wl_down_1", 2)
        assert again.status_code == 202, again.text
        # A called-off event stays so: answered at once.
        closed = await join(client, called_off["eventId"], "wl_down_2", 1)
        assert closed.status_code == 409 and closed.json()["code"] == "event_cancelled", closed.text
        # New: queued; its status URL says so until the booking service is back and has decided it.
        queued = await join(client, event_id, "wl_down_3", 2)
        assert queued.status_code == 202, queued.text
        status_url = queued.json()["statusUrl"]
        assert status_url == f"/booking-requests/{queued.json()['requestId']}"
        still = await client.get(status_url)
        assert still.status_code == 200 and still.json()["status"] == "queued", still.text
        # The event is called off while a join for it waits: the cancel and the join are on two topics, so the
        # booking service decides them in either order.
        assert (await client.post(f"/events/{calling_off['eventId']}/cancel")).status_code == 202
        refused_later = await join(client, calling_off["eventId"], "wl_down_4", 1)
        assert refused_later.status_code == 202, refused_later.text
    finally:
        assert platform.cli("start", "booking").returncode == 0

    async def processed(url: str) -> dict | None:
        answer = (await client.get(url)).json()
        return answer if answer["status"] == "processed" else None
    same = await wait_for(lambda: processed(again.json()["statusUrl"]), timeout=30)
    assert (same["httpStatus"], same["result"]["waitlistId"]) == (200, waiting["waitlistId"]), same
    assert same["result"]["status"] == "waiting" and same["result"]["position"] == 1
    made = await wait_for(lambda: processed(status_url), timeout=30)
    assert (made["success"], made["httpStatus"]) == (True, 201), made
    entry = (await client.get(f"/waitlist/{made['result']['waitlistId']}")).json()
    assert entry["status"] == "waiting"
    assert entry["userId"] == "wl_down_3" and entry["position"] == 2
    async def ended(url: str) -> dict | None:
        answer = await processed(url)
        return answer if answer and (answer["httpStatus"] == 409 or answer["result"]["status"] != "waiting") \
            else None
    outcome = await wait_for(lambda: ended(refused_later.json()["statusUrl"]), timeout=30)
    if outcome["httpStatus"] == 409:  # decided after the cancel: refused, and no entry made
        assert (outcome["success"], outcome["result"]["code"]) == (False, "event_cancelled"), outcome
    else:  # decided before it: the entry was made, and the cancel ended it
        assert (outcome["httpStatus"], outcome["result"]["status"]) == (201, "expired"), outcome
