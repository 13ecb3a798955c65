"""The gateway's one map from domain error codes to HTTP, and the answers outcome messages stand for."""

import orjson
import pytest

from boxoffice import messages as topics
from boxoffice.domain import errors
from boxoffice.entrypoints.gateway import answers
from boxoffice.entrypoints.gateway.answers import cancel_result, confirm_result, reservation_result
from boxoffice.messages import Message, decode

# CONTRACT §3.
DOCUMENTED = {
    "seat_unavailable": 409, "seat_limit_reached": 409, "seat_not_found": 404, "event_not_found": 404,
    "booking_not_found": 404, "invalid_request": 422, "amount_mismatch": 422,
    "booking_not_pending": 409, "booking_expired": 409, "booking_cancelled": 409,
    "booking_already_confirmed": 409, "booking_payment_failed": 409, "payment_in_progress": 409,
    "invalid_transition": 409, "domain_error": 409,
    # CONTRACT §8.2 (best available).
    "sold_out": 409, "not_enough_adjacent": 409, "category_not_found": 404, "section_not_found": 404,
    # CONTRACT §8.3 (the waiting list).
    "waitlist_not_found": 404, "waitlist_ended": 409, "event_cancelled": 409,
    # More seats than one booking takes, or than the event has together in one row (the waiting list).
    "too_many_seats": 422,
    # An on-sale without a waiting room, before its opening.
    "sale_not_open": 409,
    # A new opensAt once the sale has opened.
    "sale_open": 409,
    "refund_in_progress": 409, "booking_refunded": 409, "refund_failed": 502,
    # A refund of a booking whose ticket was used at the door.
    "tickets_used": 409,
    # CONTRACT §8.1 (waiting room).
    "not_admitted": 403, "admission_expired": 403, "no_waiting_room": 409,
    "proof_of_work_required": 403, "proof_of_work_invalid": 403,
}
BOOKING = "0b5e4c1e-5f0a-4e7b-9a55-2d7c1f7a9e01"


def every_error(cls: type[errors.DomainError] = errors.DomainError) -> list[type[errors.DomainError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in every_error(direct))]


def over_the_wire(message: Message) -> Message:
    return decode(message.encode())


def test_every_domain_code_has_its_documented_status():
    codes = {cls.code for cls in every_error()}
    assert codes == set(DOCUMENTED), "a new domain error needs its HTTP status here and in answers.STATUS"
    assert {code: answers.status_of(code) for code in codes} == DOCUMENTED


def test_an_unknown_code_is_a_conflict():
    assert answers.status_of("something_else") == 409


def test_seat_reserved_is_201_with_the_pending_booking():
    data = {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1", "A2"], "amount": 300.5, "currency": "USD",
            "expiresAt": "2027-06-21T18:10:05.123Z", "status": "pending"}
    status, body = reservation_result(over_the_wire(Message(topics.SEAT_RESERVED, "ev_1", data, "req_1")))
    assert status == 201
    # Byte for byte: replayed answers must not differ from the first.
    assert orjson.dumps(body) == (
        b'{"success":true,"bookingId":"' + BOOKING.encode() + b'","status":"pending","eventId":"ev_1",'
        b'"userId":"user_1","seatIds":["A1","A2"],"amount":300.5,"currency":"USD",'
        b'"expiresAt":"2027-06-21T18:10:05.123Z","requestId":"req_1"}')


@pytest.mark.parametrize(("code", "status"), [
    ("seat_unavailable", 409), ("seat_limit_reached", 409), ("seat_not_found", 404), ("event_not_found", 404),
    ("invalid_request", 422), ("something_else", 409),
])
def test_a_failed_reservation_has_the_status_of_its_code(code, status):
    data = {"userId": "user_2", "seatIds": ["A1"], "code": code, "reason": "Seat A1 is already reserved"}
    answer = reservation_result(over_the_wire(Message(topics.SEAT_RESERVATION_FAILED, "ev_1", data, "req_2")))
    assert answer[0] == status
    assert orjson.dumps(answer[1]) == (
        b'{"success":false,"error":"Seat A1 is already reserved","code":"' + code.encode() + b'",'
        b'"seatIds":["A1"],"eventId":"ev_1","requestId":"req_2"}')


def test_booking_confirmed_is_200():
    data = {"bookingId": BOOKING, "paymentId": "pay_1", "amount": 150.0, "currency": "USD", "seatIds": ["A1"]}
    assert confirm_result(BOOKING, "pay_1", Message(topics.BOOKING_CONFIRMED, "ev_1", data)) == (200, {
        "success": True, "status": "confirmed", "bookingId": BOOKING, "paymentId": "pay_1", "amount": 150.0,
        "currency": "USD", "seatIds": ["A1"]})


