"""Reservation outcomes as messages and HTTP answers; the envelope; request parsing; request ids; catalog."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from boxoffice import messages
from boxoffice.demo import DEMO_EVENT_ID, demo_events
from boxoffice.domain import events
from boxoffice.domain.catalog import row_labels
from boxoffice.domain.commands import ReserveSeats
from boxoffice.entrypoints.gateway.answers import reservation_result
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.messages import MalformedMessage, Message, decode
from boxoffice.service_layer.holds import reserve_command
from boxoffice.service_layer.outcomes import reservation_message

EXPIRES = datetime(2027, 6, 21, 18, 10, 5, 123000, tzinfo=UTC)
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
OTHER_KEY = "ff" * 32


def reserved(**overrides) -> events.SeatsReserved:
    fields = dict(request_id="req_1", event_id=DEMO_EVENT_ID, user_id="user_1", booking_id="bk_1",
                  seat_ids=["A1"], amount=Decimal("150.00"), currency="USD", expires_at=EXPIRES)
    return events.SeatsReserved(**(fields | overrides))


def failed(code: str, reason: str, seat_ids=("A1",)) -> events.ReservationFailed:
    return events.ReservationFailed("req_2", DEMO_EVENT_ID, "user_2", list(seat_ids), code, reason)


def over_the_wire(message: Message) -> Message:
    return decode(message.encode())


# --- reservation outcomes --------------------------------------------------------------------------------

def test_seats_reserved_becomes_seat_reserved_message_and_201():
    message = reservation_message(reserved())
    topic = message.type
    assert topic == "seat.reserved" == messages.SEAT_RESERVED
    assert message.type == topic
    assert message.event_id == DEMO_EVENT_ID
    assert message.request_id == "req_1"
    status, body = reservation_result(over_the_wire(message))
    assert status == 201
    assert body == {
        "success": True, "bookingId": "bk_1", "status": "pending", "eventId": DEMO_EVENT_ID, "userId": "user_1",
        "seatIds": ["A1"], "amount": 150.0, "currency": "USD", "expiresAt": "2027-06-21T18:10:05.123Z",
        "requestId": "req_1",
    }
    assert isinstance(body["amount"], float)
    assert body["expiresAt"].endswith("Z")
    assert datetime.fromisoformat(body["expiresAt"]) == EXPIRES


def test_expires_at_in_another_timezone_is_rendered_in_utc():
    local = EXPIRES.astimezone(timezone(timedelta(hours=2)))
    message = reservation_message(reserved(expires_at=local))
    assert message.data["expiresAt"] == "2027-06-21T18:10:05.123Z"


def test_multi_seat_amount_is_a_json_number():
    message = reservation_message(reserved(seat_ids=["A1", "A2"], amount=Decimal("300.50")))
    _, body = reservation_result(over_the_wire(message))
    assert body["amount"] == 300.5
    assert body["seatIds"] == ["A1", "A2"]


def test_seat_unavailable_becomes_failed_message_and_409():
    message = reservation_message(failed("seat_unavailable", "Seat A1 is already reserved"))
    topic = message.type
    assert topic == "seat.reservation.failed" == messages.SEAT_RESERVATION_FAILED
    assert message.type == topic
    status, body = reservation_result(over_the_wire(message))
    assert status == 409
    assert body == {
        "success": False, "error": "Seat A1 is already reserved", "code": "seat_unavailable", "seatIds": ["A1"],
        "eventId": DEMO_EVENT_ID, "requestId": "req_2",
    }


@pytest.mark.parametrize("code", ["seat_not_found", "event_not_found"])
def test_not_found_failures_become_404(code):
    message = reservation_message(failed(code, "nope", ["Z99"]))
    status, body = reservation_result(over_the_wire(message))
    assert status == 404
    assert body["success"] is False
    assert body["code"] == code
    assert body["seatIds"] == ["Z99"]


def test_unknown_failure_code_defaults_to_409():
    message = reservation_message(failed("something_else", "odd"))
    status, body = reservation_result(message)
    assert status == 409 and body["code"] == "something_else"


# --- the message envelope --------------------------------------------------------------------------------

def test_envelope_encodes_contract_fields():
    m = Message("seat.reservation.requested", DEMO_EVENT_ID, {"userId": "u", "seatIds": ["A1"]}, "req_1")
    body = orjson.loads(m.encode())
    assert set(body) == {"id", "type", "version", "occurredAt", "eventId", "requestId", "data"}
    assert body["type"] == "seat.reservation.requested"
    assert body["version"] == 1
    assert body["eventId"] == DEMO_EVENT_ID
    assert body["requestId"] == "req_1"
    assert body["data"] == {"userId": "u", "seatIds": ["A1"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["occurredAt"])
    assert m.key == DEMO_EVENT_ID.encode()


def test_envelope_round_trip_preserves_every_field():
    m = Message("booking.confirmed", "jazz_night", {"bookingId": "bk_9", "amount": 45.0}, "req_9",
                id="11111111-2222-3333-4444-555555555555", occurred_at="2027-01-01T00:00:00.000Z", version=3)
    assert decode(m.encode()) == m


def test_envelope_without_request_id_round_trips_as_none():
    m = Message("seat.released", "jazz_night", {"x": 1})
    assert decode(m.encode()).request_id is None


def test_decode_missing_optional_fields_uses_defaults():
    raw = orjson.dumps({"id": "i", "type": "t", "occurredAt": "o", "eventId": "e"})
    m = decode(raw)
    assert (m.data, m.request_id, m.version) == ({}, None, 1)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2, 3]",
        b"42",
        b'"a string"',
        b"null",
        b'{"type": "seat.reserved"}',
        orjson.dumps({"id": "i", "type": "t", "occurredAt": "o"}),  # no eventId
    ],
)
def test_decode_garbage_raises_malformed_message(raw):
    with pytest.raises(MalformedMessage):
        decode(raw)


# --- reserve_command -------------------------------------------------------------------------------------

def request(data: dict, request_id: str | None = "req_1") -> Message:
    return Message(messages.SEAT_RESERVATION_REQUESTED, DEMO_EVENT_ID, data, request_id)


def test_reserve_command_from_well_formed_request():
    command = reserve_command(request({"userId": "user_1", "seatIds": ["A1", "A2"], "bodyHash": "abc"}))
    assert command == ReserveSeats("req_1", DEMO_EVENT_ID, "user_1", ["A1", "A2"], "abc")


def test_reserve_command_without_body_hash_uses_empty_string():
    command = reserve_command(request({"userId": "user_1", "seatIds": ["A1"]}))
    assert command is not None and command.body_hash == ""


@pytest.mark.parametrize(
    ("data", "request_id"),
    [
        ({"seatIds": ["A1"]}, "req_1"),                        # missing userId
        ({"userId": 7, "seatIds": ["A1"]}, "req_1"),           # non-string userId
        ({"userId": None, "seatIds": ["A1"]}, "req_1"),
        ({"userId": "user_1", "seatIds": []}, "req_1"),        # empty seatIds
        ({"userId": "user_1"}, "req_1"),                       # missing seatIds
        ({"userId": "user_1", "seatIds": "A1"}, "req_1"),      # not a list
        ({"userId": "user_1", "seatIds": ["A1", 2]}, "req_1"),  # non-string seat
        ({"userId": "user_1", "seatIds": [None]}, "req_1"),
        ({"userId": "user_1", "seatIds": [["A1"]]}, "req_1"),
        ({"userId": "user_1", "seatIds": ["A1"]}, None),       # missing requestId
        ({"userId": "user_1", "seatIds": ["A1"]}, ""),         # empty requestId
    ],
)
def test_reserve_command_rejects_malformed_requests(data, request_id):
    assert reserve_command(request(data, request_id)) is None


# --- request ids -----------------------------------------------------------------------------------------

def test_new_ids_are_well_formed_unique_and_recognised():
    ids = RequestIds(KEY)
    issued = [ids.new() for _ in range(50)]
    assert len(set(issued)) == 50
    for rid in issued:
        assert re.fullmatch(r"req_[0-9a-f]{48}", rid)
        assert ids.issued_here(rid)


def test_id_from_another_key_is_not_recognised():
    rid = RequestIds(OTHER_KEY).new()
    assert RequestIds(OTHER_KEY).issued_here(rid)
    assert not RequestIds(KEY).issued_here(rid)


def test_a_new_instance_with_the_same_key_recognises_ids():
    assert RequestIds(KEY).issued_here(RequestIds(KEY).new())


@pytest.mark.parametrize("position", [4, 20, 35, 36, 51])
def test_tampered_id_is_not_recognised(position):
    ids = RequestIds(KEY)
    rid = ids.new()
    flipped = "0" if rid[position] != "0" else "1"
    tampered = rid[:position] + flipped + rid[position + 1:]
    assert tampered != rid
    assert not ids.issued_here(tampered)


@pytest.mark.parametrize(
    "rid",
    ["", "req_", "req_123", "bogus", "REQ_" + "0" * 48, "req_" + "g" * 48, "req_" + "0" * 49, "req_" + "0" * 47],
)
def test_malformed_ids_are_not_recognised(rid):
    assert not RequestIds(KEY).issued_here(rid)


def test_uppercased_id_is_not_recognised():
    ids = RequestIds(KEY)
    rid = ids.new()
    assert not ids.issued_here("req_" + rid[4:].upper())


def test_idempotency_ids_are_deterministic_per_user_and_key():
    ids = RequestIds(KEY)
    a = ids.for_idempotency_key("user_1", "key-1")
    assert a == ids.for_idempotency_key("user_1", "key-1")
    assert a == RequestIds(KEY).for_idempotency_key("user_1", "key-1")
    assert ids.issued_here(a)
    assert re.fullmatch(r"req_[0-9a-f]{48}", a)
    assert a != ids.for_idempotency_key("user_2", "key-1")
    assert a != ids.for_idempotency_key("user_1", "key-2")


def test_idempotency_ids_do_not_collide_across_user_key_boundary():
    ids = RequestIds(KEY)
    assert ids.for_idempotency_key("user_1", "2key") != ids.for_idempotency_key("user_12", "key")


def test_idempotency_ids_depend_on_the_server_key():
    assert RequestIds(KEY).for_idempotency_key("u", "k") != RequestIds(OTHER_KEY).for_idempotency_key("u", "k")
    assert not RequestIds(KEY).issued_here(RequestIds(OTHER_KEY).for_idempotency_key("u", "k"))


# --- catalog ---------------------------------------------------------------------------------------------

def test_row_labels_go_past_z_like_venues():
    labels = row_labels(28)
    assert labels[:26] == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    assert labels[26:] == ["AA", "AB"]
    assert row_labels(0) == []
    assert row_labels(26 + 26 * 26 + 1)[-1] == "AAA"
    assert row_labels(53)[-1] == "BA"


def test_demo_concert_seat_map():
    concert = next(e for e in demo_events() if e.event_id == DEMO_EVENT_ID == "taylor_swift_concert")
    seats = concert.seats()
    assert len(seats) >= 500
    by_id = {s.seat_id: s for s in seats}
    assert len(by_id) == len(seats)  # seat ids are unique
    assert by_id["A1"].price == Decimal("150.00")
    assert by_id["A1"].category_id == "floor"
    assert len({s.price for s in seats}) >= 2
    assert len({c.category_id for c in concert.categories}) >= 2
    assert [s.position for s in seats] == list(range(len(seats)))
    assert concert.currency == "USD"


def test_demo_events_have_unique_ids_and_priced_seats():
    specs = demo_events()
    assert len({e.event_id for e in specs}) == len(specs)
    for spec in specs:
        categories = {c.category_id: c.price for c in spec.categories}
        for s in spec.seats():
            assert s.price == categories[s.category_id] > 0
