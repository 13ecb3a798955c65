"""Every consumed message is checked against its topic's schema at the consumer's edge: what no producer of the
platform would send is a MalformedMessage with a short reason, and what the platform produces passes."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from boxoffice import message_schemas, views
from boxoffice import messages as topics
from boxoffice.adapters.accounts import TokenSigner
from boxoffice.adapters.expiry import ExpiryScheduler
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.config import Settings
from boxoffice.domain.accounts import Principal, Role
from boxoffice.domain.waiting_room import OnSale
from boxoffice.entrypoints.gateway import accounts, bookings, events, lifecycle, waitlist
from boxoffice.entrypoints.gateway import schemas as gateway_schemas
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.message_schemas import SCHEMAS, decode_checked, decode_record
from boxoffice.messages import ALL_TOPICS, MalformedMessage, Message, decode
from boxoffice.service_layer.booking import BookingService
from boxoffice.service_layer.decisions import BookingRules
from boxoffice.service_layer.event_creation import event_to_data, on_sale_to_data
from boxoffice.service_layer.payments import PaymentHandler
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.waiting_room import WaitingRoomService
from tests.conftest import small_event
from tests.fake_booking import BookingTables, FakeBookingUnitOfWork
from tests.fake_waiting_room import FakeWaitingRoomUnitOfWork, RoomTables
from tests.fakes import FakePaymentUnitOfWork, FakeProvider, PaymentDatabase

BOOKING = "0b5e4c1e-5f0a-4e7b-9a55-2d7c1f7a9e01"
SPEC = small_event("ev_schemas", rows=2)  # A1-A10 at 150.00, B1-B10 at 20.00
EVENT = SPEC.event_id
HUGE = "x" * 100_000

# A typical message of each topic, as its producer writes it.
TYPICAL: dict[str, dict[str, Any]] = {
    topics.SEAT_RESERVATION_REQUESTED: {"userId": "user_1", "seatIds": ["A1", "A2"], "bodyHash": "ab" * 32,
                                        "email": "user_1@boxoffice.test"},
    topics.SEAT_RESERVED: {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1", "A2"], "amount": 300.0,
                           "currency": "USD", "expiresAt": "2030-01-01T12:10:00.000Z", "status": "pending", "seq": 1},
    topics.SEAT_RESERVATION_FAILED: {"userId": "user_1", "seatIds": ["A1"], "code": "seat_unavailable",
                                     "reason": "Seat A1 is already reserved"},
    topics.BOOKING_CONFIRMATION_REQUESTED: {"bookingId": BOOKING, "paymentId": "pay_1", "amount": 300.0,
                                            "card": "4242424242424242"},
    topics.PAYMENT_REQUESTED: {"bookingId": BOOKING, "paymentId": "pay_1", "amount": 300.0, "currency": "USD",
                               "card": "4242424242424242"},
    topics.PAYMENT_SUCCEEDED: {"bookingId": BOOKING, "paymentId": "pay_1", "amount": 300.0, "currency": "USD",
                               "providerRef": "ref_0"},
    topics.PAYMENT_FAILED: {"bookingId": BOOKING, "paymentId": "pay_1", "amount": 300.0, "currency": "USD",
                            "declineCode": "card_declined", "reason": "Your card was declined"},
    topics.BOOKING_CONFIRMED: {"bookingId": BOOKING, "userId": "user_1", "email": "user_1@boxoffice.test",
                               "seatIds": ["A1", "A2"], "amount": 300.0, "currency": "USD", "paymentId": "pay_1",
                               "seq": 2},
    topics.BOOKING_CANCELLATION_REQUESTED: {"bookingId": BOOKING},
    topics.SEAT_RESERVATION_TIMEOUT: {"bookingId": BOOKING, "expiresAt": "2030-01-01T12:10:00.000Z"},
    topics.SEAT_RELEASED: {"bookingId": BOOKING, "userId": "user_1", "email": "", "seatIds": ["A1", "A2"],
                           "reason": "timeout", "seq": 3},
    topics.BOOKING_CANCELLED: {"bookingId": BOOKING, "userId": "user_1", "email": "", "seatIds": ["A1", "A2"],
                               "reason": "payment_failed", "status": "payment_failed",
                               "declineCode": "card_declined", "declineReason": "Your card was declined"},
    topics.BOOKING_COMMAND_REJECTED: {"bookingId": BOOKING, "command": "cancel", "code": "booking_expired",
                                      "reason": f"Booking {BOOKING} has expired"},
    topics.EVENT_CREATION_REQUESTED: event_to_data(SPEC),
    topics.WAITLIST_JOIN_REQUESTED: {"waitlistId": BOOKING, "userId": "user_1", "quantity": 2,
                                     "email": "user_1@boxoffice.test"},
    topics.WAITLIST_LEAVE_REQUESTED: {"waitlistId": BOOKING},
    topics.EVENT_CANCELLATION_REQUESTED: {},
    topics.EVENT_CANCELLED: {"released": 3, "toRefund": 2, "cancelledNow": True},
    topics.REFUND_REQUESTED: {"bookingId": BOOKING, "paymentId": "pay_1", "refundId": f"refund_{BOOKING}",
                              "amount": 300.0, "currency": "USD"},
    topics.REFUND_SUCCEEDED: {"bookingId": BOOKING, "paymentId": "pay_1", "refundId": f"refund_{BOOKING}",
                              "amount": 300.0, "currency": "USD", "providerRef": "simr_0"},
    topics.REFUND_FAILED: {"bookingId": BOOKING, "paymentId": "pay_1", "refundId": f"refund_{BOOKING}",
                           "amount": 300.0, "currency": "USD", "reason": "The card account is closed"},
    topics.WAITLIST_UPDATED: {"waitlistId": BOOKING, "userId": "user_1", "email": "", "quantity": 2,
                              "status": "offered", "bookingId": BOOKING, "seatIds": ["A1", "A2"],
                              "amount": 300.0, "currency": "USD", "expiresAt": "2030-01-01T12:10:00.000Z"},
    topics.QUEUE_JOINED: {"visitorId": "fan_1", "queueToken": "q" * 43},
    topics.QUEUE_PLACED: {"visitorId": "fan_1", "queueToken": "q" * 43, "position": 7, "new": True},
    topics.QUEUE_ADMITTED: {"servingPosition": 12, "queueSize": 40, "opened": True, "admitPerMinute": 600,
                            "admissionMinutes": 10, "opensAt": "2030-01-01T09:00:00.000Z",
                            "at": "2030-01-01T09:00:01.000Z", "enabled": True, "firstPosition": 3,
                            "lastPosition": 12},
    topics.ONSALE_CHANGE_REQUESTED: {"opensAt": "2030-01-01T09:00:00+00:00", "waitingRoom": True,
                                     "admitPerMinute": 600, "admissionMinutes": 10},
    topics.ACCOUNT_VERIFICATION_REQUESTED: {"verificationId": BOOKING, "userId": "user_1",
                                            "email": "fan@example.com", "expiresAt": "2030-01-02T12:00:00.000Z",
                                            "link": "https://tickets.example.com/#verify=a.b.c"},
}


def encoded(topic: str, data: object, request_id: str | None = "req_1", **envelope: object) -> bytes:
    """A message of `topic` as bytes; `envelope` replaces its fields by their JSON names (eventId=...)."""
    body = orjson.loads(Message(topic, EVENT, {}, request_id).encode())
    return orjson.dumps({**body, "data": data, **envelope})


def refused(raw: bytes, topic: str) -> str:
    with pytest.raises(MalformedMessage) as info:
        decode_checked(raw, topic)
    reason = str(info.value)
    assert reason and "\n" not in reason and len(reason) <= message_schemas.MAX_REASON, reason
    assert "x" * 61 not in reason, "the reason repeats more than a little of the message's text"
    return reason


def test_every_topic_has_a_schema_and_a_typical_message() -> None:
    assert set(SCHEMAS) == set(ALL_TOPICS) == set(TYPICAL)


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_a_typical_message_passes_as_it_was_sent(topic: str) -> None:
    raw = encoded(topic, TYPICAL[topic])
    assert decode_checked(raw, topic) == decode(raw)


@pytest.mark.parametrize("topic", [topics.QUEUE_ADMITTED, topics.ONSALE_CHANGE_REQUESTED])
def test_an_auto_rate_passes_and_other_words_do_not(topic: str) -> None:
    auto = {**TYPICAL[topic], "admitPerMinute": "auto"}
    if topic == topics.QUEUE_ADMITTED:
        auto["admittedLastMinute"] = 40
    assert decode_checked(encoded(topic, auto), topic).data["admitPerMinute"] == "auto"
    for rate in ("fast", "AUTO", 0):
        refused(encoded(topic, {**TYPICAL[topic], "admitPerMinute": rate}), topic)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:00", "0001-01-01T00:30:00+01:00",
                                    "9999-12-31T23:59:59-05:00", "1999-12-31T23:59:59+00:00", "2100-01-01T00:00:00Z"])
def test_an_opening_or_a_start_outside_the_platforms_years_is_refused(moment: str) -> None:
    """At the calendar's ends PostgreSQL stores -infinity and gives back a time without a zone, which the waiting
    room's clock could not compare: one such on-sale change stopped the waitingroom service at every start."""
    on_sale = TYPICAL[topics.ONSALE_CHANGE_REQUESTED]
    assert "opensAt" in refused(encoded(topics.ONSALE_CHANGE_REQUESTED, {**on_sale, "opensAt": moment}),
                                topics.ONSALE_CHANGE_REQUESTED)
    creation = TYPICAL[topics.EVENT_CREATION_REQUESTED]
    assert "startsAt" in refused(encoded(topics.EVENT_CREATION_REQUESTED, {**creation, "startsAt": moment}),
                                 topics.EVENT_CREATION_REQUESTED)
    for edge in ("2000-01-01T00:00:00+00:00", "2099-12-31T23:59:59+00:00"):
        assert decode_checked(encoded(topics.ONSALE_CHANGE_REQUESTED, {**on_sale, "opensAt": edge}),
                              topics.ONSALE_CHANGE_REQUESTED).data["opensAt"] == edge


