"""POST /events: an organiser creates an event with its seat map; the catalog service makes it bookable."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.platforms import RunningPlatform


def new_event(**overrides: object) -> dict:
    return {
        "eventId": f"gala_{uuid.uuid4().hex[:8]}", "name": "Summer Gala",
        "venue": {"name": "Town Hall", "city": "Bath"},
        "startsAt": "2027-08-01T19:30:00Z", "currency": "EUR",
        "priceCategories": [{"categoryId": "front", "name": "Front", "price": 80.0},
                            {"categoryId": "back", "name": "Back", "price": 40.5}],
        "rows": [{"row": "A", "seats": 10, "section": "Stalls", "categoryId": "front"},
                 {"row": "B", "seats": 12, "section": "Stalls", "categoryId": "back"}],
        **overrides,
    }


@pytest.fixture
def client(platform: RunningPlatform) -> httpx.Client:
    with httpx.Client(base_url=platform.base_url, timeout=30) as c:
        yield c


def test_a_created_event_is_listed_and_bookable(client: httpx.Client) -> None:
    body = new_event()
    created = client.post("/events", json=body)

    assert created.status_code == 201, created.text
    event = created.json()
    assert event["eventId"] == body["eventId"] and event["totalSeats"] == 22 and event["available"] == 22
    assert {c["categoryId"]: c["price"] for c in event["priceCategories"]} == {"front": 80.0, "back": 40.5}
    seats = client.get(f"/events/{body['eventId']}/seats").json()
    assert [s["seatId"] for s in seats[:2]] == ["A1", "A2"] and seats[-1]["seatId"] == "B12"
    assert {s["status"] for s in seats} == {"AVAILABLE"}
    held = client.post("/bookings", json={"eventId": body["eventId"], "seatIds": ["B3"], "userId": "organiser_fan"})
    assert held.status_code == 201 and held.json()["amount"] == 40.5 and held.json()["currency"] == "EUR"
    assert client.post("/events", json=body).status_code == 409


def test_an_explicit_seat_list(client: httpx.Client) -> None:
    body = new_event(rows=[], seats=[
        {"seatId": "BOX1", "row": "X", "number": 1, "section": "Boxes", "categoryId": "front"},
        {"seatId": "BOX2", "row": "X", "number": 2, "section": "Boxes", "categoryId": "front"},
    ])
    created = client.post("/events", json=body)
    assert created.status_code == 201, created.text
    assert [s["seatId"] for s in client.get(f"/events/{body['eventId']}/seats").json()] == ["BOX1", "BOX2"]


@pytest.mark.parametrize("overrides", [
    {"rows": [], "seats": []},
    {"seats": [{"seatId": "Z1", "row": "Z", "number": 1, "categoryId": "front"}]},
    {"rows": [{"row": "A", "seats": 5, "categoryId": "nope"}]},
    {"rows": [{"row": "A", "seats": 5, "categoryId": "front"}, {"row": "A", "seats": 5, "categoryId": "back"}]},
    {"startsAt": "next tuesday"},
    {"startsAt": "2027-08-01T19:30:00"},
    {"startsAt": "2020-08-01T19:30:00Z"},  # begun already: nothing would be sold for it
    {"priceCategories": []},
    {"priceCategories": [{"categoryId": "front", "name": "F", "price": -1}]},
    {"priceCategories": [{"categoryId": "front", "name": "F", "price": 1.234}]},
    {"eventId": "bad id"},
    {"currency": "euro"},
    {"unexpected": 1},
    {"name": "Summer\u2028Gala"},  # one line: it becomes an email's Subject
    {"venue": {"name": "Town Hall", "city": "Bath\x85"}},
    {"rows": [], "seats": [{"seatId": "Z1", "row": "Z", "number": 1, "categoryId": "front"},
                           {"seatId": "Z1b", "row": "Z", "number": 1, "categoryId": "front"}]},  # one place twice
    {"holdSeconds": 5}, {"holdSeconds": 86_401}, {"holdSeconds": "ten"}, {"holdSeconds": 10.5},
])
def test_bad_events_are_refused_and_nothing_is_created(client: httpx.Client, overrides: dict) -> None:
    body = new_event(**overrides)
    answer = client.post("/events", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["success"] is False and answer.json()["code"] == "validation_error"
    if isinstance(body.get("eventId"), str) and " " not in body["eventId"]:
        assert client.get(f"/events/{body['eventId']}").status_code == 404


def test_a_sale_that_would_open_after_the_event_starts_is_refused_and_nothing_changes(client: httpx.Client) -> None:
    """Found from outside: an event starting in 30 days whose sale opened in 60 was created."""
    now = datetime.now(UTC)
    starts_at = (now + timedelta(days=30)).replace(microsecond=0)
    for late in (now + timedelta(days=60), starts_at):
        body = new_event(startsAt=starts_at.isoformat(), onSale={"opensAt": late.isoformat(), "waitingRoom": False})
        created = client.post("/events", json=body)
        assert created.status_code == 422 and created.json()["code"] == "validation_error", created.text
        assert created.json()["error"].startswith("onSale.opensAt: the sale must open before the event starts")
        assert client.get(f"/events/{body['eventId']}").status_code == 404

    body = new_event(startsAt=starts_at.isoformat(),
                     onSale={"opensAt": (now + timedelta(days=10)).isoformat(), "waitingRoom": False})
    created = client.post("/events", json=body)
    assert created.status_code == 201, created.text
    on_sale = created.json()["onSale"]
    for late in (now + timedelta(days=60), starts_at):
        moved = client.put(f"/events/{body['eventId']}/onsale", json={"opensAt": late.isoformat()})
        assert moved.status_code == 422 and moved.json()["code"] == "validation_error", moved.text
        assert moved.json()["error"].startswith("opensAt: the sale must open before the event starts"), moved.text
    assert client.get(f"/events/{body['eventId']}").json()["onSale"] == on_sale
    earlier = (now + timedelta(days=5)).replace(microsecond=0)
    moved = client.put(f"/events/{body['eventId']}/onsale", json={"opensAt": earlier.isoformat()})
    assert moved.status_code == 200, moved.text
    assert client.get(f"/events/{body['eventId']}").json()["onSale"]["opensAt"] == moved.json()["opensAt"]


def test_the_event_counts_agree_with_the_seat_map_right_after_each_answer(client: httpx.Client) -> None:
    """The counts come from the transaction that moved the seats: read right after a 201 or a cancel's 200,
    they already say what the seat map says (no second of a released seat still counted as reserved)."""
    body = new_event()
    assert client.post("/events", json=body).status_code == 201
    event_id = body["eventId"]

    def counts() -> tuple[int, int, int]:
        event = client.get(f"/events/{event_id}").json()
        return event["available"], event["reserved"], event["booked"]

    def seat_map() -> tuple[int, int, int]:
        statuses = [s["status"] for s in client.get(f"/events/{event_id}/seats").json()]
        return statuses.count("AVAILABLE"), statuses.count("RESERVED"), statuses.count("BOOKED")

    for _ in range(5):
        held = client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"], "userId": "counts_fan"})
        assert held.status_code == 201, held.text
        assert counts() == seat_map() == (20, 2, 0)
        assert client.delete(f"/bookings/{held.json()['bookingId']}").status_code == 200
        assert counts() == seat_map() == (22, 0, 0)


async def test_of_concurrent_creations_of_one_new_id_only_the_one_that_created_it_gets_201(
        platform: RunningPlatform) -> None:
    """Ten organisers send different events under one new id at once: the event stored is one of them, its
    sender alone gets 201 with it, and the other nine get 409 event_exists (not 201 with someone else's event)."""
    event_id = f"dup_{uuid.uuid4().hex[:8]}"
    bodies = [new_event(eventId=event_id, name=f"Version {i}",
                        rows=[{"row": "A", "seats": i + 1, "categoryId": "front"}]) for i in range(10)]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as c:
        answers = await asyncio.gather(*(c.post("/events", json=body) for body in bodies))
        stored = (await c.get(f"/events/{event_id}")).json()

    assert sorted(a.status_code for a in answers) == [201] + [409] * 9, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"event_exists"}
    (creator,) = [i for i, a in enumerate(answers) if a.status_code == 201]
    assert answers[creator].json()["name"] == stored["name"] == f"Version {creator}"
    assert stored["totalSeats"] == creator + 1


