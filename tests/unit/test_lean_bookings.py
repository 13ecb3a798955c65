"""POST /bookings and PUT /bookings/{id}/confirm answered by the lean layer (entrypoints/gateway/lean_bookings.py)
and by FastAPI's routes give the same answers: the same requests, in the same order, go to two apps over identical
fake gateways, one built without the layer, and their statuses, bodies, headers and request metrics are compared."""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.testclient import TestClient

from boxoffice import metrics, views
from boxoffice.adapters.accounts import TokenSigner, TokenStanding
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.config import Settings
from boxoffice.domain.accounts import Principal, Role
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.lean_bookings import LeanBookings
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.grouping import Grouped
from boxoffice.messages import (
    BOOKING_CANCELLED,
    BOOKING_COMMAND_REJECTED,
    BOOKING_CONFIRMATION_REQUESTED,
    BOOKING_CONFIRMED,
    SEAT_RESERVATION_FAILED,
    SEAT_RESERVED,
    Message,
    decode,
)

EVENT = "gala"
SEATS = frozenset(f"A{n}" for n in range(1, 21))
KEY = "ab" * 16


class Seats:
    async def seats_of(self, event_id: str) -> frozenset[str] | None:
        if event_id == "boom":
            raise RuntimeError("a bug")
        if event_id == "dbdown":
            raise asyncpg.PostgresConnectionError("connection lost")
        return SEATS if event_id == EVENT else None