def test_the_bounds_are_the_gateways() -> None:
    assert f"^{message_schemas.EVENT_ID.pattern}$" == gateway_schemas.EVENT_ID
    assert f"^{message_schemas.UUID.pattern}$" == gateway_schemas.UUID
    properties = gateway_schemas.BookingRequest.model_json_schema(by_alias=True)["properties"]
    seat_ids = next(choice for choice in properties["seatIds"]["anyOf"] if choice["type"] == "array")
    assert seat_ids["maxItems"] == message_schemas.MAX_SEATS
    quantity = next(choice for choice in properties["quantity"]["anyOf"] if choice["type"] == "integer")
    assert quantity["maximum"] == message_schemas.MAX_SEATS
    assert events.MAX_SEATS_PER_EVENT == message_schemas.MAX_EVENT_SEATS


# -- what is not an envelope --------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", ALL_TOPICS)
@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe garbage \x00", "not JSON"), (b"", "not JSON"), (b"{", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"), (b'"seat.reserved"', "not a JSON object"), (b"42", "not a JSON object"),
    (b"null", "not a JSON object"), (b'{"type": "seat.reserved"}', "the envelope has no 'eventId'"),
], ids=["garbage", "empty", "truncated", "array", "string", "number", "null", "no-eventId"])
def test_what_is_not_an_envelope_is_refused(topic: str, raw: bytes, reason: str) -> None:
    assert refused(raw, topic).startswith(reason)


