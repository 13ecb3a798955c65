"""Every bad input gets its status and a JSON error body, and changes nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.api_client import seat_statuses
from tests.platforms import RunningPlatform

EVENT = "taylor_swift_concert"
GOOD = {"eventId": EVENT, "seatIds": ["S1"], "userId": "user_bad"}

POST_CASES = [
    pytest.param({**GOOD, "extra": True}, 422, "validation_error", id="unknown-field"),
    pytest.param({**GOOD, "seatIds": []}, 422, "validation_error", id="empty-seats"),
    pytest.param({**GOOD, "seatIds": ["S1", "S1"]}, 422, "duplicate_seats", id="duplicate-seats"),
    pytest.param({**GOOD, "seatIds": [f"S{i}" for i in range(1, 12)]}, 422, "too_many_seats", id="over-limit"),
    pytest.param({**GOOD, "seatIds": "S1"}, 422, "validation_error", id="seats-not-a-list"),
    pytest.param({**GOOD, "seatIds": [1]}, 422, "validation_error", id="seat-not-a-string"),
    pytest.param({**GOOD, "seatIds": ["S 1; drop"]}, 422, "validation_error", id="seat-malformed"),
    pytest.param({"eventId": EVENT, "seatIds": ["S1"]}, 422, "validation_error", id="missing-user"),
    pytest.param({**GOOD, "userId": ""}, 422, "validation_error", id="empty-user"),
    pytest.param({**GOOD, "eventId": "no_such_event"}, 404, "event_not_found", id="unknown-event"),
    pytest.param({**GOOD, "seatIds": ["S1", "ZZ99"]}, 404, "seat_not_found", id="unknown-seat"),
    pytest.param([GOOD], 422, "validation_error", id="array-body"),
]


@pytest.fixture
def client(platform: RunningPlatform) -> httpx.Client:
    with httpx.Client(base_url=platform.base_url, timeout=30) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("body, status, code", POST_CASES)
def test_bad_booking_requests(client: httpx.Client, body: object, status: int, code: str) -> None:
    assert_error(client.post("/bookings", json=body), status, code)


@pytest.mark.parametrize("raw, content_type, status, code", [
    (b"{not json", "application/json", 422, "validation_error"), (b"", "application/json", 422, "validation_error"),
    (b"eventId=x", "text/plain", 415, "unsupported_media_type"),
    (b"eventId=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type")])
def test_unparseable_bodies(client: httpx.Client, raw: bytes, content_type: str, status: int, code: str) -> None:
    assert_error(client.post("/bookings", content=raw, headers={"Content-Type": content_type}), status, code)


def test_a_body_without_a_content_type_is_read_as_json(client: httpx.Client) -> None:
    """No Content-Type at all: the body is taken as JSON (a made-up seat is looked up, not a 422 about the body)."""
    for path, body in (("/bookings", {**GOOD, "seatIds": ["NOPE1"]}),
                       (f"/events/{EVENT}/waitlist", {"quantity": 99, "userId": "user_bad"})):
        answer = client.post(path, content=json.dumps(body).encode())  # httpx adds no Content-Type to bytes
        assert answer.status_code in (404, 422), answer.text
        assert answer.json()["code"] in ("seat_not_found", "too_many_seats"), answer.text
    assert_error(client.post("/bookings", content=b"{not json"), 422, "validation_error")
    empty = client.post("/bookings", content=json.dumps({**GOOD, "seatIds": ["NOPE1"]}).encode(),
                        headers={"Content-Type": ""})  # an empty one counts as none
    assert empty.status_code == 404 and empty.json()["code"] == "seat_not_found", empty.text


def test_oversized_body(client: httpx.Client) -> None:
    assert_error(client.post("/bookings", content=b"x" * 100_000, headers={"Content-Type": "application/json"}),
                 413, "payload_too_large")


def test_oversized_chunked_body(client: httpx.Client) -> None:
    def chunks():  # no Content-Length: the body arrives chunked
        for _ in range(20):
            yield b"x" * 8192

    assert_error(client.post("/bookings", content=chunks(), headers={"Content-Type": "application/json"}),
                 413, "payload_too_large")


def test_small_chunked_body_is_read(client: httpx.Client) -> None:
    body = json.dumps({**GOOD, "seatIds": ["ZZ98"]}).encode()
    answer = client.post("/bookings", content=iter([body[:10], body[10:]]),
                         headers={"Content-Type": "application/json"})
    assert_error(answer, 404, "seat_not_found")


def test_security_headers(client: httpx.Client) -> None:
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    api = client.get("/events")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and api.headers["X-Frame-Options"] == "DENY"
    # Only same-origin pages may call the API unless BOXOFFICE_CORS_ORIGINS says otherwise.
    preflight = client.options("/bookings", headers={"Origin": "https://elsewhere.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize("path, status, code", [
    ("/events/no_such_event", 404, "event_not_found"),
    ("/events/no_such_event/seats", 404, "event_not_found"),
    ("/events/bad%20id!", 422, "invalid_id"),
    ("/bookings/not-a-uuid", 422, "invalid_id"),
    ("/bookings/00000000-0000-4000-8000-000000000000", 404, "booking_not_found"),
    ("/booking-requests/whatever", 422, "invalid_id"),
    ("/booking-requests/req_" + "0" * 48, 404, "request_not_found"),
    ("/no/such/route", 404, "not_found"),
])
def test_bad_reads(client: httpx.Client, path: str, status: int, code: str) -> None:
    assert_error(client.get(path), status, code)


def test_wrong_method(client: httpx.Client) -> None:
    assert_error(client.delete("/events"), 405, "method_not_allowed")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "2100-01-01T00:00:00Z",
                                    "2030-01-01T19:00:00\x00Z", "2030-01-01\u00e919:00:00Z"])
def test_an_opening_or_a_start_outside_the_platforms_years_or_not_plain_iso_is_refused(
        client: httpx.Client, moment: str) -> None:
    """Once, an on-sale opening at 0001-01-01 was taken: the waitingroom service then stopped at every start and
    the event's page answered 500. Python 3.11 reads the last two as 19:00 UTC."""
    before = client.get("/events/eras_tour_onsale").json()["onSale"]
    moved = client.put("/events/eras_tour_onsale/onsale", json={
        "opensAt": moment, "waitingRoom": True, "admitPerMinute": 600, "admissionMinutes": 10})
    assert_error(moved, 422, "validation_error")
    assert "opensAt" in moved.json()["error"]
    created = client.post("/events", json={
        "eventId": "far_off_show", "name": "Far Off", "venue": {"name": "Hall", "city": "Bath"},
        "startsAt": moment, "currency": "USD",
        "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 50.0}],
        "rows": [{"row": "A", "seats": 4, "section": "Stalls", "categoryId": "std"}]})
    assert_error(created, 422, "validation_error")
    assert "startsAt" in created.json()["error"]
    after = client.get("/events/eras_tour_onsale")
    assert after.status_code == 200 and after.json()["onSale"] == before
    assert client.get("/events/far_off_show").status_code == 404