class Pool:
    """The decided requests, as views.request_outcome reads them."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    async def fetchrow(self, query: str, request_id: str) -> dict[str, Any] | None:
        return self.outcomes.get(request_id)


@dataclass
class Replies:
    waiting: dict[str, asyncio.Future[Message]] = field(default_factory=dict)
    unanswered: UnansweredRequests = field(default_factory=lambda: UnansweredRequests(0.0))
    bodies: dict[str, str] = field(default_factory=dict)  # Idempotency-Key requests until answered

    def expect(self, request_id: str) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        return future

    def forget(self, request_id: str, future: asyncio.Future[Message]) -> None:
        self.waiting.pop(request_id, None)

    def claim(self, request_id: str, body_hash: str) -> bool:
        return self.bodies.setdefault(request_id, body_hash) == body_hash

    def release(self, request_id: str) -> None:
        self.bodies.pop(request_id, None)


@dataclass
class Publisher:
    """The booking service, deciding at once: a seat is held once; booking ids count up."""

    pool: Pool
    replies: Replies
    taken: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    async def publish(self, topic: str, command: Message) -> None:
        data, request_id = command.data, str(command.request_id)
        seats = data.get("seatIds") or [f"A{20 - n}" for n in range(data["quantity"])]
        if taken := [s for s in seats if s in self.taken]:
            outcome = Message(SEAT_RESERVATION_FAILED, command.event_id, {
                "code": "seat_unavailable", "reason": f"Seat {taken[0]} is taken", "seatIds": taken}, request_id)
        else:
            self.taken.update(seats)
            outcome = Message(SEAT_RESERVED, command.event_id, {
                "bookingId": f"00000000-0000-0000-0000-{next(self.ids):012d}", "userId": data["userId"],
                "seatIds": seats, "amount": 10.0 * len(seats), "currency": "USD",
                "expiresAt": "2030-01-01T00:00:00Z"}, request_id)
        self.pool.outcomes[request_id] = {"outcome": outcome.encode(), "body_hash": data["bodyHash"]}
        self.replies.bodies.pop(request_id, None)
        self.replies.waiting[request_id].set_result(outcome)


class Accounts:
    def __init__(self, verified: bool) -> None:
        self.verified = verified

    async def token_standing(self, token: Any) -> TokenStanding:
        return TokenStanding(0, False, self.verified)


class Gateway:
    """What create_booking uses of the gateway; the rest of boxoffice.entrypoints.gateway.state.Gateway is not."""

    def __init__(self, settings: Settings, verified: bool = True) -> None:
        self.settings = settings
        self.pool, self.replies = Pool(), Replies()
        self.publisher = Publisher(self.pool, self.replies)
        self.request_ids = RequestIds(KEY)
        self.seats = Seats()
        self.access = Access(settings, Accounts(verified), TokenSigner("k" * 32, 3600))
        self.health = self
        self.refreshed_at, self.outage = 1.0, self
        self.ongoing = False
        self.queue = self

    def is_up(self, service: str) -> bool:
        return True

    async def room(self, event_id: str) -> None:
        return None


def app_for(settings: Settings, lean: bool, verified: bool = True) -> Any:
    app = create_app(settings)
    if not lean:
        app.lean = False
    app.state.gateway = Gateway(settings, verified)
    return app


def client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing real is started


def token(user_id: str) -> str:
    return "Bearer " + TokenSigner("k" * 32, 3600).issue(Principal(user_id, f"{user_id}@x.test", Role.BUYER))


def body(**fields: Any) -> bytes:
    return orjson.dumps({"eventId": EVENT, "userId": "fan_1", **fields})


JSON = {"Content-Type": "application/json"}
# (body, headers, query) in order: later requests find what earlier ones held or stored.
OPEN_DEMO: list[tuple[bytes, dict[str, str], str]] = [
    (body(seatIds=["A1"]), JSON, ""),
    (body(seatIds=["A1", "A2"], userId="fan_2"), JSON, ""),  # A1 is taken: 409
    (body(quantity=2), JSON, ""),
    (body(seatIds=["A3"], eventId="nope"), JSON, ""),  # unknown event: 404
    (body(seatIds=["A3", "Z9", "Z8"]), JSON, ""),  # unknown seats: 404
    (b'{"eventId": "gala", "seatIds": ["A3"', JSON, ""),  # not JSON
    (b"", JSON, ""),
    (b"[]", JSON, ""),
    (orjson.dumps({"seatIds": ["A3"], "userId": "fan_1"}), JSON, ""),  # no eventId
    (body(seatIds="A3"), JSON, ""),
    (body(quantity="2"), JSON, ""),
    (body(quantity=2.0), JSON, ""),
    (body(quantity=True), JSON, ""),
    (body(seatIds=["A3"], surprise=1), JSON, ""),
    (body(seatIds=["A3"], email="not an address"), JSON, ""),
    (body(seatIds=["A3"], quantity=1), JSON, ""),  # both: the route's 422
    (body(seatIds=[f"A{n}" for n in range(1, 12)]), JSON, ""),  # too many
    (body(seatIds=["A3", "A3"]), JSON, ""),  # duplicates
    (orjson.dumps({"eventId": EVENT, "seatIds": ["A3"]}), JSON, ""),  # no userId in the demo: the route's 422
    (b'{"eventId": "gala", "eventId": "nope", "seatIds": ["A3"], "userId": "fan_1"}', JSON, ""),  # last key wins
    (body(seatIds=["A4"], section="x" * 70_000), JSON, ""),  # over the body limit: 413
    (body(seatIds=["A5"]), {**JSON, "Idempotency-Key": "k-1"}, ""),
    (body(seatIds=["A6"]), {**JSON, "Idempotency-Key": "k-1"}, ""),  # reused with another body: 422
    (body(seatIds=["A5"]), {**JSON, "Idempotency-Key": "k-1"}, ""),  # the same again: the stored answer
    (body(seatIds=["A7"]), {**JSON, "Idempotency-Key": ""}, ""),
    (body(seatIds=["A7"]), {**JSON, "Idempotency-Key": "   "}, ""),
    (body(seatIds=["A7"]), {**JSON, "Idempotency-Key": "k" * 256}, ""),
    (body(seatIds=["A7"]), {**JSON, "Idempotency-Key": "k" * 255}, ""),
    (body(seatIds=["A8"]), {**JSON, "X-Queue-Access": "q" * 2049}, ""),
    (body(seatIds=["A8"]), {**JSON, "X-Queue-Access": "q" * 2048}, ""),  # no waiting room: ignored
    (body(seatIds=["A9"]), {"Content-Type": "application/json; charset=utf-8"}, ""),
    (body(seatIds=["A10"]), {"Content-Type": "text/plain"}, ""),
    (body(seatIds=["A10"]), {"Content-Type": "application/vnd.boxoffice+json"}, ""),
    (body(seatIds=["A11"]), JSON, "?x=1"),
    (body(seatIds=["A12"], eventId="dbdown"), JSON, ""),  # the app's handler: 503
    (body(seatIds=["A12"], eventId="boom"), JSON, ""),  # the app's 500
    (body(seatIds=["A12"]), {**JSON, "Authorization": "Bearer not-a-token"}, ""),  # ignored in the demo
    # Where Python's json and pydantic's parser could disagree: FastAPI must have the last word.
    (b'{"eventId": "gala", "quantity": 2, "section": "a\\ud800", "userId": "fan_1"}', JSON, ""),
    (body(seatIds=["A13"]).decode().encode("utf-16"), JSON, ""),
    (b"\xef\xbb\xbf" + body(seatIds=["A14"]), JSON, ""),
    (body(seatIds=["A15"]) + b" x", JSON, ""),
    (b'{"eventId": "gala", "seatIds": ["A16"], "userId": "fan\xff"}', JSON, ""),
    (body(seatIds=["A17"], email="j\u00fcrgen@ex\u00e4mple.de", section=None), JSON, ""),
]


def with_auth(user: str, *extra: tuple[str, str]) -> dict[str, str]:
    return {**JSON, "Authorization": token(user), **dict(extra)}


ACCOUNTS: list[tuple[bytes, dict[str, str], str]] = [
    (body(seatIds=["A1"]), JSON, ""),  # no token: 401
    (b"{", JSON, ""),  # not JSON: 422 before the caller is asked for
    (orjson.dumps({"seatIds": ["A1"]}), JSON, ""),  # the caller first: 401
    (body(seatIds=["A1"]), {**JSON, "Authorization": "Bearer nonsense"}, ""),
    (body(seatIds=["A1"]), {**JSON, "Authorization": "Basic dXNlcjpwdw=="}, ""),
    (orjson.dumps({"eventId": EVENT, "seatIds": ["A1"]}), with_auth("fan_1"), ""),
    (orjson.dumps({"eventId": EVENT, "seatIds": ["A2"], "userId": "fan_2"}), with_auth("fan_1"), ""),  # 403
    *[(orjson.dumps({"eventId": EVENT, "seatIds": [f"A{n}"]}), with_auth("fan_3"), "") for n in range(3, 9)],
]


def answers(settings: Settings, requests: list[tuple[bytes, dict[str, str], str]], lean: bool,
            verified: bool = True) -> tuple[list[tuple[int, Any, dict[str, str]]], dict[tuple[str, ...], float]]:
    before = dict(metrics.HTTP_REQUESTS.values)
    app = app_for(settings, lean, verified)
    http = client(app)
    seen = []
    for content, headers, query in requests:
        answer = http.post(f"/bookings{query}", content=content, headers=headers)
        seen.append((answer.status_code, normalised(answer.json()), normalised_headers(answer.headers)))
    counted = {k: v - before.get(k, 0) for k, v in metrics.HTTP_REQUESTS.values.items() if v != before.get(k, 0)}
    if lean:  # both paths were taken, or the comparison compares FastAPI with itself
        layer = lean_layer(app)
        assert layer.answered and (layer.passed_on or len(requests) < 8), (layer.answered, layer.passed_on)
    return seen, counted


def normalised(value: Any) -> Any:
    """Request ids are random unless derived from an Idempotency-Key."""
    text = orjson.dumps(value).decode()
    return orjson.loads(re.sub(r"req_[0-9a-f]{48}", "req_…", text))


def normalised_headers(headers: Any) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k != "x-request-id"}
    if "server-timing" in kept:
        kept["server-timing"] = re.sub(r"dur=[0-9.]+", "dur=…", kept["server-timing"])
    return kept


@pytest.mark.parametrize(("settings", "requests", "verified"), [
    (Settings(), OPEN_DEMO, True),
    (Settings(auth="on", rate_limit_user_burst=4), ACCOUNTS, True),
    (Settings(auth="on", email_verification="on"), ACCOUNTS[:6], False),
], ids=["open demo", "accounts and rate limits", "unconfirmed address"])
def test_the_lean_path_answers_as_the_route_does(settings: Settings, requests: list[Any], verified: bool) -> None:
    lean, lean_counted = answers(settings, requests, lean=True, verified=verified)
    routed, routed_counted = answers(settings, requests, lean=False, verified=verified)
    for number, (one, other) in enumerate(zip(lean, routed, strict=True)):
        assert one == other, f"request {number}: {requests[number][0][:120]!r}"
    assert lean_counted == routed_counted  # labelled by the route's template, as by FastAPI's router


def test_the_sequences_cover_what_they_claim() -> None:
    """A guard on the comparisons above: the answers are the ones CONTRACT §3/§8 gives for these requests."""
    seen, _ = answers(Settings(), OPEN_DEMO, lean=True)
    codes = [(status, b.get("code")) for status, b, _ in seen]
    assert codes[:5] == [(201, None), (409, "seat_unavailable"), (201, None), (404, "event_not_found"),
                         (404, "seat_not_found")]
    assert codes[5][0] == codes[6][0] == 422
    assert seen[5][1]["error"].startswith("The request body is not valid JSON (at character ")
    assert codes[19] == (404, "event_not_found")
    assert codes[20] == (413, "payload_too_large")
    assert codes[21:24] == [(201, None), (422, "idempotency_key_reused"), (201, None)]
    assert seen[21][1] == seen[23][1]
    assert codes[24] == codes[25] == (422, "validation_error") and codes[26] == (422, "validation_error")
    assert codes[27][0] == 201 and codes[28] == (422, "validation_error") and codes[29][0] == 201
    assert codes[34] == (503, "database_unavailable") and seen[34][2]["retry-after"] == "2"
    assert codes[35] == (500, "internal_error")
    accounts, _ = answers(Settings(auth="on", rate_limit_user_burst=4), ACCOUNTS, lean=True)
    codes = [(status, b.get("code")) for status, b, _ in accounts]
    assert codes[0] == (401, "not_authenticated") and accounts[0][2]["www-authenticate"] == "Bearer"
    assert codes[1][0] == 422 and codes[2] == (401, "not_authenticated")
    assert codes[5][0] == 201 and codes[6] == (403, "user_mismatch")
    assert codes[-1] == (429, "rate_limited") and "retry-after" in accounts[-1][2]
    unconfirmed, _ = answers(Settings(auth="on", email_verification="on"), ACCOUNTS[:6], lean=True, verified=False)
    assert unconfirmed[5][0] == 403 and unconfirmed[5][1]["code"] == "email_not_verified"


def lean_layer(app: Any) -> LeanBookings:
    layer = app.middleware_stack
    while not isinstance(layer, LeanBookings):
        layer = layer.app
    return layer


def test_a_well_formed_hold_takes_the_lean_path_and_a_malformed_one_does_not() -> None:
    app = app_for(Settings(), lean=True)
    http = client(app)
    assert http.post("/bookings", content=body(seatIds=["A1"]), headers=JSON).status_code == 201
    layer = lean_layer(app)
    assert (layer.answered, layer.passed_on) == (1, 0)
    assert http.post("/bookings", content=body(seatIds=["A1"]), headers=JSON).status_code == 409
    assert (layer.answered, layer.passed_on) == (2, 0)
    assert http.post("/bookings", content=b'{"eventId": ', headers=JSON).status_code == 422
    assert http.post("/bookings", content=body(seatIds=[1]), headers=JSON).status_code == 422
    assert http.post("/bookings", content=body(seatIds=["A2"]), headers={**JSON, "X-Queue-Access": "q" * 2049}
                     ).status_code == 422
    assert http.post("/bookings?x=1", content=body(seatIds=["A2"]), headers=JSON).status_code == 201
    assert (layer.answered, layer.passed_on) == (2, 4)
    assert http.get("/bookings/00000000-0000-0000-0000-000000000000").status_code != 201
    assert (layer.answered, layer.passed_on) == (2, 4)  # other routes are not its business


def test_outside_the_middleware_it_answers_with_what_the_middleware_adds_and_leaves_it_what_is_its_own() -> None:
    """The layer sits outside all middleware: the security headers, the X-Request-ID and (through the CORS
    middleware's own `send`) the CORS headers are its to add, and a body over the limit or chunked is the
    middleware's to answer."""
    cors = Settings(cors_origins="https://tickets.example")
    apps = {lean: app_for(cors, lean) for lean in (True, False)}
    seen: dict[bool, list[tuple[int, dict[str, str]]]] = {True: [], False: []}
    for lean, app in apps.items():
        http = client(app)
        for n, (content, headers) in enumerate([
            (body(seatIds=["A1"]), {**JSON, "X-Request-ID": "caller-7"}),
            (body(seatIds=["A2"]), {**JSON, "Origin": "https://tickets.example"}),
            (body(seatIds=["A3"], email="x" * 70_000), JSON),
            (iter([body(seatIds=["A4"])]), JSON),  # an iterator: sent chunked
            (body(seatIds=["A5"]), {**JSON, "X-Request-ID": "not a sane id"}),
            (body(seatIds=["A6"]), {**JSON, "Origin": "https://evil.example"}),
        ]):
            answer = http.post("/bookings", content=content, headers=headers)
            seen[lean].append((answer.status_code, {k: v for k, v in answer.headers.items() if k != "server-timing"}))
            assert answer.headers["x-content-type-options"] == "nosniff", (lean, n)
    layer = lean_layer(apps[True])
    assert (layer.answered, layer.passed_on) == (4, 2)
    for lean in (True, False):
        assert [status for status, _ in seen[lean]] == [201, 201, 413, 201, 201, 201]
        assert seen[lean][0][1]["x-request-id"] == "caller-7"
        assert seen[lean][1][1]["access-control-allow-origin"] == "https://tickets.example"
        assert seen[lean][4][1]["x-request-id"] not in ("", "not a sane id")
        assert "access-control-allow-origin" not in seen[lean][5][1] and seen[lean][5][1]["vary"] == "Origin"
    assert [normalised_headers(h) for _, h in seen[True]] == [normalised_headers(h) for _, h in seen[False]]


# PUT /bookings/{id}/confirm: the same comparison, over a booking service that decides payments at once.
BOOKING = "00000000-0000-0000-0000-{:012d}"


class Bookings(Pool):
    """The decided requests and the bookings, as views.request_outcome and views.booking_state read them."""

    def __init__(self) -> None:
        super().__init__()
        self.bookings: dict[str, dict[str, Any]] = {}

    async def fetchrow(self, query: str, key: str) -> dict[str, Any] | None:  # type: ignore[override]
        if "FROM bookings" not in query:
            return await super().fetchrow(query, key)
        if key == BOOKING.format(666):
            raise RuntimeError("a bug")
        if key == BOOKING.format(503):
            raise asyncpg.PostgresConnectionError("connection lost")
        return self.bookings.get(key)

    async def fetch(self, query: str, keys: list[str]) -> list[dict[str, Any]]:  # type: ignore[override]
        """views.booking_states: one statement for many bookings, failing as a one-booking read of any of them."""
        rows = []
        for key in keys:
            row = await self.fetchrow(query, key)
            if row is not None:
                rows.append({**row, "booking_id": key})
        return rows


@dataclass
class BookingReplies(Replies):
    by_booking: dict[str, list[tuple[asyncio.Future[Message], Any]]] = field(default_factory=dict)

    def expect_booking(self, booking_id: str, accept: Any) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.by_booking.setdefault(booking_id, []).append((future, accept))
        return future

    def forget_booking(self, booking_id: str, future: asyncio.Future[Message]) -> None:
        self.by_booking[booking_id] = [w for w in self.by_booking.get(booking_id, []) if w[0] is not future]


@dataclass
class BookingService(Publisher):
    """Holds as Publisher does, keeping each booking; a payment confirms it unless its card is declined."""

    async def publish(self, topic: str, command: Message) -> None:
        if topic != BOOKING_CONFIRMATION_REQUESTED:
            await super().publish(topic, command)
            outcome = decode(self.pool.outcomes[str(command.request_id)]["outcome"])
            if outcome.type == SEAT_RESERVED:
                data = outcome.data
                self.pool.bookings[data["bookingId"]] = {  # type: ignore[attr-defined]
                    "event_id": outcome.event_id, "userId": data["userId"], "status": "pending",
                    "payment_id": None, "amount": data["amount"], "currency": "USD", "seat_ids": data["seatIds"],
                    "refund_id": None}
            return
        data = command.data
        booking = self.pool.bookings[data["bookingId"]]  # type: ignore[attr-defined]
        if str(data.get("cardToken", "")).startswith("tok_sim_declined_"):
            booking.update(status="payment_failed", payment_id=data["paymentId"])
            reply = Message(BOOKING_CANCELLED, command.event_id, {
                "bookingId": data["bookingId"], "status": "payment_failed", "seatIds": booking["seat_ids"],
                "declineCode": "card_declined", "declineReason": "Your card was declined"}, command.request_id)
        elif data["amount"] != booking["amount"]:
            reply = Message(BOOKING_COMMAND_REJECTED, command.event_id, {
                "bookingId": data["bookingId"], "command": "confirm", "code": "wrong_amount",
                "reason": f"The amount due is {booking['amount']}"}, command.request_id)
        else:
            booking.update(status="confirmed", payment_id=data["paymentId"])
            reply = Message(BOOKING_CONFIRMED, command.event_id, {
                "bookingId": data["bookingId"], "paymentId": data["paymentId"], "amount": booking["amount"],
                "currency": "USD", "seatIds": booking["seat_ids"]}, command.request_id)
        for future, accept in self.replies.by_booking.get(data["bookingId"], []):  # type: ignore[attr-defined]
            if not future.done() and accept(reply):
                future.set_result(reply)


class PayingGateway(Gateway):
    def __init__(self, settings: Settings, verified: bool = True) -> None:
        super().__init__(settings, verified)
        self.pool, self.replies = Bookings(), BookingReplies()
        self.publisher = BookingService(self.pool, self.replies)
        self.cards = SimulatedProvider(None, latency_seconds=0)  # type: ignore[arg-type]  # tokenises only
        self.booking_states = Grouped(partial(views.booking_states, self.pool))


def pay(payment_id: str = "pay_1", amount: Any = 10.0, **fields: Any) -> bytes:
    return orjson.dumps({"paymentId": payment_id, "amount": amount, "card": "4242424242424242", **fields})


Exchange = tuple[str, str, bytes, dict[str, str]]
HOLDS: list[Exchange] = [("POST", "/bookings", body(seatIds=[f"A{n}"], userId="fan_1"), JSON) for n in range(1, 9)]
PAYING: list[Exchange] = [
    *HOLDS,  # bookings 0 to 7, 10.0 each
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay(), JSON),
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay(), JSON),  # the same payment again: its answer
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay("pay_2"), JSON),  # already confirmed: 409
    ("PUT", f"/bookings/{BOOKING.format(1)}/confirm", pay(amount=10.001), JSON),  # the route's 422
    ("PUT", f"/bookings/{BOOKING.format(1)}/confirm", pay(amount=12.0), JSON),  # the booking service's refusal
    ("PUT", f"/bookings/{BOOKING.format(1)}/confirm", pay(card="4242424242424241"), JSON),  # Luhn: the route's 422
    ("PUT", f"/bookings/{BOOKING.format(1)}/confirm", pay(card="4000000000000002"), JSON),  # declined: 402
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(card="42"), JSON),  # the model's 422
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(amount="10.0"), JSON),
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(amount=10), JSON),
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(amount=True), JSON),
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(surprise=1), JSON),
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", b'{"paymentId": "p", "amount": 10.0', JSON),  # not JSON
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm", pay(), {"Content-Type": "text/plain"}),
    ("PUT", f"/bookings/{BOOKING.format(2)}/confirm?x=1", pay(), JSON),
    ("PUT", f"/bookings/{BOOKING.format(3)}/confirm", pay(), {"Content-Type": "application/json; charset=utf-8"}),
    ("PUT", f"/bookings/{BOOKING.format(4)}/confirm", pay(card=None), JSON),  # no card: the booking service's answer
    ("PUT", f"/bookings/{BOOKING.format(99)}/confirm", pay(), JSON),  # unknown: 404
    ("PUT", "/bookings/not-a-booking/confirm", pay(), JSON),  # malformed id: 422
    ("PUT", f"/bookings/{'b' * 65}/confirm", pay(), JSON),  # over the path's limit: FastAPI's 422
    ("PUT", f"/bookings/{BOOKING.format(503)}/confirm", pay(), JSON),  # the app's handler: 503
    ("PUT", f"/bookings/{BOOKING.format(666)}/confirm", pay(), JSON),  # the app's 500
    ("PUT", f"/bookings/{BOOKING.format(5)}/confirm/", pay(), JSON),  # not the route
    ("POST", f"/bookings/{BOOKING.format(5)}/confirm", pay(), JSON),  # not its method
    ("PUT", f"/bookings/{BOOKING.format(5)}/confirm", pay(), {**JSON, "Authorization": "Bearer x"}),  # ignored
    ("PUT", f"/bookings/{BOOKING.format(6)}/confirm", b'{"paymentId": "p", "paymentId": "q", "amount": 10.0}', JSON),
    ("PUT", f"/bookings/{BOOKING.format(7)}/confirm", pay(), {**JSON, "Idempotency-Key": "k" * 300}),  # not its header
]
PAYING_WITH_ACCOUNTS: list[Exchange] = [
    *[("POST", "/bookings", orjson.dumps({"eventId": EVENT, "seatIds": [f"A{n}"]}), with_auth("fan_1"))
      for n in range(1, 4)],
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay(), JSON),  # no token: 401
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay(), with_auth("fan_2")),  # another's booking: 403
    ("PUT", f"/bookings/{BOOKING.format(0)}/confirm", pay(), with_auth("fan_1")),
    *[("PUT", f"/bookings/{BOOKING.format(n)}/confirm", pay(), with_auth("fan_1")) for n in (1, 2, 1, 2, 1)],
]