def test_a_record_without_a_value_is_refused() -> None:
    assert refused(None, topics.SEAT_RESERVED).startswith("not JSON")  # type: ignore[arg-type]


@pytest.mark.parametrize("topic", [topics.SEAT_RESERVED, topics.BOOKING_CONFIRMATION_REQUESTED,
                                   topics.PAYMENT_REQUESTED, topics.PAYMENT_SUCCEEDED, topics.BOOKING_CONFIRMED])
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinite_amounts_never_get_through(topic: str, literal: bytes) -> None:
    """orjson refuses NaN and Infinity literals (and numbers too large for a double): they fail as JSON."""
    raw = encoded(topic, {**TYPICAL[topic], "amount": 12345.678}).replace(b"12345.678", literal)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    assert refused(raw, topic).startswith("not JSON")


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf])
def test_the_schemas_refuse_nan_and_infinity_whatever_the_decoder(amount: float) -> None:
    with pytest.raises(ValidationError, match="finite number"):
        SCHEMAS[topics.PAYMENT_REQUESTED].model_validate({**TYPICAL[topics.PAYMENT_REQUESTED], "amount": amount})


# -- the envelope --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_a_message_of_another_topic_is_refused(topic: str) -> None:
    other = topics.SEAT_RESERVED if topic != topics.SEAT_RESERVED else topics.BOOKING_CONFIRMED
    assert refused(encoded(other, TYPICAL[other]), topic) == (
        f"type is '{other}', not the topic it was read from ({topic})")
    assert refused(encoded(topic, TYPICAL[topic], type=12), topic).startswith("type is 12, not the topic")
    assert refused(encoded(topic, TYPICAL[topic], type=None), topic).startswith("type is None, not the topic")
    assert refused(encoded(topic, TYPICAL[topic], type=[topic]), topic).startswith("type is an array, not")
    assert refused(encoded(topic, TYPICAL[topic], type=HUGE), topic).startswith(f"type is '{'x' * 50}'..., not")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("id", "not-a-uuid", "id is not a UUID"), ("id", 12, "id is not a UUID"), ("id", None, "id is not a UUID"),
    ("id", BOOKING + "\n", "id is not a UUID"),
    ("eventId", "", "eventId is not an event id"), ("eventId", "has space", "eventId is not an event id"),
    ("eventId", "x" * 65, "eventId is not an event id"), ("eventId", 12, "eventId is not an event id"),
    ("eventId", "ev\n", "eventId is not an event id"), ("eventId", ["ev"], "eventId is not an event id"),
    ("requestId", 12, "requestId is not a string"), ("requestId", ["req_1"], "requestId is not a string"),
    ("requestId", "", "requestId is not a string"), ("requestId", HUGE, "requestId is not a string"),
    ("requestId", "req\x00", "requestId is not a string"),
    ("occurredAt", 12, "occurredAt is not a string"), ("occurredAt", HUGE, "occurredAt is not a string"),
    ("version", "1", "version is not an integer"), ("version", True, "version is not an integer"),
    # Found from outside: a version 2 message was read as version 1 (a hold was granted).
    ("version", 2, "version is 2: this consumer reads version 1"), ("version", 0, "version is 0"),
])
@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_a_malformed_envelope_is_refused(topic: str, field: str, value: object, reason: str) -> None:
    assert refused(encoded(topic, TYPICAL[topic], **{field: value}), topic).startswith(reason)


@pytest.mark.parametrize(("field", "value"), [("userId", "fan\x00"), ("email", "fan@example.com\r\nBcc: x@y.z"),
                                              ("email", "fan\x00@example.com"), ("email", "fan@example.com\n")])
def test_text_postgresql_or_a_mail_header_cannot_take_is_refused_before_any_handler(field: str, value: str) -> None:
    """Refused there only after retries, such a message would hold its partition up meanwhile."""
    topic = topics.SEAT_RESERVATION_REQUESTED
    assert refused(encoded(topic, {**TYPICAL[topic], field: value}), topic).startswith(f"data.{field}: ")


@pytest.mark.parametrize("topic", ALL_TOPICS)
@pytest.mark.parametrize("data", [[1, 2], "data", 5, True], ids=["array", "string", "number", "true"])
def test_data_that_is_not_an_object_is_refused(topic: str, data: object) -> None:
    assert refused(encoded(topic, data), topic) == "data is not an object"


@pytest.mark.parametrize("data", [[], "", 0, False, None])
def test_empty_data_that_is_not_an_object_is_refused_too(data: object) -> None:
    # Read as {} before, a null `data` made an event.cancellation.requested, which needs no field, a command.
    for topic in (topics.SEAT_RESERVED, topics.EVENT_CANCELLATION_REQUESTED):
        assert refused(encoded(topic, data), topic) == "data is not an object"


def test_an_empty_object_lacks_the_required_fields() -> None:
    assert refused(encoded(topics.SEAT_RESERVED, {}), topics.SEAT_RESERVED).startswith(
        "data.bookingId: Field required")


def test_a_reservation_request_needs_a_request_id_to_be_answered_under() -> None:
    topic = topics.SEAT_RESERVATION_REQUESTED
    assert refused(encoded(topic, TYPICAL[topic], request_id=None), topic) == "requestId is missing"
    other = topics.BOOKING_CANCELLATION_REQUESTED
    assert decode_checked(encoded(other, TYPICAL[other], request_id=None), other).request_id is None


# -- data: wrong types and sizes, field by field ---------------------------------------------------------------

def wrong_values(valid: object) -> list[object]:
    """Values no field with a valid value like `valid` takes."""
    if isinstance(valid, str):
        return [12, 1.5, True, ["x"], {"x": 1}, HUGE]
    if isinstance(valid, list):
        return ["A1", 7, {"a": 1}, [12], [HUGE], [["A1"]]]
    if isinstance(valid, dict):
        return ["Hall", 12, [valid]]
    if isinstance(valid, bool):
        return ["true", 1, 0, None, [True]]
    assert isinstance(valid, (int, float))
    return ["150.0", True, -1, 1e12, [1]]