async def test_bad_input_changed_nothing(platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as client:
        statuses = await seat_statuses(client, EVENT)
    assert all(statuses[f"S{i}"] == "AVAILABLE" for i in range(1, 31))


@pytest.mark.parametrize("raw", [b"garbage", b'{"notAField": true, "eventId": "other"', b'{"bogus": 1}', b"[]"])
def test_a_call_that_takes_no_body_refuses_one_and_changes_nothing(client: httpx.Client, raw: bytes) -> None:
    held = client.post("/bookings", json={"eventId": EVENT, "seatIds": ["S20"], "userId": "user_no_body"})
    assert held.status_code == 201, held.text
    booking_id = held.json()["bookingId"]
    try:
        for method, path in (("DELETE", f"/bookings/{booking_id}"), ("POST", f"/bookings/{booking_id}/cancel"),
                             ("POST", "/events/no_body_event/cancel")):
            answer = client.request(method, path, content=raw, headers={"Content-Type": "application/json"})
            assert_error(answer, 422, "validation_error")
        assert client.get(f"/bookings/{booking_id}").json()["status"] == "pending"
    finally:
        # Nothing, or an empty object, is taken as no body.
        assert client.request("DELETE", f"/bookings/{booking_id}", content=b"{}",
                              headers={"Content-Type": "application/json"}).json()["status"] == "cancelled"
