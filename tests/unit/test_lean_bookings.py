"""POST /bookings answered by the lean layer (entrypoints/gateway/lean_bookings.py) and by FastAPI's route give the
same answers: the same requests, in the same order, go to two apps over identical fake gateways, one built
without the layer, and their statuses, bodies, headers and request metrics are compared."""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.testclient import TestClient

from boxoffice import metrics
from boxoffice.adapters.accounts import TokenSigner, TokenStanding
from boxoffice.config import Settings
from boxoffice.domain.accounts import Principal, Role
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.lean_bookings import LeanBookings
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.messages import SEAT_RESERVATION_FAILED, SEAT_RESERVED, Message

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

    def expect(self, request_id: str) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        return future

    def forget(self, request_id: str, future: asyncio.Future[Message]) -> None:
        self.waiting.pop(request_id, None)


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
        app.user_middleware = [m for m in app.user_middleware if m.cls is not LeanBookings]
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
    assert codes[5][0] == codes[6][0] == 422 and seen[5][1]["error"] == "The request body is not valid JSON"
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