def test_an_event_with_a_hold_time_of_its_own_releases_its_holds_then(client: httpx.Client) -> None:
    """holdSeconds: the organiser's checkout time for this event; the platform's BOXOFFICE_HOLD_SECONDS elsewhere."""
    body = new_event(holdSeconds=10)
    created = client.post("/events", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["holdSeconds"] == 10
    assert client.get("/events/taylor_swift_concert").json()["holdSeconds"] is None
    held = client.post("/bookings", json={"eventId": body["eventId"], "seatIds": ["A4"], "userId": "quick_fan"})
    assert held.status_code == 201, held.text
    asked_at = datetime.now(UTC)
    expires_at = datetime.fromisoformat(held.json()["expiresAt"])
    assert timedelta(seconds=8) < expires_at - asked_at <= timedelta(seconds=10)
    booking_id = held.json()["bookingId"]
    deadline = time.monotonic() + 40
    while client.get(f"/bookings/{booking_id}").json()["status"] != "expired":
        assert time.monotonic() < deadline, client.get(f"/bookings/{booking_id}").text
        time.sleep(0.2)
    seats = {s["seatId"]: s["status"] for s in client.get(f"/events/{body['eventId']}/seats").json()}
    assert seats["A4"] == "AVAILABLE"
    assert datetime.now(UTC) >= expires_at