def exchanges(settings: Settings, requests: list[Exchange], lean: bool) -> tuple[list[Any], dict[Any, float]]:
    before = dict(metrics.HTTP_REQUESTS.values)
    app = create_app(settings)
    if not lean:
        app.lean = False
    app.state.gateway = PayingGateway(settings)
    http = client(app)
    seen = []
    for method, path, content, headers in requests:
        answer = http.request(method, path, content=content, headers=headers)
        seen.append((answer.status_code, normalised(answer.json()), normalised_headers(answer.headers)))
    counted = {k: v - before.get(k, 0) for k, v in metrics.HTTP_REQUESTS.values.items() if v != before.get(k, 0)}
    if lean:  # payments were answered by the layer, or the comparison compares FastAPI with itself
        layer = lean_layer(app)
        paid = sum(1 for method, *_ in requests if method == "PUT")
        assert layer.answered > len(requests) - paid, (layer.answered, layer.passed_on)
    return seen, counted


@pytest.mark.parametrize(("settings", "requests"), [
    (Settings(), PAYING),
    (Settings(auth="on", rate_limit_user_burst=6), PAYING_WITH_ACCOUNTS),
], ids=["open demo", "accounts and rate limits"])
def test_the_lean_path_answers_payments_as_the_route_does(settings: Settings, requests: list[Exchange]) -> None:
    lean, lean_counted = exchanges(settings, requests, lean=True)
    routed, routed_counted = exchanges(settings, requests, lean=False)
    for number, (one, other) in enumerate(zip(lean, routed, strict=True)):
        assert one == other, f"request {number}: {requests[number][:3]!r}"
    assert lean_counted == routed_counted


def test_the_payment_sequences_cover_what_they_claim() -> None:
    seen, _ = exchanges(Settings(), PAYING, lean=True)
    codes = [(status, b.get("code") or b.get("status")) for status, b, _ in seen[len(HOLDS):]]
    assert codes[:3] == [(200, "confirmed"), (200, "confirmed"), (409, "booking_already_confirmed")]
    assert codes[3] == (422, "validation_error") and codes[4][0] == 409 and codes[5] == (422, "validation_error")
    assert codes[6] == (402, "payment_declined")
    assert codes[15] == (200, "confirmed") and codes[17] == (404, "booking_not_found")
    assert codes[18] == (422, "invalid_id") and codes[19][0] == 422
    assert codes[20] == (503, "database_unavailable") and codes[21] == (500, "internal_error")
    accounts, _ = exchanges(Settings(auth="on", rate_limit_user_burst=6), PAYING_WITH_ACCOUNTS, lean=True)
    codes = [(status, b.get("code") or b.get("status")) for status, b, _ in accounts[3:]]
    assert codes[:3] == [(401, "not_authenticated"), (403, "forbidden"), (200, "confirmed")]
    assert codes[-1] == (429, "rate_limited")