FIELD_CASES = [(topic, field, bad) for topic, data in TYPICAL.items() for field, valid in data.items()
               for bad in wrong_values(valid)]


@pytest.mark.parametrize(("topic", "field", "bad"), FIELD_CASES,
                         ids=[f"{t}-{f}-{str(b)[:12]}" for t, f, b in FIELD_CASES])
def test_a_wrong_type_or_a_huge_value_in_any_field_is_refused(topic: str, field: str, bad: object) -> None:
    raw = encoded(topic, {**TYPICAL[topic], field: bad})
    assert refused(raw, topic).startswith(f"data.{field}")


# Topics about one booking (a waiting list entry names its offer's booking once it has one).
BOOKING_TOPICS = [t for t, data in TYPICAL.items() if "bookingId" in data and t != topics.WAITLIST_UPDATED]


@pytest.mark.parametrize("booking_id", ["not-a-uuid", "", 12, BOOKING + "\n"])
def test_a_waiting_list_offer_names_its_booking_by_uuid(booking_id: object) -> None:
    data = {**TYPICAL[topics.WAITLIST_UPDATED], "bookingId": booking_id}
    assert refused(encoded(topics.WAITLIST_UPDATED, data), topics.WAITLIST_UPDATED).startswith("data.bookingId")


@pytest.mark.parametrize("topic", BOOKING_TOPICS)
@pytest.mark.parametrize("booking_id", ["not-a-uuid", "", 12, None, BOOKING + "\n", "{" + BOOKING + "}",
                                        BOOKING.replace("-", ""), f"urn:uuid:{BOOKING}"])
def test_a_booking_id_that_is_not_a_uuid_is_refused(topic: str, booking_id: object) -> None:
    assert refused(encoded(topic, {**TYPICAL[topic], "bookingId": booking_id}), topic).startswith("data.bookingId")


@pytest.mark.parametrize("topic", BOOKING_TOPICS)
def test_a_booking_id_is_required(topic: str) -> None:
    data = {k: v for k, v in TYPICAL[topic].items() if k != "bookingId"}
    assert refused(encoded(topic, data), topic) == "data.bookingId: Field required"


def required(topic: str, field: str) -> bool:
    return SCHEMAS[topic].model_fields[field].is_required()


ID_CASES = [(topic, field, value) for topic, data in TYPICAL.items() for field in ("userId", "paymentId")
            if field in data for value in ("", "i" * 257, *([None] if required(topic, field) else []))]


@pytest.mark.parametrize(("topic", "field", "value"), ID_CASES)
def test_ids_out_of_bounds_are_refused(topic: str, field: str, value: object) -> None:
    assert refused(encoded(topic, {**TYPICAL[topic], field: value}), topic).startswith(f"data.{field}")


@pytest.mark.parametrize("topic", [topics.SEAT_RESERVATION_REQUESTED, topics.SEAT_RESERVED, topics.BOOKING_CONFIRMED,
                                   topics.SEAT_RELEASED, topics.BOOKING_CANCELLED])
@pytest.mark.parametrize("seat_ids", [[], ["A1"] * 201, [""], ["x" * 65], [None], "A1,A2"])
def test_seat_ids_are_a_list_of_1_to_200_short_strings(topic: str, seat_ids: object) -> None:
    assert refused(encoded(topic, {**TYPICAL[topic], "seatIds": seat_ids}), topic).startswith("data.seatIds")
    assert decode_checked(encoded(topic, {**TYPICAL[topic], "seatIds": [f"S{n}" for n in range(200)]}), topic)


def test_a_refusal_may_name_no_seats() -> None:
    topic = topics.SEAT_RESERVATION_FAILED
    assert decode_checked(encoded(topic, {**TYPICAL[topic], "seatIds": []}), topic)


AMOUNT_CASES = [(topic, amount) for topic, data in TYPICAL.items() if "amount" in data
                for amount in (-0.01, -1, 1_000_000_001, 1e300, "150.00", True, [150],
                               *([None] if required(topic, "amount") else []))]


@pytest.mark.parametrize(("topic", "amount"), AMOUNT_CASES)
def test_negative_absurd_or_unnumbered_amounts_are_refused(topic: str, amount: object) -> None:
    assert refused(encoded(topic, {**TYPICAL[topic], "amount": amount}), topic).startswith("data.amount")


@pytest.mark.parametrize(("topic", "field", "value"), [
    (topics.SEAT_RESERVED, "status", "confirmed"), (topics.SEAT_RESERVED, "seq", 0),
    (topics.SEAT_RESERVED, "seq", "1"), (topics.SEAT_RESERVED, "seq", True), (topics.SEAT_RESERVED, "seq", 1.0),
    (topics.SEAT_RESERVED, "seq", 2**63),  # past a PostgreSQL bigint: refused there only after retries
    (topics.SEAT_RESERVED, "currency", "usd"), (topics.SEAT_RESERVED, "currency", "DOLLARS"),
    (topics.BOOKING_CANCELLED, "status", "refunding"), (topics.BOOKING_COMMAND_REJECTED, "command", "refund"),
    (topics.PAYMENT_REQUESTED, "card", "4242-4242-4242-4242"), (topics.PAYMENT_REQUESTED, "card", 4242424242424242),
    (topics.BOOKING_CONFIRMATION_REQUESTED, "card", "12"),
])
def test_values_consumers_branch_on_are_the_ones_they_know(topic: str, field: str, value: object) -> None:
    assert refused(encoded(topic, {**TYPICAL[topic], field: value}), topic).startswith(f"data.{field}")