def test_booking_cancelled_is_200():
    data = {"bookingId": BOOKING, "status": "cancelled", "seatIds": ["A1"]}
    assert cancel_result(BOOKING, Message(topics.BOOKING_CANCELLED, "ev_1", data)) == (200, {
        "success": True, "status": "cancelled", "bookingId": BOOKING, "seatIds": ["A1"]})


def test_a_declined_payment_is_402_with_the_providers_reason():
    data = {"bookingId": BOOKING, "status": "payment_failed", "seatIds": ["A1"], "declineCode": "card_declined",
            "declineReason": "Card declined"}
    assert confirm_result(BOOKING, "pay_1", Message(topics.BOOKING_CANCELLED, "ev_1", data)) == (402, {
        "success": False, "error": "Card declined; the seats were released", "code": "payment_declined",
        "status": "payment_failed", "bookingId": BOOKING, "declineCode": "card_declined"})
    assert answers.declined(BOOKING) == (402, {
        "success": False, "error": "Payment declined; the seats were released", "code": "payment_declined",
        "status": "payment_failed", "bookingId": BOOKING})


def test_an_expired_booking_is_a_409_refusal():
    data = {"bookingId": BOOKING, "status": "expired", "seatIds": ["A1"]}
    for answer in (confirm_result(BOOKING, "pay_1", Message(topics.BOOKING_CANCELLED, "ev_1", data)),
                   cancel_result(BOOKING, Message(topics.BOOKING_CANCELLED, "ev_1", data))):
        assert answer == (409, {
            "success": False, "error": f"Booking {BOOKING} has expired; its seats were released",
            "code": "booking_expired", "bookingId": BOOKING, "status": "expired"})


@pytest.mark.parametrize("status", sorted(answers.ENDED))
def test_a_booking_no_longer_pending_is_refused_with_409(status):
    http_status, body = answers.not_live(BOOKING, status)
    assert http_status == 409
    # Found from outside: a refusal said "paying" where GET /bookings/{id} says "pending" (statuses the buyer sees).
    shown = {"paying": "pending", "refunding": "confirmed"}.get(status, status)
    assert body["code"] == answers.ENDED[status][0] and body["status"] == shown


@pytest.mark.parametrize(("code", "status"), [
    ("booking_not_found", 404), ("amount_mismatch", 422), ("invalid_request", 422), ("payment_in_progress", 409),
    ("booking_expired", 409),
])
def test_a_rejected_command_has_the_status_of_its_code(code, status):
    data = {"bookingId": BOOKING, "command": "confirm", "code": code, "reason": "No"}
    rejection = Message(topics.BOOKING_COMMAND_REJECTED, "ev_1", data, "req_3")
    for answer in (confirm_result(BOOKING, "pay_1", rejection), cancel_result(BOOKING, rejection)):
        assert answer == (status, {"success": False, "error": "No", "code": code, "bookingId": BOOKING})


def test_a_payment_overtaken_by_a_cancel_or_another_payment_is_refused_not_told_of_their_success():
    seats = {"bookingId": BOOKING, "seatIds": ["A1"]}
    by_a_cancel = Message(topics.BOOKING_CANCELLED, "ev_1", {**seats, "status": "cancelled"})
    by_a_refund = Message(topics.BOOKING_CANCELLED, "ev_1", {**seats, "status": "refunded", "refundId": "r_1",
                                                              "amount": 150.0, "currency": "USD"})
    by_another_payment = Message(topics.BOOKING_CONFIRMED, "ev_1", {**seats, "paymentId": "pay_2", "amount": 150.0,
                                                                   "currency": "USD"})
    assert [confirm_result(BOOKING, "pay_1", m)[1]["code"] for m in (by_a_cancel, by_a_refund, by_another_payment)] \
        == ["booking_cancelled", "booking_refunded", "booking_already_confirmed"]
    assert all(confirm_result(BOOKING, "pay_1", m)[0] == 409 for m in (by_a_cancel, by_a_refund, by_another_payment))


def test_a_cancel_overtaken_by_a_payment_is_refused_and_one_overtaken_by_another_cancel_is_answered_as_it():
    seats = {"bookingId": BOOKING, "seatIds": ["A1"]}
    paid = Message(topics.BOOKING_CONFIRMED, "ev_1", {**seats, "paymentId": "pay_1", "amount": 150.0,
                                                      "currency": "USD"})
    declined = Message(topics.BOOKING_CANCELLED, "ev_1", {**seats, "status": "payment_failed",
                                                          "declineCode": "card_declined"})
    assert cancel_result(BOOKING, paid) == answers.not_live(BOOKING, "confirmed")
    assert cancel_result(BOOKING, declined) == answers.not_live(BOOKING, "payment_failed")
    cancelled = Message(topics.BOOKING_CANCELLED, "ev_1", {**seats, "status": "cancelled"})
    assert cancel_result(BOOKING, cancelled) == (200, {"success": True, "status": "cancelled", "bookingId": BOOKING,
                                                       "seatIds": ["A1"]})