def test_fields_a_schema_does_not_name_are_allowed_and_optional_ones_may_be_null() -> None:
    topic = topics.SEAT_RESERVED
    extra = {**TYPICAL[topic], "note": "added by a newer producer", "seq": None}
    assert decode_checked(encoded(topic, extra), topic).data == extra
    confirm = {**TYPICAL[topics.BOOKING_CONFIRMATION_REQUESTED], "card": None}
    assert decode_checked(encoded(topics.BOOKING_CONFIRMATION_REQUESTED, confirm),
                          topics.BOOKING_CONFIRMATION_REQUESTED)


def test_a_reason_names_the_first_problem_and_counts_the_others() -> None:
    topic = topics.SEAT_RESERVATION_REQUESTED
    assert refused(encoded(topic, {"userId": 7, "seatIds": "A1", "email": 3}), topic) == (
        "data.userId: Input should be a valid string (and 2 more)")
    assert refused(encoded(topic, {"userId": "u", "seatIds": ["A1", 12]}), topic) == (
        "data.seatIds.1: Input should be a valid string")


# -- event creation -------------------------------------------------------------------------------------------

def event_data(**changes: Any) -> dict[str, Any]:
    return {**TYPICAL[topics.EVENT_CREATION_REQUESTED], **changes}


def category(**changes: Any) -> dict[str, Any]:
    return {"categoryId": "std", "name": "Standard", "price": "150.00", **changes}


@pytest.mark.parametrize(("data", "reason"), [
    *((event_data(priceCategories=[category(price=price)]),
       "data.priceCategories.0.price: Value error, not an amount with at most two decimals")
      # Found from outside: 1e-999999999 passed, and PostgreSQL refused it only after the catalog's retries.
      for price in ("abc", "-1", "1e9", "NaN", "Infinity", "1e-999999999", "1_0", "1.005", " 1")),
    (event_data(priceCategories=[category(price="1000000")]), "data.priceCategories.0.price: Value error, out of"),
    # Found from outside: seats a ticket's code cannot name were sold, and their tickets never scanned.
    *((event_data(rows=[], seats=[{"seatId": seat_id, "row": row, "number": 1, "section": "Main",
                                   "categoryId": "std"}]), f"data.seats.0.{field}")
      for seat_id, row, field in (("S:1 ü<b>", "A", "seatId"), ("S\u202e2", "A", "seatId"), (" ", "A", "seatId"),
                                  ("A1", "A\r\nPAY@evil.io\r\n", "row"), ("A1", "B\x07", "row"))),
    (event_data(rows=[{"row": "A\u202e", "section": "Main", "categoryId": "std", "seats": 1}]), "data.rows.0.row"),
    (event_data(priceCategories=[category(price=150.0)]), "data.priceCategories.0.price: Input should be a valid st"),
    (event_data(priceCategories=[]), "data.priceCategories: List should have at least 1 item"),
    (event_data(startsAt="tomorrow"), "data.startsAt: Value error, not an ISO-8601 time"),
    (event_data(startsAt="2030-01-01\u00e919:00:00+00:00"), "data.startsAt: Value error, not an ISO-8601 time"),
    (event_data(startsAt="2030-01-01T19:00:00"), "data.startsAt: Value error, no time zone"),
    (event_data(venue={"city": "Testville"}), "data.venue.name: Field required"),
    (event_data(rows=[{"row": "A", "section": "Main", "categoryId": "std", "seats": "10"}]), "data.rows.0.seats"),
    (event_data(rows=[{"row": "A", "section": "Main", "categoryId": "std", "seats": 1001}]), "data.rows.0.seats"),
    (event_data(rows=[], seats=[{"seatId": 12, "row": "A", "number": 1, "section": "Main", "categoryId": "std"}]),
     "data.seats.0.seatId"),
    (event_data(eventId="other_event"), "data.eventId differs from the envelope's eventId"),
    (event_data(eventId="not an id"), "data.eventId: not in the expected format"),
    (event_data(organiserId=7), "data.organiserId: Input should be a valid string"),
])
def test_an_event_that_the_catalog_could_not_create_is_refused(data: dict[str, Any], reason: str) -> None:
    assert refused(encoded(topics.EVENT_CREATION_REQUESTED, data), topics.EVENT_CREATION_REQUESTED).startswith(reason)


# -- topics without a schema ----------------------------------------------------------------------------------

def test_a_topic_without_a_schema_gets_the_envelopes_checks_only() -> None:
    assert decode_checked(encoded("group.test", {"n": 1}), "group.test").data == {"n": 1}
    assert refused(encoded("group.test", [1]), "group.test") == "data is not an object"
    assert refused(encoded("group.test", {}, id="x"), "group.test") == "id is not a UUID"


# -- what the platform produces passes ------------------------------------------------------------------------

class FakeGateway:
    """What the gateway's routes use, with the booking service reported down: routes publish and do not wait."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.published: list[tuple[str, bytes]] = []
        self.publisher = self
        self.request_ids = RequestIds("00" * 16)
        self.seats = self
        self.health = SimpleNamespace(is_up=lambda service: False, refreshed_at=1.0)
        self.access = SimpleNamespace(limit_user=lambda user_id: None)
        self.replies = SimpleNamespace(unanswered=UnansweredRequests(60))
        self.pool = None
        self.queue = SimpleNamespace(room=_returning(None))  # no event of these has a waiting room
        self.cards = FakeProvider()

    async def publish(self, topic: str, message: Message) -> None:
        self.published.append((topic, message.encode()))

    async def seats_of(self, event_id: str) -> frozenset[str] | None:
        return frozenset(s.seat_id for s in SPEC.seats()) if event_id == EVENT else None

    def take(self) -> tuple[str, bytes]:
        return self.published.pop()


class Relay:
    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        self.rows += rows


class Produced:
    """Every message a producer published, checked as its consumers will read it."""

    def __init__(self) -> None:
        self.topics: set[str] = set()

    def check(self, topic: str, raw: bytes) -> Message:
        self.topics.add(topic)
        return decode_checked(raw, topic)

    def rows(self, relay: Relay) -> list[Message]:
        taken = [self.check(row.topic, row.payload) for row in relay.rows]
        relay.rows.clear()
        return taken


async def test_every_message_the_platform_produces_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    produced, gateway = Produced(), FakeGateway()
    tables = BookingTables()
    tables.add_event(SPEC)
    booking_relay, payment_relay = Relay(), Relay()
    clock = SimpleNamespace(now=datetime(2029, 12, 1, tzinfo=UTC))
    booking = BookingService(lambda: FakeBookingUnitOfWork(tables), booking_relay,
                             BookingRules(timedelta(minutes=10), max_seats_per_booking=2), lambda: clock.now)
    payment_db, provider = PaymentDatabase(), gateway.cards  # one provider: it knows the tokens it gave
    payment = PaymentHandler(lambda: FakePaymentUnitOfWork(payment_db), provider, payment_relay)

    async def state(pool: object, booking_id: str) -> dict[str, Any] | None:
        b = tables.bookings.get(booking_id)
        return None if b is None else {"event_id": b.event_id, "userId": b.user_id, "status": b.status.value,
                                       "payment_id": b.payment_id, "amount": b.amount, "currency": b.currency,
                                       "seat_ids": b.seat_ids, "refund_id": b.refund_id}
    monkeypatch.setattr(views, "booking_state", state)
    gateway.booking_states = lambda booking_id: state(None, booking_id)

    async def to_booking(topic: str, raw: bytes) -> list[Message]:
        message = produced.check(topic, raw)
        tables.record_outcomes([message])  # the payment service's rows, in the database both services share
        await booking([message])
        return produced.rows(booking_relay)

    async def hold(*seats: str, caller: Principal | None = None, **body: Any) -> Message:
        request = gateway_schemas.BookingRequest.model_validate({"eventId": EVENT, "seatIds": list(seats), **body})
        assert (await bookings.create_booking(request, gateway, caller)).status_code == 202  # type: ignore[arg-type]
        [outcome] = await to_booking(*gateway.take())
        return outcome

    async def confirm(booking_id: str, card: str) -> list[Message]:
        request = gateway_schemas.ConfirmRequest.model_validate(
            {"paymentId": f"pay_{booking_id[:4]}", "amount": float(tables.bookings[booking_id].amount), "card": card})
        await lifecycle.confirm_booking(booking_id, request, gateway, None)  # type: ignore[arg-type]
        [payment_requested] = await to_booking(*gateway.take())
        await payment([produced.check(topics.PAYMENT_REQUESTED, payment_requested.encode())])
        [charged] = produced.rows(payment_relay)
        return await to_booking(charged.type, charged.encode())

    async def cancel(booking_id: str) -> list[Message]:
        await lifecycle.cancel_booking(booking_id, gateway, None)  # type: ignore[arg-type]
        return await to_booking(*gateway.take())

    paid = await hold("A1", userId="user_1", email="user_1@example.com")
    declined = await hold("A2", "B1", userId="user_2")
    cancelled = await hold("A3", caller=Principal("user_abc", "abc@example.com", Role.BUYER))
    expiring = await hold("B2", userId="user.name+tag@example.com")
    assert {paid.type, declined.type, cancelled.type, expiring.type} == {topics.SEAT_RESERVED}
    refusals = [await hold("A1", userId="user_3"), await hold("B3", "B4", "B5", userId="user_3")]
    # Refusals the gateway's own checks forestall, unless its seat directory is out of date.
    for n, (event_id, seat) in enumerate([(EVENT, "Z9"), ("no_such_event", "A9")]):
        request = Message(topics.SEAT_RESERVATION_REQUESTED, event_id, {"userId": "u", "seatIds": [seat]}, f"req_{n}")
        refusals += await to_booking(request.type, request.encode())
    assert [m.data["code"] for m in refusals] == ["seat_unavailable", "invalid_request", "seat_not_found",
                                                  "event_not_found"]

    # A cancel that the gateway sent while the booking was pending, overtaken by its payment: refused.
    await lifecycle.cancel_booking(paid.data["bookingId"], gateway, None)  # type: ignore[arg-type]
    overtaken = gateway.take()
    assert [m.type for m in await confirm(paid.data["bookingId"], "4242424242424242")] == [topics.BOOKING_CONFIRMED]
    [rejected] = await to_booking(*overtaken)
    assert rejected.type == topics.BOOKING_COMMAND_REJECTED
    assert [m.type for m in await confirm(declined.data["bookingId"], "4000000000000002")] == [
        topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert [m.type for m in await cancel(cancelled.data["bookingId"])] == [
        topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]

    # The expiry scheduler's timeout, once the hold ran out.
    expiring_booking = tables.bookings[expiring.data["bookingId"]]
    clock.now = expiring_booking.expires_at + timedelta(seconds=1)
    timeouts: list[tuple[str, bytes, bytes]] = []
    publisher = SimpleNamespace(publish_many=lambda batch: _keep(timeouts, batch))
    connection = SimpleNamespace(fetch=_returning([{"booking_id": expiring_booking.booking_id, "event_id": EVENT,
                                                    "expires_at": expiring_booking.expires_at}]),
                                 fetchval=_returning(None))
    await ExpiryScheduler(None, publisher, lambda: clock.now)._tick(connection)  # type: ignore[arg-type]  # noqa: SLF001
    [(topic, _, raw)] = timeouts
    assert [m.data["status"] for m in await to_booking(topic, raw) if m.type == topics.BOOKING_CANCELLED] == ["expired"]

    # The waiting list: a join through the gateway, an offer when a booking is cancelled, a leave.
    async def entry(pool: object, waitlist_id: str) -> dict[str, Any] | None:
        e = tables.waitlist.get(waitlist_id)
        return None if e is None else {"waitlistId": e.waitlist_id, "eventId": e.event_id, "userId": e.user_id,
                                       "status": e.status.value, "bookingId": e.booking_id}
    monkeypatch.setattr(views, "waitlist_entry", entry)

    async def called_off(pool: object, event_id: str) -> bool:
        return False
    monkeypatch.setattr(views, "event_called_off", called_off)
    joins = []
    for user in ("user_4", "user_5"):
        join = gateway_schemas.WaitlistJoin.model_validate({"quantity": 1, "userId": user})
        assert (await waitlist.join_waitlist(EVENT, join, gateway, None)).status_code == 202  # type: ignore[arg-type]
        [joined] = await to_booking(*gateway.take())
        joins.append(joined)
    assert [j.data["position"] for j in joins] == [1, 2]
    late = await hold("B6", userId="user_6")
    offered = await cancel(late.data["bookingId"])
    # The event has free seats besides the released one: each entry is offered one.
    assert [m.type for m in offered] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED, topics.SEAT_RESERVED,
                                         topics.SEAT_RESERVED, topics.WAITLIST_UPDATED, topics.WAITLIST_UPDATED]
    left = await waitlist.leave_waitlist(joins[1].data["waitlistId"], gateway, None)  # type: ignore[arg-type]
    assert left.status_code == 202
    declined = await to_booking(*gateway.take())
    assert [(m.type, m.data.get("status")) for m in declined] == [
        (topics.SEAT_RELEASED, None), (topics.BOOKING_CANCELLED, "cancelled"), (topics.WAITLIST_UPDATED, "left"),
        (topics.WAITLIST_UPDATED, "left")]  # the offer ended, then the leave's answer

    # A paid booking given back: refunded through the payment service; a refund the provider refuses.
    async def refund(booking_id: str) -> list[Message]:
        await lifecycle.cancel_booking(booking_id, gateway, None)  # type: ignore[arg-type]
        [asked] = await to_booking(*gateway.take())
        assert asked.type == topics.REFUND_REQUESTED
        await payment([produced.check(topics.REFUND_REQUESTED, asked.encode())])
        [answered] = produced.rows(payment_relay)
        return await to_booking(answered.type, answered.encode())
    kept = await hold("B7", userId="user_7")
    assert [m.type for m in await confirm(kept.data["bookingId"], "4242424242424242")] == [topics.BOOKING_CONFIRMED]
    given_back = await refund(kept.data["bookingId"])
    assert [(m.type, m.data.get("status")) for m in given_back] == [
        (topics.SEAT_RELEASED, None), (topics.BOOKING_CANCELLED, "refunded")]
    provider.refuse_refunds = True
    kept = await hold("B8", userId="user_8")
    await confirm(kept.data["bookingId"], "4242424242424242")
    assert [m.data["code"] for m in await refund(kept.data["bookingId"])] == ["refund_failed"]

    # An organiser calls the event off: its last hold is released.
    async def event_on_sale(pool: object, event_id: str) -> dict[str, Any]:
        return {"eventId": event_id, "status": "on_sale"}
    with monkeypatch.context() as patched:
        patched.setattr(views, "get_event", event_on_sale)
        called_off = await events.cancel_event(EVENT, gateway, None)  # type: ignore[arg-type]
    assert called_off.status_code == 202
    cancelled_outcome = await to_booking(*gateway.take())
    assert cancelled_outcome[-1].type == topics.EVENT_CANCELLED and cancelled_outcome[-1].data["released"] >= 1

    # An organiser's new event, as rows and as listed seats.
    found = iter([None, {"eventId": "summer_gala"}, None, {"eventId": "listed"}])

    async def get_event(pool: object, event_id: str) -> object:
        return next(found)

    async def created_by(pool: object, event_id: str, request_id: str) -> bool:
        return True  # the catalog created it for this very request
    monkeypatch.setattr(views, "get_event", get_event)
    monkeypatch.setattr(views, "created_by", created_by)
    venue = {"name": "Hall", "city": ""}
    for new in ({"eventId": "summer_gala", "name": "Summer gala", "venue": venue, "startsAt": "2027-08-01T19:30:00Z",
                 "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 99.5}],
                 "rows": [{"row": "A", "seats": 12, "categoryId": "std"}]},
                {"eventId": "listed", "name": "Listed", "venue": venue, "startsAt": "2027-08-01T19:30:00+02:00",
                 "currency": "EUR", "priceCategories": [{"categoryId": "free", "name": "Free", "price": 0}],
                 "seats": [{"seatId": "S-1", "row": "A", "number": 0, "categoryId": "free"}]}):
        body = gateway_schemas.NewEvent.model_validate(new)
        assert (await events.create_event(body, gateway, None)).status_code == 201  # type: ignore[arg-type]
        produced.check(*gateway.take())

    # The waiting room: an organiser's on-sale, joins (as the gateway writes them), the opening, admissions.
    room_tables, room_relay = RoomTables(), Relay()
    room_clock = SimpleNamespace(now=datetime(2029, 12, 1, tzinfo=UTC))
    room = WaitingRoomService(lambda: FakeWaitingRoomUnitOfWork(room_tables), room_relay, lambda: room_clock.now,
                              random.Random(1))
    change = Message(topics.ONSALE_CHANGE_REQUESTED, EVENT,
                     on_sale_to_data(OnSale(room_clock.now + timedelta(minutes=1))), "req_onsale")
    tokens = QueueTokens("key")
    joins = [Message(topics.QUEUE_JOINED, EVENT, {"visitorId": v, "queueToken": tokens.queue_token(EVENT, v)},
                     f"req_{v}") for v in ("fan_1", "fan.2@example.com")]
    await room([produced.check(m.type, m.encode()) for m in (change, *joins)])
    room_clock.now += timedelta(minutes=2)
    await room.tick()
    assert {m.type for m in produced.rows(room_relay)} == {topics.QUEUE_ADMITTED, topics.QUEUE_PLACED}

    # The link that confirms an account's address, as the gateway asks for it (BOXOFFICE_EMAIL_VERIFICATION=on).
    gateway.access.tokens = TokenSigner("k" * 32, 60)
    await accounts.send_email_check(gateway, "user_0123456789abcdef", "fan@example.com")  # type: ignore[arg-type]
    produced.check(*gateway.take())

    assert produced.topics == set(ALL_TOPICS)


async def _keep(into: list[tuple[str, bytes, bytes]], batch: list[tuple[str, bytes, bytes]]) -> None:
    into.extend(batch)


def _returning(value: object) -> Any:
    async def call(*args: object) -> object:
        return value
    return call


def test_an_event_of_more_seats_than_the_gateway_allows_is_refused_however_they_are_given() -> None:
    # Each row and the listed seats have bounds of their own; 1,000 rows of 1,000 seats passed them, and the
    # catalog retried creating a million seats for minutes, holding up every event creation behind it.
    creation = TYPICAL[topics.EVENT_CREATION_REQUESTED]

    def event(rows: int, listed: int) -> bytes:
        return encoded(topics.EVENT_CREATION_REQUESTED, {
            **creation, "rows": [{"row": f"R{i}", "section": "S", "categoryId": "std", "seats": 1000}
                                 for i in range(rows)],
            "seats": [{"seatId": f"X{i}", "row": "X", "number": i, "section": "S", "categoryId": "std"}
                      for i in range(listed)]})

    assert "100000 seats" in refused(event(1000, 0), topics.EVENT_CREATION_REQUESTED)
    assert "100000 seats" in refused(event(99, 1001), topics.EVENT_CREATION_REQUESTED)
    assert decode_checked(event(99, 1000), topics.EVENT_CREATION_REQUESTED).data["eventId"] == creation["eventId"]


@pytest.mark.parametrize(("topic", "field"), [(topics.SEAT_RESERVED, "expiresAt"),
                                              (topics.WAITLIST_UPDATED, "expiresAt"),
                                              (topics.QUEUE_ADMITTED, "at"), (topics.QUEUE_ADMITTED, "opensAt")])
@pytest.mark.parametrize("text", ["<b>soon</b> 31/02/99999", "not a date", "2030-01-01T12:10:00"])
def test_a_time_that_is_not_one_is_refused_before_an_email_or_a_page_shows_it(topic: str, field: str,
                                                                             text: str) -> None:
    assert field in refused(encoded(topic, {**TYPICAL[topic], field: text}), topic)


def test_a_record_keyed_otherwise_than_by_its_event_is_refused() -> None:
    # The key is the partition that orders an event's messages: one keyed by another event would be decided out
    # of its event's order.
    raw = encoded(topics.SEAT_RESERVATION_REQUESTED, TYPICAL[topics.SEAT_RESERVATION_REQUESTED])
    assert decode_record(raw, topics.SEAT_RESERVATION_REQUESTED, EVENT.encode()).event_id == EVENT
    assert decode_record(raw, topics.SEAT_RESERVATION_REQUESTED, None).event_id == EVENT  # no key: read as it says
    for key in (b"jazz_night", b""):
        with pytest.raises(MalformedMessage, match="not by its eventId"):
            decode_record(raw, topics.SEAT_RESERVATION_REQUESTED, key)


@pytest.mark.parametrize(("topic", "field", "value"), [
    (topics.EVENT_CREATION_REQUESTED, "name", "Gala\r\nBcc: evil@example.com"),
    (topics.EVENT_CREATION_REQUESTED, "name", "\u200b"),
    (topics.EVENT_CREATION_REQUESTED, "name", "Gala \u202e"),
    (topics.EVENT_CREATION_REQUESTED, "venue", {"name": "Hall\nX", "city": "Leeds"}),
    (topics.EVENT_CREATION_REQUESTED, "venue", {"name": "Hall", "city": "Leeds\r\n"}),
    (topics.EVENT_CREATION_REQUESTED, "priceCategories", [category(name="\u3164")]),
    (topics.EVENT_CREATION_REQUESTED, "rows", [{"row": "A\n", "section": "Main", "categoryId": "std", "seats": 10}]),
    (topics.EVENT_CREATION_REQUESTED, "rows", [{"row": "A", "section": "S\r\nX", "categoryId": "std", "seats": 10}]),
    (topics.SEAT_RESERVATION_REQUESTED, "email", "a@b.com\u2028"),
    (topics.SEAT_RESERVATION_REQUESTED, "email", "a@b.com\u200b"),
    (topics.SEAT_RESERVATION_REQUESTED, "email", "a@-b.com"),
    (topics.SEAT_RESERVATION_REQUESTED, "userId", "u\x1b[31mred\x07"),
    (topics.SEAT_RESERVATION_REQUESTED, "userId", "fan one"),
    (topics.WAITLIST_JOIN_REQUESTED, "email", "%|&@~-|*}.|x"),
    (topics.ACCOUNT_VERIFICATION_REQUESTED, "email", "v3@example.com\r\n"),
])
def test_text_the_gateway_refuses_is_refused_in_the_commands_taken_from_kafka(topic: str, field: str,
                                                                              value: object) -> None:
    """Anyone who can write to the broker can send a command: what POST /events or /bookings would answer 422
    is dead-lettered, never shown on a page, put in a subject line or mailed to."""
    assert refused(encoded(topic, {**TYPICAL[topic], field: value}), topic).startswith(f"data.{field}")


def test_a_request_without_an_email_still_passes() -> None:
    topic = topics.SEAT_RESERVATION_REQUESTED
    assert decode_checked(encoded(topic, {**TYPICAL[topic], "email": ""}), topic).data["email"] == ""
