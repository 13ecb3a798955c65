"""The booking service's handlers over an in-memory unit of work: who gets the seats, what the booking
says, what goes to the outbox and when it reaches the relay."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.domain.model import BookingStatus, SeatStatus
from boxoffice.messages import Message, decode
from boxoffice.service_layer.booking import TOPIC_HANDLERS, BookingService
from boxoffice.service_layer.booking_ports import ConcurrentHoldDetected
from boxoffice.service_layer.decisions import AdmissionCheck, BookingRules
from boxoffice.service_layer.ports import OutboxRow
from tests.conftest import small_event
from tests.fake_booking import BookingTables, FakeBookingUnitOfWork
from tests.fakes import FakeProvider

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOLD = timedelta(minutes=10)
EVENT = small_event("ev_unit", rows=2)  # A1-A10 at 150.00, B1-B10 at 20.00


class Relay:
    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        self.rows += rows

    def messages(self) -> list[Message]:
        return [decode(r.payload) for r in self.rows]

    def take(self) -> list[Message]:
        taken = self.messages()
        self.rows.clear()
        return taken


class Platform:
    """A booking service over fresh in-memory tables, with a clock the test moves."""

    def __init__(self, rules: BookingRules | None = None, admissions: AdmissionCheck | None = None,
                 cards: FakeProvider | None = None, holds: Deadlines | None = None) -> None:
        self.tables = BookingTables()
        self.tables.add_event(EVENT)
        self.relay = Relay()
        self.now = NOW
        self.units: list[FakeBookingUnitOfWork] = []
        self.service = BookingService(self._unit, self.relay, rules or BookingRules(HOLD, 10), lambda: self.now,
                                      admissions=admissions, cards=cards, holds=holds)

    def _unit(self) -> FakeBookingUnitOfWork:
        self.units.append(FakeBookingUnitOfWork(self.tables))
        return self.units[-1]

    async def handle(self, *batch: Message) -> list[Message]:
        """As the platform hands them on: a payment or refund outcome only after the payment service recorded it."""
        self.tables.record_outcomes(list(batch))
        return await self.handle_forged(*batch)

    async def handle_forged(self, *batch: Message) -> list[Message]:
        """Written to Kafka by someone else than the payment service: nothing recorded them."""
        await self.service(list(batch))
        return self.relay.take()

    def seat(self, seat_id: str) -> SeatStatus:
        return self.tables.seats[(EVENT.event_id, seat_id)].status

    def booking(self, booking_id: str) -> BookingStatus:
        return self.tables.bookings[booking_id].status


def hold_request(user: str, *seats: str, request_id: str | None = None, event_id: str = EVENT.event_id) -> Message:
    return Message(topics.SEAT_RESERVATION_REQUESTED, event_id,
                   {"userId": user, "seatIds": list(seats), "email": f"{user}@example.com"},
                   request_id or f"req-{uuid.uuid4()}")


def on_booking(topic: str, booking_id: str, **data: object) -> Message:
    return Message(topic, EVENT.event_id, {"bookingId": booking_id, **data}, f"req-{uuid.uuid4()}")


async def held(platform: Platform, *seats: str, user: str = "fan") -> str:
    [reserved] = await platform.handle(hold_request(user, *seats))
    assert reserved.type == topics.SEAT_RESERVED
    return str(reserved.data["bookingId"])


async def paying(platform: Platform, booking_id: str, amount: float = 150.0) -> None:
    [asked] = await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id,
                                               paymentId="pay_1", amount=amount, card="4242424242424242"))
    assert asked.type == topics.PAYMENT_REQUESTED


def test_every_booking_topic_has_a_handler_and_the_payment_topics_a_fallback_too() -> None:
    assert set(TOPIC_HANDLERS) == {
        topics.SEAT_RESERVATION_REQUESTED, topics.SEAT_RESERVATION_TIMEOUT, topics.BOOKING_CONFIRMATION_REQUESTED,
        topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED, topics.BOOKING_CANCELLATION_REQUESTED,
        topics.WAITLIST_JOIN_REQUESTED, topics.WAITLIST_LEAVE_REQUESTED, topics.EVENT_CANCELLATION_REQUESTED,
        topics.REFUND_SUCCEEDED, topics.REFUND_FAILED}
    assert all(route.batch is not None or route.each is not None for route in TOPIC_HANDLERS.values())
    assert {t for t, route in TOPIC_HANDLERS.items() if route.batch is not None and route.each is not None} == {
        topics.BOOKING_CONFIRMATION_REQUESTED, topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED}


async def test_three_buyers_of_one_seat_in_one_batch_first_one_wins() -> None:
    platform = Platform()
    out = await platform.handle(hold_request("u1", "A1"), hold_request("u2", "A1"), hold_request("u3", "A1", "A2"))

    assert [(m.type, m.data["userId"]) for m in out] == [
        (topics.SEAT_RESERVED, "u1"), (topics.SEAT_RESERVATION_FAILED, "u2"), (topics.SEAT_RESERVATION_FAILED, "u3")]
    assert out[1].data["code"] == "seat_unavailable" and out[2].data["seatIds"] == ["A1"]
    assert out[0].data["seq"] == 1 and "seq" not in out[1].data
    booking_id = str(out[0].data["bookingId"])
    assert platform.seat("A1") is SeatStatus.RESERVED and platform.seat("A2") is SeatStatus.AVAILABLE
    booking = platform.tables.bookings[booking_id]
    assert (booking.user_id, booking.amount, booking.expires_at, booking.email) == (
        "u1", Decimal("150.00"), NOW + HOLD, "u1@example.com")
    assert len(platform.units) == 1  # one transaction for the batch


async def test_a_redelivered_request_gets_its_first_answer_again_and_nothing_twice() -> None:
    platform = Platform()
    first = await platform.handle(hold_request("u1", "A1", request_id="req-once"))
    again = await platform.handle(hold_request("u1", "A1", request_id="req-once"),
                                  hold_request("u1", "A1", request_id="req-once"))

    assert [(m.id, m.data) for m in again] == [(m.id, m.data) for m in first]
    assert len(platform.tables.bookings) == 1 and platform.tables.change_seq[EVENT.event_id] == 1


async def test_refusals_name_what_was_wrong_and_hold_nothing() -> None:
    platform = Platform(BookingRules(HOLD, max_seats_per_booking=2))
    out = await platform.handle(hold_request("u", "A1", "A2", "A3"), hold_request("u", "A1", "Z9"),
                                hold_request("u", "A1", event_id="no_such_event"))

    assert [m.data["code"] for m in out] == ["invalid_request", "seat_not_found", "event_not_found"]
    assert out[0].data["reason"] == "A booking needs 1 to 2 different seats"
    assert out[1].data["seatIds"] == ["Z9"]
    assert platform.tables.bookings == {} and platform.seat("A1") is SeatStatus.AVAILABLE


async def test_without_a_waiting_room_nobody_holds_before_the_on_sales_opening() -> None:
    platform = Platform()
    platform.tables.openings[EVENT.event_id] = NOW + timedelta(minutes=5)  # onSale {"waitingRoom": false}
    [early] = await platform.handle(hold_request("early", "A1"))
    assert (early.type, early.data["code"]) == (topics.SEAT_RESERVATION_FAILED, "sale_not_open")
    assert "opens at" in early.data["reason"] and platform.seat("A1") is SeatStatus.AVAILABLE
    platform.now = NOW + timedelta(minutes=5)
    [on_time] = await platform.handle(hold_request("on_time", "A1"))
    assert on_time.type == topics.SEAT_RESERVED and platform.seat("A1") is SeatStatus.RESERVED


async def test_the_per_buyer_cap_counts_what_the_buyer_already_holds() -> None:
    platform = Platform(BookingRules(HOLD, 10, seats_per_user=3))
    await held(platform, "A1", "A2", user="fan")
    out = await platform.handle(hold_request("fan", "A3", "A4"), hold_request("fan", "A3"),
                                hold_request("other", "A4", "A5"))

    assert [m.data.get("code") for m in out] == ["seat_limit_reached", None, None]


async def test_a_malformed_request_is_dropped_and_the_rest_decided() -> None:
    platform = Platform()
    bad = Message(topics.SEAT_RESERVATION_REQUESTED, EVENT.event_id, {"userId": 7, "seatIds": "A1"}, "req-bad")
    out = await platform.handle(bad, hold_request("u", "A1"))

    assert [m.type for m in out] == [topics.SEAT_RESERVED]


async def test_a_seat_taken_under_the_lock_rolls_the_whole_batch_back() -> None:
    """The database's guard, not the domain, refuses: nothing of the batch is kept or published."""
    platform = Platform()
    taken = platform.tables.seats[(EVENT.event_id, "A2")]
    original_lock = FakeBookingUnitOfWork.__aenter__

    async def stale_lock(self: FakeBookingUnitOfWork) -> FakeBookingUnitOfWork:
        unit = await original_lock(self)
        lock = unit.seats.lock

        async def lock_then_lose_a2(event_ids: list[str], seats: list[tuple[str, str]]):
            maps = await lock(event_ids, seats)
            self._work.seats[(EVENT.event_id, "A2")].status = SeatStatus.BOOKED
            return maps

        unit.seats.lock = lock_then_lose_a2  # type: ignore[method-assign]
        return unit

    FakeBookingUnitOfWork.__aenter__ = stale_lock  # type: ignore[method-assign]
    try:
        with pytest.raises(ConcurrentHoldDetected):
            await platform.handle(hold_request("u1", "A1"), hold_request("u2", "A2"))
    finally:
        FakeBookingUnitOfWork.__aenter__ = original_lock  # type: ignore[method-assign]

    assert platform.relay.rows == [] and platform.tables.bookings == {} and platform.tables.requests == {}
    assert taken.status is SeatStatus.AVAILABLE and platform.seat("A1") is SeatStatus.AVAILABLE


async def test_pay_then_confirm_books_the_seats_once() -> None:
    platform = Platform()
    booking_id = await held(platform, "A1")
    [asked] = await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id,
                                               paymentId="pay_1", amount=150.0, cardToken="tok_1",
                                               cardLast4="4242"))
    # The card goes on as the gateway passed it: the provider's token, no number.
    assert (asked.type, asked.data["amount"]) == (topics.PAYMENT_REQUESTED, 150.0)
    assert (asked.data["cardToken"], asked.data["cardLast4"], "card" in asked.data) == ("tok_1", "4242", False)
    assert platform.booking(booking_id) is BookingStatus.PAYING

    [confirmed] = await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_1"))
    assert confirmed.type == topics.BOOKING_CONFIRMED and confirmed.data["email"] == "fan@example.com"
    assert confirmed.data["seq"] == 2
    assert platform.booking(booking_id) is BookingStatus.CONFIRMED and platform.seat("A1") is SeatStatus.BOOKED

    assert await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_1")) == []
    # The same payment asked for again: its first answer stands, nothing is charged twice.
    assert await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id,
                                            paymentId="pay_1", amount=150.0)) == []


async def test_a_confirmation_from_before_tokens_goes_on_with_a_token_not_the_number() -> None:
    """A booking.confirmation.requested still naming the number (sent before the upgrade): the booking service
    tokenises it, so that payment.requested carries no number."""
    provider = FakeProvider()
    platform = Platform(cards=provider)
    booking_id = await held(platform, "A1")
    [asked] = await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id,
                                               paymentId="pay_1", amount=150.0, card="4000000000000002"))
    assert "card" not in asked.data and asked.data["cardLast4"] == "0002"
    assert provider.cards[asked.data["cardToken"]] == "4000000000000002"


async def test_a_declined_payment_releases_the_seats_and_says_why() -> None:
    platform = Platform()
    booking_id = await held(platform, "A1")
    await paying(platform, booking_id)
    out = await platform.handle(on_booking(topics.PAYMENT_FAILED, booking_id, paymentId="pay_1",
                                           declineCode="card_declined", reason="Your card was declined"))

    assert [m.type for m in out] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert out[0].data["reason"] == "payment_failed" and out[1].data["declineCode"] == "card_declined"
    assert platform.booking(booking_id) is BookingStatus.PAYMENT_FAILED and platform.seat("A1") is SeatStatus.AVAILABLE


async def test_an_outcome_for_another_payment_changes_nothing() -> None:
    platform = Platform()
    booking_id = await held(platform, "A1")
    await paying(platform, booking_id)
    assert await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_other")) == []
    assert platform.booking(booking_id) is BookingStatus.PAYING


@pytest.mark.parametrize("amount, code", [(149.99, "amount_mismatch"), ("abc", "invalid_request")])
async def test_a_wrong_amount_is_refused_and_the_hold_kept(amount: object, code: str) -> None:
    platform = Platform()
    booking_id = await held(platform, "A1")
    [refused] = await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id,
                                                 paymentId="p", amount=amount))
    assert (refused.type, refused.data["command"], refused.data["code"]) == (
        topics.BOOKING_COMMAND_REJECTED, "confirm", code)
    assert platform.booking(booking_id) is BookingStatus.PENDING


async def test_cancel_releases_a_pending_booking_and_refunds_a_confirmed_one() -> None:
    platform = Platform()
    pending = await held(platform, "A1")
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, pending))
    assert [m.type for m in out] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert out[1].data["status"] == "cancelled" and platform.tables.end_reasons[pending] == "cancelled"
    assert platform.seat("A1") is SeatStatus.AVAILABLE

    confirmed = await held(platform, "A2")
    await paying(platform, confirmed)
    await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, confirmed, paymentId="pay_1"))
    [refused] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, confirmed))
    assert refused.data["code"] == "booking_already_confirmed"  # a cancel of the hold, overtaken by its payment
    [asked] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, confirmed, refund=True))
    assert asked.type == topics.REFUND_REQUESTED and platform.seat("A2") is SeatStatus.BOOKED


async def test_commands_for_unknown_bookings_are_answered_other_messages_are_not() -> None:
    platform = Platform()
    unknown = str(uuid.uuid4())
    out = await platform.handle(
        on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, unknown, paymentId="p", amount=1.0),
        on_booking(topics.PAYMENT_SUCCEEDED, unknown, paymentId="p"),
        on_booking(topics.BOOKING_CANCELLATION_REQUESTED, "not-a-uuid"))

    assert [(m.type, m.data["code"]) for m in out] == [(topics.BOOKING_COMMAND_REJECTED, "booking_not_found")]


async def test_timeouts_expire_only_pending_holds_that_are_due() -> None:
    platform = Platform()
    due = await held(platform, "A1")
    paid = await held(platform, "A2")
    await paying(platform, paid)
    platform.now = NOW + HOLD - timedelta(seconds=1)
    early = Message(topics.SEAT_RESERVATION_TIMEOUT, EVENT.event_id, {"bookingId": due})
    assert await platform.handle(early) == []

    platform.now = NOW + HOLD
    out = await platform.handle(*(Message(topics.SEAT_RESERVATION_TIMEOUT, EVENT.event_id, {"bookingId": b})
                                  for b in (due, paid, "not-a-uuid", due)))
    assert [(m.type, m.data["bookingId"]) for m in out] == [(topics.SEAT_RELEASED, due),
                                                             (topics.BOOKING_CANCELLED, due)]
    assert out[0].data["reason"] == "timeout"
    assert platform.booking(due) is BookingStatus.EXPIRED and platform.seat("A1") is SeatStatus.AVAILABLE
    assert platform.booking(paid) is BookingStatus.PAYING and platform.seat("A2") is SeatStatus.RESERVED

    [late] = await platform.handle(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, due, paymentId="p",
                                              amount=150.0))
    assert late.data["code"] == "booking_expired"


async def test_a_payment_asked_for_before_the_deadline_is_taken_if_it_arrives_while_the_hold_is_still_there() -> None:
    """Held up in a queue or by an outage, it is judged by when the buyer asked; one asked too late is refused."""
    platform = Platform()
    in_time, too_late = await held(platform, "A1"), await held(platform, "A2")
    platform.now = NOW + HOLD + timedelta(seconds=6)  # the booking service is back after the deadline

    def confirming(booking_id: str, asked_at: datetime) -> Message:
        asked = on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id, paymentId="p", amount=150.0)
        return Message(asked.type, asked.event_id, asked.data, asked.request_id,
                       occurred_at=asked_at.isoformat().replace("+00:00", "Z"))

    [taken] = await platform.handle(confirming(in_time, NOW + HOLD - timedelta(seconds=1)))
    assert taken.type == topics.PAYMENT_REQUESTED and platform.booking(in_time) is BookingStatus.PAYING
    [refused] = await platform.handle(confirming(too_late, NOW + HOLD + timedelta(seconds=1)))
    assert refused.data["code"] == "booking_expired" and platform.booking(too_late) is BookingStatus.PENDING
    # A time in the future counts as now.
    [future] = await platform.handle(confirming(too_late, NOW + HOLD * 10))
    assert future.data["code"] == "booking_expired"


async def test_a_booking_out_of_step_with_its_seats_is_skipped_and_the_rest_of_the_run_applied() -> None:
    platform = Platform()
    broken, fine = await held(platform, "A1"), await held(platform, "A2")
    platform.tables.seats[(EVENT.event_id, "A1")].booking_id = "someone-else"
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, broken),
                                on_booking(topics.BOOKING_CANCELLATION_REQUESTED, fine))

    assert [(m.type, m.data["bookingId"]) for m in out] == [(topics.SEAT_RELEASED, fine),
                                                             (topics.BOOKING_CANCELLED, fine)]
    assert platform.booking(broken) is BookingStatus.PENDING and platform.booking(fine) is BookingStatus.CANCELLED
    assert len(platform.units) == 3  # two holds, then one transaction for both cancellations


async def test_runs_keep_partition_order_and_decisions_are_counted_once_committed() -> None:
    platform = Platform()
    booking_id = await held(platform, "A1")
    granted, cancelled = metrics.HOLDS_GRANTED.values.get((), 0), metrics.BOOKINGS_CANCELLED.values.get((), 0)
    out = await platform.handle(hold_request("u2", "A1"), on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id),
                                hold_request("u3", "A1"))

    assert [(m.type, m.data.get("userId")) for m in out] == [
        (topics.SEAT_RESERVATION_FAILED, "u2"), (topics.SEAT_RELEASED, "fan"), (topics.BOOKING_CANCELLED, "fan"),
        (topics.SEAT_RESERVED, "u3")]
    assert [m.data.get("seq") for m in out] == [None, 2, None, 3]
    assert metrics.HOLDS_GRANTED.values.get((), 0) == granted + 1
    assert metrics.BOOKINGS_CANCELLED.values.get((), 0) == cancelled + 1


# -- best available (CONTRACT §8.2) -----------------------------------------------------------------------------

def best_request(user: str, quantity: int, category_id: str | None = None, request_id: str | None = None,
                 event_id: str = EVENT.event_id) -> Message:
    data: dict[str, object] = {"userId": user, "quantity": quantity}
    if category_id is not None:
        data["categoryId"] = category_id
    return Message(topics.SEAT_RESERVATION_REQUESTED, event_id, data, request_id or f"req-{uuid.uuid4()}")


async def test_a_batch_mixing_picked_and_best_available_is_decided_in_its_order() -> None:
    platform = Platform()
    out = await platform.handle(
        hold_request("picker", "A2"),  # taken first: best available must go round it
        best_request("ann", 2),
        best_request("bob", 3, "cheap"),
        hold_request("late", "A3"),  # ann got A3 (A2 taken → A3+A4), so this one loses
        best_request("cy", 8, "std"),  # A1, A5..A10 left: 7 seats
        best_request("dee", 6, "std"))
    assert [(m.type, m.data["userId"]) for m in out] == [
        (topics.SEAT_RESERVED, "picker"), (topics.SEAT_RESERVED, "ann"), (topics.SEAT_RESERVED, "bob"),
        (topics.SEAT_RESERVATION_FAILED, "late"), (topics.SEAT_RESERVATION_FAILED, "cy"),
        (topics.SEAT_RESERVED, "dee")]
    assert out[1].data["seatIds"] == ["A3", "A4"] and out[1].data["amount"] == 300.0
    assert out[2].data["seatIds"] == ["B1", "B2", "B3"]
    assert out[4].data["code"] == "sold_out" and out[4].data["seatIds"] == []
    assert out[5].data["seatIds"] == ["A5", "A6", "A7", "A8", "A9", "A10"]
    assert [m.data["seq"] for m in out if m.type == topics.SEAT_RESERVED] == [1, 2, 3, 4]
    assert platform.seat("A4") is SeatStatus.RESERVED and platform.seat("A1") is SeatStatus.AVAILABLE
    assert len(platform.units) == 1


async def test_seats_released_elsewhere_are_offered_again_and_seats_taken_elsewhere_are_not() -> None:
    platform = Platform()
    [first] = await platform.handle(best_request("ann", 10, "std"))
    assert first.data["seatIds"] == [f"A{n}" for n in range(1, 11)]
    await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, str(first.data["bookingId"])))
    # Another process (or a stale copy) took A1 and A2 behind this one's back: the change number says so.
    for seat_id in ("A1", "A2"):
        platform.tables.seats[(EVENT.event_id, seat_id)].status = SeatStatus.BOOKED
    platform.tables.change_seq[EVENT.event_id] += 1
    [again] = await platform.handle(best_request("bob", 2, "std"))
    assert again.data["seatIds"] == ["A3", "A4"]


async def test_a_seat_a_stale_seating_offers_is_refused_by_the_store_and_the_batch_is_decided_again() -> None:
    platform = Platform()
    await platform.handle(best_request("ann", 1, "std"))  # the service now keeps the event's seating
    platform.tables.seats[(EVENT.event_id, "A2")].status = SeatStatus.RESERVED  # changed without a number
    [out] = await platform.handle(best_request("bob", 2, "std"))
    assert out.type == topics.SEAT_RESERVED and out.data["seatIds"] == ["A3", "A4"]
    assert len(platform.units) == 3  # the refused attempt, then the one decided afresh


async def test_a_kept_seating_is_not_read_again_while_its_numbers_follow_on() -> None:
    platform = Platform()
    for user in ("a", "b", "c"):
        await platform.handle(best_request(user, 2, "std"), hold_request(f"{user}-picker", f"B{ord(user) - 96}"))
    assert platform.service.seatings.reads == 1
    assert platform.tables.change_seq[EVENT.event_id] == 6


async def test_an_unknown_section_or_category_is_refused_by_name_and_holds_nothing() -> None:
    platform = Platform()
    section = Message(topics.SEAT_RESERVATION_REQUESTED, EVENT.event_id,
                      {"userId": "u", "quantity": 2, "section": "nope"}, "req-section")
    [no_section, no_category] = await platform.handle(section, best_request("u", 2, "nope"))
    assert (no_section.type, no_section.data["code"]) == (topics.SEAT_RESERVATION_FAILED, "section_not_found")
    assert "section nope" in no_section.data["reason"]
    assert (no_category.type, no_category.data["code"]) == (topics.SEAT_RESERVATION_FAILED, "category_not_found")
    assert platform.tables.bookings == {}


async def test_a_malformed_best_available_request_is_dropped() -> None:
    platform = Platform()
    bad = Message(topics.SEAT_RESERVATION_REQUESTED, EVENT.event_id,
                  {"userId": "u", "quantity": 2, "seatIds": ["A1"]}, "req-bad")
    assert await platform.handle(bad, best_request("u", True)) == []  # type: ignore[arg-type]
    assert platform.tables.bookings == {}


# -- the waiting list (CONTRACT §8.3) ---------------------------------------------------------------------------

def join_request(user: str, quantity: int, waitlist_id: str | None = None,
                 request_id: str | None = None) -> Message:
    return Message(topics.WAITLIST_JOIN_REQUESTED, EVENT.event_id,
                   {"waitlistId": waitlist_id or str(uuid.uuid4()), "userId": user, "quantity": quantity,
                    "email": f"{user}@example.com"}, request_id or f"req-{uuid.uuid4()}")


async def joined(platform: Platform, user: str, quantity: int) -> Message:
    [entry] = await platform.handle(join_request(user, quantity))
    assert entry.type == topics.WAITLIST_UPDATED and entry.data["status"] == "waiting"
    return entry


async def sold_out(platform: Platform) -> dict[str, str]:
    """Every seat held, two seats a booking: the booking ids by their first seat."""
    bookings = {}
    for row in "AB":
        for n in range(1, 11, 2):
            bookings[f"{row}{n}"] = await held(platform, f"{row}{n}", f"{row}{n + 1}", user=f"buyer-{row}{n}")
    return bookings


async def test_entries_join_in_order_and_joining_again_keeps_the_place() -> None:
    platform = Platform()
    first = await joined(platform, "ann", 2)
    second = await joined(platform, "bob", 1)
    again = await joined(platform, "ann", 4)
    assert (first.data["position"], second.data["position"]) == (1, 2)
    assert first.data["joined"] is True and again.data["joined"] is False
    assert again.data["waitlistId"] == first.data["waitlistId"] and again.data["quantity"] == 2
    # A redelivered join answers what it answered the first time.
    message = join_request("cy", 1, request_id="req-cy")
    [once] = await platform.handle(message)
    [twice] = await platform.handle(message)
    assert once.data == {**twice.data} and len(platform.tables.waitlist) == 3


async def test_an_entry_for_more_seats_than_a_row_holds_together_is_refused_and_stores_nothing() -> None:
    # Found from outside: an entry for five seats of a four-seat event was made, and could never be offered any.
    platform = Platform()  # rows of ten seats
    message = join_request("big", 11, request_id="req-big")
    [refused] = await platform.handle(message)
    assert refused.type == topics.WAITLIST_UPDATED and refused.request_id == "req-big"
    assert (refused.data["code"], refused.data["joined"]) == ("too_many_seats", False)
    assert refused.data["reason"] == ("Event ev_unit has at most 10 seats together in one row: a waiting list "
                                      "entry for 11 could never be offered seats")
    assert platform.tables.waitlist == {}
    [again] = await platform.handle(message)  # redelivered: the same answer
    assert again.data == refused.data and platform.tables.waitlist == {}
    whole_row = await joined(platform, "big", 10)
    assert whole_row.data["position"] == 1 and len(platform.tables.waitlist) == 1


async def test_released_seats_go_to_the_first_entry_that_fits_and_never_to_the_crowd() -> None:
    platform = Platform()
    bookings = await sold_out(platform)
    big = await joined(platform, "big", 3)  # two seats come free: three do not fit
    small = await joined(platform, "small", 2)
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A3"]),
                                hold_request("crowd", "A3"))
    kinds = [(m.type, m.data.get("status")) for m in out]
    assert kinds == [(topics.SEAT_RELEASED, None), (topics.BOOKING_CANCELLED, "cancelled"),
                     (topics.SEAT_RESERVED, "pending"), (topics.WAITLIST_UPDATED, "offered"),
                     (topics.SEAT_RESERVATION_FAILED, None)]
    offer = out[2].data
    assert offer["userId"] == "small" and offer["seatIds"] == ["A3", "A4"] and out[3].data["bookingId"] == offer[
        "bookingId"]
    assert out[3].data["waitlistId"] == small.data["waitlistId"] and out[3].data["expiresAt"]
    assert [m.data["seq"] for m in out if "seq" in m.data] == [11, 12]  # released then offered, in one commit
    assert platform.seat("A3") is SeatStatus.RESERVED
    assert platform.tables.bookings[str(offer["bookingId"])].status is BookingStatus.PENDING
    assert platform.tables.waitlist[str(big.data["waitlistId"])].status.value == "waiting"


async def test_an_offer_that_runs_out_goes_to_the_next_entry() -> None:
    platform = Platform()
    bookings = await sold_out(platform)
    first = await joined(platform, "first", 2)
    second = await joined(platform, "second", 2)
    [*_, offered] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["B5"]))
    assert offered.data["waitlistId"] == first.data["waitlistId"]
    platform.now += HOLD
    out = await platform.handle(on_booking(topics.SEAT_RESERVATION_TIMEOUT, str(offered.data["bookingId"])))
    updates = {m.data["waitlistId"]: m.data for m in out if m.type == topics.WAITLIST_UPDATED}
    assert updates[first.data["waitlistId"]]["status"] == "expired"
    assert updates[second.data["waitlistId"]]["status"] == "offered"
    assert updates[second.data["waitlistId"]]["seatIds"] == ["B5", "B6"]


async def test_a_buyer_holding_an_offer_who_joins_again_keeps_the_entry_and_gets_no_second_offer() -> None:
    # Found from outside: the second join made a new entry, and the next release a second offer of seats.
    platform = Platform()
    bookings = await sold_out(platform)
    first = await joined(platform, "fan", 2)
    [*_, offered] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A1"]))
    assert offered.data["status"] == "offered"
    [again] = await platform.handle(join_request("fan", 2))
    assert again.data["waitlistId"] == first.data["waitlistId"] and again.data["joined"] is False
    assert again.data["status"] == "offered"
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A3"]))
    assert not [m for m in out if m.type == topics.SEAT_RESERVED]
    assert len(platform.tables.waitlist) == 1
    assert len([b for b in platform.tables.bookings.values() if b.user_id == "fan"]) == 1


async def singles_then_pairs(platform: Platform) -> dict[str, str]:
    """Every seat held: A1 and A2 one seat a booking, the rest two a booking; the booking ids by first seat."""
    bookings = {"A1": await held(platform, "A1", user="one"), "A2": await held(platform, "A2", user="two")}
    for row, first in (("A", 3), ("B", 1)):
        for n in range(first, 11, 2):
            bookings[f"{row}{n}"] = await held(platform, f"{row}{n}", f"{row}{n + 1}", user=f"buyer-{row}{n}")
    return bookings


async def test_two_single_seats_released_one_after_the_other_make_the_pair_a_waiting_entry_is_offered() -> None:
    platform = Platform()
    bookings = await singles_then_pairs(platform)
    pair = await joined(platform, "pair", 2)
    first = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A1"]))
    assert [m.type for m in first] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]  # one seat: no pair yet
    assert platform.seat("A1") is SeatStatus.AVAILABLE
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A2"]),
                                best_request("stranger", 2))
    assert [(m.type, m.data.get("status")) for m in out] == [
        (topics.SEAT_RELEASED, None), (topics.BOOKING_CANCELLED, "cancelled"), (topics.SEAT_RESERVED, "pending"),
        (topics.WAITLIST_UPDATED, "offered"), (topics.SEAT_RESERVATION_FAILED, None)]
    assert out[2].data["userId"] == "pair" and out[2].data["seatIds"] == ["A1", "A2"]
    assert out[3].data["waitlistId"] == pair.data["waitlistId"] and out[3].data["bookingId"] == out[2].data[
        "bookingId"]
    assert out[4].data["userId"] == "stranger" and out[4].data["code"] == "sold_out"
    assert platform.seat("A1") is SeatStatus.RESERVED and platform.seat("A2") is SeatStatus.RESERVED
    offers = [b for b in platform.tables.bookings.values() if b.user_id == "pair"]
    assert [(b.seat_ids, b.status) for b in offers] == [(["A1", "A2"], BookingStatus.PENDING)]


async def test_a_free_seat_someone_held_meanwhile_is_never_offered() -> None:
    platform = Platform()
    bookings = await singles_then_pairs(platform)
    await joined(platform, "pair", 2)
    await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A1"]))
    crowd = await held(platform, "A1", user="crowd")  # the free seat, picked by hand
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A2"]))
    assert [m.type for m in out] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert platform.tables.bookings[crowd].seat_ids == ["A1"] and platform.seat("A1") is SeatStatus.RESERVED
    [best] = await platform.handle(best_request("best", 1))  # the free seat, taken best-available
    assert best.data["seatIds"] == ["A2"]
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A3"]))
    assert [m.data["seatIds"] for m in out if m.type == topics.SEAT_RESERVED] == [["A3", "A4"]]
    assert all(b.user_id != "pair" or b.seat_ids == ["A3", "A4"] for b in platform.tables.bookings.values())


async def test_seats_released_in_one_run_are_offered_once() -> None:
    platform = Platform()
    bookings = await singles_then_pairs(platform)
    pair = await joined(platform, "pair", 2)
    later = await joined(platform, "later", 2)
    out = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A1"]),
                                on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A2"]))
    reserved = [m.data for m in out if m.type == topics.SEAT_RESERVED]
    assert [(r["userId"], r["seatIds"]) for r in reserved] == [("pair", ["A1", "A2"])]
    assert platform.tables.waitlist[str(pair.data["waitlistId"])].status.value == "offered"
    assert platform.tables.waitlist[str(later.data["waitlistId"])].status.value == "waiting"


async def test_leaving_takes_an_entry_out_of_line_and_declining_an_offer_passes_it_on() -> None:
    platform = Platform()
    bookings = await sold_out(platform)
    ann, bob, cy = [await joined(platform, user, 2) for user in ("ann", "bob", "cy")]
    leave = Message(topics.WAITLIST_LEAVE_REQUESTED, EVENT.event_id, {"waitlistId": ann.data["waitlistId"]}, "r1")
    [left] = await platform.handle(leave)
    assert left.data["status"] == "left" and left.request_id == "r1"
    [*_, offer] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, bookings["A1"]))
    assert offer.data["waitlistId"] == bob.data["waitlistId"]
    decline = Message(topics.WAITLIST_LEAVE_REQUESTED, EVENT.event_id, {"waitlistId": bob.data["waitlistId"]}, "r2")
    out = await platform.handle(decline)
    assert [m.type for m in out] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED, topics.SEAT_RESERVED,
                                     topics.WAITLIST_UPDATED, topics.WAITLIST_UPDATED, topics.WAITLIST_UPDATED]
    answer = out[-1]
    assert answer.request_id == "r2" and answer.data["status"] == "left"
    assert all(m.request_id != "r2" for m in out[:-1])  # the gateway answers the leave with the last
    assert out[2].data["userId"] == "cy" and out[2].data["seatIds"] == ["A1", "A2"]
    assert platform.tables.waitlist[str(cy.data["waitlistId"])].status.value == "offered"


# -- an organiser calls the event off (CONTRACT §8.3) -----------------------------------------------------------

async def test_a_cancelled_event_releases_its_holds_ends_its_line_and_takes_no_more_holds() -> None:
    platform = Platform()
    pending = await held(platform, "A1", "A2", user="unpaid")
    paid = await held(platform, "A3", user="paid")
    await paying(platform, paid)
    await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, paid, paymentId="pay_1", amount=150.0))
    waiting = await joined(platform, "hopeful", 2)
    call_off = Message(topics.EVENT_CANCELLATION_REQUESTED, EVENT.event_id, {}, "req-cancel")
    out = await platform.handle(call_off)
    assert [(m.type, m.data.get("reason") or m.data.get("status")) for m in out] == [
        (topics.SEAT_RELEASED, "event_cancelled"), (topics.BOOKING_CANCELLED, "event_cancelled"),
        (topics.REFUND_REQUESTED, None), (topics.WAITLIST_UPDATED, "expired"), (topics.EVENT_CANCELLED, None)]
    assert out[-1].data == {"released": 1, "toRefund": 1, "cancelledNow": True} and out[-1].request_id == "req-cancel"
    assert out[3].data["waitlistId"] == waiting.data["waitlistId"] and out[2].data["bookingId"] == paid
    assert platform.booking(pending) is BookingStatus.CANCELLED and platform.seat("A1") is SeatStatus.AVAILABLE
    assert platform.booking(paid) is BookingStatus.REFUNDING  # refunded, not released
    refused = await platform.handle(hold_request("late", "A1"), best_request("late", 1))
    assert [m.data["code"] for m in refused] == ["event_cancelled", "event_cancelled"]
    [again] = await platform.handle(call_off)
    assert again.data["cancelledNow"] is False and platform.seat("A1") is SeatStatus.AVAILABLE
def asked_at(message: Message, millisecond: int) -> Message:
    return Message(message.type, message.event_id, message.data, message.request_id,
                   occurred_at=f"2030-01-01T12:00:00.{millisecond:03d}Z")


async def test_an_event_cancel_read_with_holds_and_a_payment_is_decided_in_the_order_they_were_asked() -> None:
    """Kafka reads the three topics in any order (after an outage, a whole backlog at once): what was asked before
    the cancel is decided before it, what was asked after it is refused."""
    platform = Platform()
    pending = await held(platform, "A1")
    cancel = asked_at(Message(topics.EVENT_CANCELLATION_REQUESTED, EVENT.event_id, {}, "req-cancel"), 300)
    before = [asked_at(hold_request("early", "A2", request_id="req-early"), 100),
              asked_at(on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, pending, paymentId="pay_1", amount=150.0,
                                  card="4242424242424242"), 200)]
    after = asked_at(hold_request("late", "A5", request_id="req-late"), 400)
    out = await platform.handle(before[0], after, cancel, before[1])  # as Kafka reads them: topic by topic
    kinds = [(m.type, m.request_id if m.type != topics.PAYMENT_REQUESTED else "payment") for m in out]
    assert kinds.index((topics.SEAT_RESERVED, "req-early")) < kinds.index((topics.EVENT_CANCELLED, "req-cancel"))
    assert (topics.PAYMENT_REQUESTED, "payment") in kinds
    refused = next(m for m in out if m.request_id == "req-late")
    assert (refused.type, refused.data["code"]) == (topics.SEAT_RESERVATION_FAILED, "event_cancelled")
    assert kinds.index((topics.EVENT_CANCELLED, "req-cancel")) < kinds.index((refused.type, "req-late"))
    # The payment asked in time goes on, and is refunded once made; the early hold is released with the event.
    assert platform.booking(pending) is BookingStatus.PAYING
    assert platform.seat("A2") is SeatStatus.AVAILABLE and platform.seat("A5") is SeatStatus.AVAILABLE


async def test_a_cancelled_event_refuses_new_waiting_list_entries_and_stores_none() -> None:
    platform = Platform()
    await platform.handle(Message(topics.EVENT_CANCELLATION_REQUESTED, EVENT.event_id, {}, "req-cancel"))
    late = join_request("late", 1, request_id="req-late")
    [refused] = await platform.handle(late)
    assert (refused.type, refused.request_id) == (topics.WAITLIST_UPDATED, "req-late")
    assert refused.data == {**refused.data, "waitlistId": late.data["waitlistId"], "status": "expired",
                            "joined": False, "position": None, "code": "event_cancelled"}
    assert "was cancelled" in str(refused.data["reason"])
    assert platform.tables.waitlist == {}  # nobody waits for seats that will never come


async def test_a_hold_behind_a_waiting_room_needs_the_buyers_own_unexpired_admission() -> None:
    from boxoffice.adapters.queue_tokens import QueueTokens

    tokens = QueueTokens("key")
    platform = Platform(admissions=tokens)
    platform.tables.waiting_rooms.add(EVENT.event_id)
    fans = tokens.access_token(EVENT.event_id, "fan", 1, NOW - timedelta(minutes=1), 10)

    def asking(user: str, token: str | None, seat: str = "A1", **asked: object) -> Message:
        message = hold_request(user, seat)
        data = {**message.data, **asked, "queueAccess": token}
        if "quantity" in asked:
            del data["seatIds"]
        return Message(message.type, message.event_id, data, message.request_id)

    out = await platform.handle(asking("fan", None), asking("other", fans), asking("fan", fans, quantity=2))
    assert [m.data.get("code") for m in out] == ["not_admitted", "not_admitted", None]
    assert out[2].type == topics.SEAT_RESERVED
    platform.now = NOW + timedelta(minutes=9)
    [late] = await platform.handle(asking("fan", fans, "B5"))
    assert late.data["code"] == "admission_expired" and platform.seat("B5") is SeatStatus.AVAILABLE
    platform.tables.waiting_rooms.clear()  # the organiser turned the room off
    [free] = await platform.handle(asking("anyone", None, "B5"))
    assert free.type == topics.SEAT_RESERVED


async def test_the_waiting_list_keeps_to_the_seats_per_buyer_cap() -> None:
    """A buyer at the cap does not join; one who reached it while waiting is passed over for the next in line."""
    platform = Platform(BookingRules(HOLD, 10, seats_per_user=4))
    await held(platform, "A1", "A2", "A3", "A4", user="full")
    [refused] = await platform.handle(join_request("full", 1))
    assert (refused.data["code"], refused.data["joined"]) == ("seat_limit_reached", False)
    assert "you hold 4" in str(refused.data["reason"])

    await held(platform, "A5", "A6", user="greedy")
    await joined(platform, "greedy", 2)  # 2 held + 2 waited for: at the cap, not over it
    await joined(platform, "next", 2)
    await held(platform, "A7", "A8", user="greedy")  # now 4 held: an offer would make 6
    sold = {f"{row}{n}": await held(platform, f"{row}{n}", f"{row}{n + 1}", user=f"buyer-{row}{n}")
            for row in "B" for n in range(1, 11, 2)}
    [*_, offer] = [m for m in await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, sold["B1"]))
                   if m.type == topics.WAITLIST_UPDATED]
    assert (offer.data["userId"], offer.data["status"]) == ("next", "offered")
    assert [e.status.value for e in platform.tables.waitlist.values() if e.user_id == "greedy"] == ["waiting"]


async def test_a_join_that_made_no_entry_keeps_its_answer_for_its_status_url_and_its_redeliveries() -> None:
    """A join answered 202 shows its outcome later at /booking-requests/{requestId}: a refusal, or the buyer's
    entry already waiting, is kept under the request id; a redelivery gets the same answer."""
    platform = Platform(BookingRules(HOLD, 10, seats_per_user=4))
    booking = await held(platform, "A1", "A2", "A3", "A4", user="full")
    over = join_request("full", 1, request_id="req-over")
    [refused] = await platform.handle(over)
    assert refused.data["code"] == "seat_limit_reached"
    kept = platform.tables.requests["req-over"]
    assert (kept.topic, decode(kept.payload).data) == (topics.WAITLIST_UPDATED, refused.data)
    await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking))  # under the cap now
    [again] = await platform.handle(over)
    assert again.data == refused.data and platform.tables.waitlist == {}

    first = await joined(platform, "ann", 2)
    [same] = await platform.handle(join_request("ann", 1, request_id="req-ann-2"))
    assert (same.data["waitlistId"], same.data["joined"]) == (first.data["waitlistId"], False)
    assert decode(platform.tables.requests["req-ann-2"].payload).data["waitlistId"] == first.data["waitlistId"]
    # The entry a join made is found by the join's request id: nothing else is kept for it.
    assert first.request_id not in platform.tables.requests


async def test_a_leave_and_a_rejoin_read_together_are_taken_in_the_order_they_were_asked_for() -> None:
    """They come on two topics, which Kafka does not order between them: the rejoin must not be answered by
    the entry that the leave before it ends."""
    platform = Platform()
    first = await joined(platform, "ann", 1)

    def asked_at(message: Message, second: int) -> Message:
        return Message(message.type, message.event_id, message.data, message.request_id,
                       occurred_at=f"2030-01-01T12:00:0{second}.000Z")

    leave = asked_at(Message(topics.WAITLIST_LEAVE_REQUESTED, EVENT.event_id,
                             {"waitlistId": first.data["waitlistId"]}, "req-leave"), 1)
    rejoin = asked_at(join_request("ann", 2, request_id="req-rejoin"), 2)
    out = await platform.handle(rejoin, leave)  # read in the other order
    assert [(m.request_id, m.data["status"]) for m in out] == [("req-leave", "left"), ("req-rejoin", "waiting")]
    entries = {e.waitlist_id: e for e in platform.tables.waitlist.values()}
    assert entries[str(first.data["waitlistId"])].status.value == "left"
    assert [(e.quantity, e.status.value) for e in entries.values() if e.user_id == "ann"
            and e.waitlist_id != first.data["waitlistId"]] == [(2, "waiting")]


async def test_the_waiting_list_behind_a_waiting_room_is_joined_with_the_buyers_own_admission() -> None:
    """Seats the line is offered later must not go to someone who skipped the queue."""
    from boxoffice.adapters.queue_tokens import QueueTokens

    tokens = QueueTokens("key")
    platform = Platform(admissions=tokens)
    platform.tables.waiting_rooms.add(EVENT.event_id)
    fans = tokens.access_token(EVENT.event_id, "fan", 1, NOW - timedelta(minutes=1), 10)

    def asking(user: str, token: str | None) -> Message:
        message = join_request(user, 1)
        return Message(message.type, message.event_id, {**message.data, "queueAccess": token}, message.request_id)

    out = await platform.handle(asking("nobody", None), asking("other", fans), asking("fan", fans))
    assert [(m.data["code"] if "code" in m.data else m.data["status"]) for m in out] == [
        "not_admitted", "not_admitted", "waiting"]
    assert [e.user_id for e in platform.tables.waitlist.values()] == ["fan"]
    platform.now = NOW + timedelta(minutes=9)
    [late] = await platform.handle(asking("late", tokens.access_token(EVENT.event_id, "late", 2,
                                                                      NOW - timedelta(minutes=1), 10)))
    assert late.data["code"] == "admission_expired" and late.data["joined"] is False
    platform.tables.waiting_rooms.clear()  # the organiser turned the room off
    [free] = await platform.handle(asking("anyone", None))
    assert free.data["status"] == "waiting" and free.data["joined"] is True


# -- refunds (CONTRACT §8.3) ------------------------------------------------------------------------------------

async def confirmed(platform: Platform, *seats: str, user: str = "fan") -> str:
    booking_id = await held(platform, *seats, user=user)
    await paying(platform, booking_id, amount=150.0 * len(seats))
    await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_1",
                                     amount=150.0 * len(seats)))
    assert platform.booking(booking_id) is BookingStatus.CONFIRMED
    return booking_id


async def test_cancelling_a_paid_booking_asks_for_its_refund_once_and_the_refund_frees_its_seats() -> None:
    platform = Platform()
    booking_id = await confirmed(platform, "A1", "A2")
    waiting = await joined(platform, "next", 2)
    cancel = on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True)
    [asked] = await platform.handle(cancel)
    assert asked.type == topics.REFUND_REQUESTED and asked.request_id == cancel.request_id
    assert asked.data == {"bookingId": booking_id, "paymentId": "pay_1", "refundId": f"refund_{booking_id}",
                          "amount": 300.0, "currency": "USD"}
    assert await platform.handle(cancel, on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id,
                                                    refund=True)) == []
    assert platform.seat("A1") is SeatStatus.BOOKED  # until the money is back
    done = on_booking(topics.REFUND_SUCCEEDED, booking_id, refundId=f"refund_{booking_id}", paymentId="pay_1",
                      amount=300.0, currency="USD")
    out = await platform.handle(done)
    assert [(m.type, m.data.get("reason") or m.data.get("status")) for m in out][:3] == [
        (topics.SEAT_RELEASED, "refunded"), (topics.BOOKING_CANCELLED, "refunded"), (topics.SEAT_RESERVED, "pending")]
    assert out[1].data["refundId"] == f"refund_{booking_id}" and out[1].data["amount"] == 300.0
    assert out[2].data["userId"] == "next" and out[-1].data["waitlistId"] == waiting.data["waitlistId"]
    assert platform.booking(booking_id) is BookingStatus.REFUNDED
    assert await platform.handle(done) == []  # redelivered: nothing twice
    [refused] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True))
    assert refused.type == topics.BOOKING_COMMAND_REJECTED and refused.data["code"] == "booking_refunded"


async def test_a_paid_booking_whose_ticket_let_someone_in_is_not_refunded_and_keeps_its_seats() -> None:
    platform = Platform()
    booking_id = await confirmed(platform, "A1", "A2")
    platform.tables.let_in[booking_id] = {"A2"}  # checked in at the door
    cancel = on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True)
    [refused] = await platform.handle(cancel)
    assert (refused.type, refused.request_id, refused.data["command"], refused.data["code"]) == (
        topics.BOOKING_COMMAND_REJECTED, cancel.request_id, "cancel", "tickets_used")
    assert "seat A2" in refused.data["reason"]
    assert platform.booking(booking_id) is BookingStatus.CONFIRMED
    assert platform.seat("A1") is platform.seat("A2") is SeatStatus.BOOKED


async def test_the_payment_of_a_refunded_booking_asked_for_again_is_refused_not_left_unanswered() -> None:
    """The same paymentId again gets the payment's own answer while it stands; once the booking is being
    refunded or refunded, the truthful answer is the refund: refused at once, nothing charged."""
    platform = Platform()
    booking_id = await confirmed(platform, "A5")
    again = on_booking(topics.BOOKING_CONFIRMATION_REQUESTED, booking_id, paymentId="pay_1", amount=150.0)
    assert await platform.handle(again) == []  # confirmed: its first answer stands
    await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True))
    [refunding] = await platform.handle(again)
    await platform.handle(on_booking(topics.REFUND_SUCCEEDED, booking_id, refundId=f"refund_{booking_id}"))
    [refunded] = await platform.handle(again)
    assert [(m.type, m.request_id, m.data["command"], m.data["code"]) for m in (refunding, refunded)] == [
        (topics.BOOKING_COMMAND_REJECTED, again.request_id, "confirm", "refund_in_progress"),
        (topics.BOOKING_COMMAND_REJECTED, again.request_id, "confirm", "booking_refunded")]
    assert platform.booking(booking_id) is BookingStatus.REFUNDED and platform.seat("A5") is SeatStatus.AVAILABLE


async def test_a_refund_the_provider_refuses_leaves_the_booking_confirmed_and_says_why() -> None:
    platform = Platform()
    booking_id = await confirmed(platform, "A3")
    [asked] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True))
    [answer] = await platform.handle(on_booking(topics.REFUND_FAILED, booking_id, refundId=asked.data["refundId"],
                                                paymentId="pay_1", amount=150.0, currency="USD",
                                                reason="The card account is closed"))
    assert answer.type == topics.BOOKING_COMMAND_REJECTED and answer.data["code"] == "refund_failed"
    assert "The card account is closed" in answer.data["reason"]
    assert platform.booking(booking_id) is BookingStatus.CONFIRMED and platform.seat("A3") is SeatStatus.BOOKED


async def test_a_cancelled_event_refunds_paid_bookings_and_a_payment_in_flight_once_it_lands() -> None:
    platform = Platform()
    paid = await confirmed(platform, "A1")
    in_flight = await held(platform, "A2", user="late")
    await paying(platform, in_flight)
    out = await platform.handle(Message(topics.EVENT_CANCELLATION_REQUESTED, EVENT.event_id, {}, "req-off"))
    assert [m.data["bookingId"] for m in out if m.type == topics.REFUND_REQUESTED] == [paid]
    assert out[-1].data == {"released": 0, "toRefund": 2, "cancelledNow": True}
    landed = await platform.handle(on_booking(topics.PAYMENT_SUCCEEDED, in_flight, paymentId="pay_1", amount=150.0))
    assert [m.type for m in landed] == [topics.BOOKING_CONFIRMED, topics.REFUND_REQUESTED]
    assert platform.booking(in_flight) is BookingStatus.REFUNDING


async def test_a_refund_and_the_holds_own_deadline_arriving_together_refund_once_and_expire_nothing() -> None:
    platform = Platform()
    booking_id = await confirmed(platform, "A4")
    platform.now += HOLD  # the hold's deadline has passed; its timeout comes in with the buyer's refund
    out = await platform.handle(on_booking(topics.SEAT_RESERVATION_TIMEOUT, booking_id),
                                on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True),
                                on_booking(topics.SEAT_RESERVATION_TIMEOUT, booking_id))
    assert [m.type for m in out] == [topics.REFUND_REQUESTED]
    assert platform.booking(booking_id) is BookingStatus.REFUNDING and platform.seat("A4") is SeatStatus.BOOKED
    out = await platform.handle(on_booking(topics.REFUND_SUCCEEDED, booking_id, refundId=f"refund_{booking_id}"),
                                on_booking(topics.SEAT_RESERVATION_TIMEOUT, booking_id))
    assert [(m.type, m.data.get("reason")) for m in out] == [(topics.SEAT_RELEASED, "refunded"),
                                                              (topics.BOOKING_CANCELLED, "refunded")]
    assert platform.booking(booking_id) is BookingStatus.REFUNDED and platform.seat("A4") is SeatStatus.AVAILABLE


# -- counts with each change --------------------------------------------------------------------------------------

async def test_each_seat_message_carries_the_counts_right_after_its_change() -> None:
    """The catalog keeps the counts of the newest change it reads: they are the seats' own, message by message,
    through holds, a payment, a cancel, a refund and a waiting-list offer in the refund's transaction."""
    platform = Platform()
    seat_messages: list[Message] = []

    def truth() -> tuple[int, int, int]:
        statuses = [seat.status for (event_id, _), seat in platform.tables.seats.items() if event_id == EVENT.event_id]
        return (statuses.count(SeatStatus.AVAILABLE), statuses.count(SeatStatus.RESERVED),
                statuses.count(SeatStatus.BOOKED))

    async def step(*batch: Message) -> list[Message]:
        out = await platform.handle(*batch)
        seat_messages.extend(m for m in out if "seq" in m.data)
        return out

    two_holds = await step(hold_request("u1", "A1", "A2"), hold_request("u2", "B1"))
    assert [(m.data["available"], m.data["reserved"], m.data["booked"]) for m in two_holds] == [(18, 2, 0), (17, 3, 0)]
    paid = str(two_holds[0].data["bookingId"])
    await paying(platform, paid, amount=300.0)
    await step(on_booking(topics.PAYMENT_SUCCEEDED, paid, paymentId="pay_1", amount=300.0))
    await step(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, str(two_holds[1].data["bookingId"])))
    await joined(platform, "next", 2)
    await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, paid, refund=True))
    await step(on_booking(topics.REFUND_SUCCEEDED, paid, refundId=f"refund_{paid}", paymentId="pay_1", amount=300.0,
                          currency="USD"))

    assert [(m.type, m.data["seq"]) for m in seat_messages] == [
        (topics.SEAT_RESERVED, 1), (topics.SEAT_RESERVED, 2), (topics.BOOKING_CONFIRMED, 3),
        (topics.SEAT_RELEASED, 4), (topics.SEAT_RELEASED, 5), (topics.SEAT_RESERVED, 6)]
    assert [(m.data["available"], m.data["reserved"], m.data["booked"]) for m in seat_messages] == [
        (18, 2, 0), (17, 3, 0), (17, 1, 2), (18, 0, 2), (20, 0, 0), (18, 2, 0)]
    last = seat_messages[-1].data
    assert (last["available"], last["reserved"], last["booked"]) == truth()


# -- runs of confirmations and payment outcomes, decided as a whole --------------------------------------------

def on_payment(topic: str, booking_id: str, request_id: str, **data: object) -> Message:
    return Message(topic, EVENT.event_id, {"bookingId": booking_id, **data}, request_id)


async def six_holds(platform: Platform) -> list[str]:
    out = await platform.handle(*(hold_request(f"u{i}", f"A{i}") for i in range(1, 7)))
    assert [m.type for m in out] == [topics.SEAT_RESERVED] * 6
    return [str(m.data["bookingId"]) for m in out]


def seen(out: list[Message], ids: list[str]) -> list[tuple[object, ...]]:
    """What a test compares of each message: booking ids as their place in `ids`."""
    return [(m.type, ids.index(str(m.data["bookingId"])), m.request_id, m.data.get("seq"), m.data.get("available"),
             m.data.get("reserved"), m.data.get("booked")) for m in out]


@pytest.mark.parametrize("together", [True, False])
async def test_a_run_of_confirmations_and_outcomes_decides_each_booking_as_one_by_one_would(together: bool) -> None:
    platform = Platform()
    ids = await six_holds(platform)
    confirms = [on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, b, f"req-confirm-{i}", paymentId=f"pay_{i}",
                           amount=150.0, cardToken=f"tok_{i}") for i, b in enumerate(ids)]
    succeeded, failed = topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED
    outcomes = [on_payment(topic, ids[i], f"req-outcome-{i}", paymentId=f"pay_{i}", declineCode="card_declined")
                for i, topic in enumerate([succeeded, succeeded, failed, failed, succeeded, succeeded])]
    units_before = len(platform.units)
    if together:  # the two outcome topics read interleaved: each gathered into one run, successes first
        asked = await platform.handle(*confirms)
        answered = await platform.handle(*outcomes)
    else:
        asked = [m for c in confirms for m in await platform.handle(c)]
        answered = [m for i in (0, 1, 4, 5, 2, 3) for m in await platform.handle(outcomes[i])]

    assert [(m.type, m.data["bookingId"], m.request_id, m.data["paymentId"], m.data["cardToken"]) for m in asked] == [
        (topics.PAYMENT_REQUESTED, b, f"req-confirm-{i}", f"pay_{i}", f"tok_{i}") for i, b in enumerate(ids)]
    confirmed, released, cancelled = topics.BOOKING_CONFIRMED, topics.SEAT_RELEASED, topics.BOOKING_CANCELLED
    assert seen(answered, ids) == [
        (confirmed, 0, "req-outcome-0", 7, 14, 5, 1), (confirmed, 1, "req-outcome-1", 8, 14, 4, 2),
        (confirmed, 4, "req-outcome-4", 9, 14, 3, 3), (confirmed, 5, "req-outcome-5", 10, 14, 2, 4),
        (released, 2, "req-outcome-2", 11, 15, 1, 4), (cancelled, 2, "req-outcome-2", None, None, None, None),
        (released, 3, "req-outcome-3", 12, 16, 0, 4), (cancelled, 3, "req-outcome-3", None, None, None, None)]
    assert answered[5].data["declineCode"] == "card_declined" and answered[5].data["status"] == "payment_failed"
    assert [platform.booking(b) for b in ids] == [BookingStatus.CONFIRMED] * 2 + [BookingStatus.PAYMENT_FAILED] * 2 \
        + [BookingStatus.CONFIRMED] * 2
    assert [platform.seat(f"A{i}") for i in range(1, 7)] == [SeatStatus.BOOKED] * 2 + [SeatStatus.AVAILABLE] * 2 \
        + [SeatStatus.BOOKED] * 2
    # Together: one transaction for the confirmations, one for each outcome topic's run.
    assert len(platform.units) - units_before == (3 if together else 12)


async def test_a_booking_named_twice_in_a_run_sees_the_first_messages_effect() -> None:
    platform = Platform()
    first, second = await held(platform, "A1"), await held(platform, "A2", user="other")
    out = await platform.handle(
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, first, "req-1", paymentId="pay_1", amount=1.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, first, "req-2", paymentId="pay_1", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, second, "req-3", paymentId="pay_3", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, first, "req-4", paymentId="pay_1", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, first, "req-5", paymentId="pay_2", amount=150.0))
    # The wrong amount is refused, the next one asks; the same payment again is not asked twice, another refused.
    assert [(m.type, m.request_id, m.data.get("code")) for m in out] == [
        (topics.BOOKING_COMMAND_REJECTED, "req-1", "amount_mismatch"), (topics.PAYMENT_REQUESTED, "req-2", None),
        (topics.PAYMENT_REQUESTED, "req-3", None), (topics.BOOKING_COMMAND_REJECTED, "req-5", "payment_in_progress")]
    assert platform.tables.bookings[first].payment_id == "pay_1" and platform.booking(second) is BookingStatus.PAYING

    twice = await platform.handle(on_payment(topics.PAYMENT_SUCCEEDED, first, "req-6", paymentId="pay_1"),
                                  on_payment(topics.PAYMENT_SUCCEEDED, first, "req-7", paymentId="pay_1"))
    assert [(m.type, m.request_id, m.data["seq"]) for m in twice] == [(topics.BOOKING_CONFIRMED, "req-6", 3)]
    assert platform.booking(first) is BookingStatus.CONFIRMED and platform.seat("A1") is SeatStatus.BOOKED


async def test_payments_landing_together_for_a_called_off_event_are_confirmed_then_refunded_each_once() -> None:
    platform = Platform()
    first, second = await held(platform, "A1"), await held(platform, "A2", user="other")
    await paying(platform, first)
    await paying(platform, second)
    await platform.handle(Message(topics.EVENT_CANCELLATION_REQUESTED, EVENT.event_id, {}, "req-off"))
    out = await platform.handle(on_payment(topics.PAYMENT_SUCCEEDED, first, "req-1", paymentId="pay_1"),
                                on_payment(topics.PAYMENT_SUCCEEDED, second, "req-2", paymentId="pay_1"),
                                on_payment(topics.PAYMENT_SUCCEEDED, first, "req-3", paymentId="pay_1"))

    assert [(m.type, m.data["bookingId"], m.request_id) for m in out] == [
        (topics.BOOKING_CONFIRMED, first, "req-1"), (topics.REFUND_REQUESTED, first, "req-1"),
        (topics.BOOKING_CONFIRMED, second, "req-2"), (topics.REFUND_REQUESTED, second, "req-2")]
    assert [(platform.booking(b), platform.tables.bookings[b].refund_id) for b in (first, second)] == [
        (BookingStatus.REFUNDING, f"refund_{first}"), (BookingStatus.REFUNDING, f"refund_{second}")]
    assert platform.seat("A1") is SeatStatus.BOOKED and platform.seat("A2") is SeatStatus.BOOKED


async def test_a_refused_command_in_the_middle_of_a_run_is_answered_and_the_others_go_on() -> None:
    platform = Platform()
    ids = await six_holds(platform)
    unknown = str(uuid.uuid4())
    out = await platform.handle(
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, ids[0], "req-0", paymentId="pay_0", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, ids[1], "req-1", paymentId="pay_1", amount=149.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, unknown, "req-2", paymentId="pay_2", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, "not-a-uuid", "req-3", paymentId="pay_3", amount=150.0),
        on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, ids[2], "req-4", paymentId="pay_4", amount=150.0))

    assert [(m.type, m.data["bookingId"], m.request_id, m.data.get("code")) for m in out] == [
        (topics.PAYMENT_REQUESTED, ids[0], "req-0", None),
        (topics.BOOKING_COMMAND_REJECTED, ids[1], "req-1", "amount_mismatch"),
        (topics.BOOKING_COMMAND_REJECTED, unknown, "req-2", "booking_not_found"),
        (topics.PAYMENT_REQUESTED, ids[2], "req-4", None)]
    assert [platform.booking(b) for b in ids[:3]] == [BookingStatus.PAYING, BookingStatus.PENDING,
                                                      BookingStatus.PAYING]


@pytest.mark.parametrize("topic, applied, status, seat", [
    (topics.PAYMENT_SUCCEEDED, [topics.BOOKING_CONFIRMED], BookingStatus.CONFIRMED, SeatStatus.BOOKED),
    (topics.PAYMENT_FAILED, [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED], BookingStatus.PAYMENT_FAILED,
     SeatStatus.AVAILABLE)])
async def test_a_run_with_a_booking_out_of_step_is_decided_one_by_one_and_only_that_message_left_unapplied(
        topic: str, applied: list[str], status: BookingStatus, seat: SeatStatus) -> None:
    platform = Platform()
    ids = await six_holds(platform)
    await platform.handle(*(on_payment(topics.BOOKING_CONFIRMATION_REQUESTED, b, f"req-confirm-{i}",
                                       paymentId="pay_1", amount=150.0) for i, b in enumerate(ids[:3])))
    platform.tables.seats[(EVENT.event_id, "A2")].booking_id = "someone-else"
    units_before = len(platform.units)
    out = await platform.handle(*(on_payment(topic, b, f"req-{i}", paymentId="pay_1") for i, b in enumerate(ids[:3])))

    assert [(m.type, m.data["bookingId"], m.request_id) for m in out] == [
        *((t, ids[0], "req-0") for t in applied), *((t, ids[2], "req-2") for t in applied)]
    assert [m.data["seq"] for m in out if "seq" in m.data] == [7, 8]  # the run given up took no numbers
    assert [platform.booking(b) for b in ids[:3]] == [status, BookingStatus.PAYING, status]
    assert [platform.seat(s) for s in ("A1", "A2", "A3")] == [seat, SeatStatus.RESERVED, seat]
    assert len(platform.units) - units_before == 2  # the run as a whole, rolled back; then one by one


async def test_payment_outcomes_the_payment_service_did_not_record_change_nothing() -> None:
    """The embedded broker takes any local producer's messages: a forged payment.succeeded must not sell the
    seats, nor a forged payment.failed release a payment that is being charged."""
    platform = Platform()
    booking_id = await held(platform, "A1")
    await paying(platform, booking_id)
    assert await platform.handle_forged(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_1")) == []
    assert await platform.handle_forged(on_booking(topics.PAYMENT_FAILED, booking_id, paymentId="pay_1",
                                                   declineCode="card_declined")) == []
    platform.tables.payments[(booking_id, "pay_1")] = "failed"  # recorded, but not as this message says
    assert await platform.handle_forged(on_booking(topics.PAYMENT_SUCCEEDED, booking_id, paymentId="pay_1")) == []
    assert platform.booking(booking_id) is BookingStatus.PAYING and platform.seat("A1") is SeatStatus.RESERVED

    [released, cancelled] = await platform.handle_forged(
        on_booking(topics.PAYMENT_FAILED, booking_id, paymentId="pay_1", declineCode="card_declined"))
    assert (released.type, cancelled.type) == (topics.SEAT_RELEASED, topics.BOOKING_CANCELLED)
    assert platform.booking(booking_id) is BookingStatus.PAYMENT_FAILED


async def test_refund_outcomes_the_payment_service_did_not_record_change_nothing() -> None:
    platform = Platform()
    booking_id, other = await confirmed(platform, "A1"), await confirmed(platform, "A2")
    [asked] = await platform.handle(on_booking(topics.BOOKING_CANCELLATION_REQUESTED, booking_id, refund=True))
    refund_id = asked.data["refundId"]
    done = on_booking(topics.REFUND_SUCCEEDED, booking_id, refundId=refund_id, paymentId="pay_1", amount=150.0)
    assert await platform.handle_forged(done) == []
    assert await platform.handle_forged(on_booking(topics.REFUND_FAILED, booking_id, refundId=refund_id,
                                                   reason="refused")) == []
    platform.tables.refunds[refund_id] = (other, "succeeded")  # recorded for another booking
    assert await platform.handle_forged(done) == []
    assert platform.booking(booking_id) is BookingStatus.REFUNDING and platform.seat("A1") is SeatStatus.BOOKED

    platform.tables.refunds[refund_id] = (booking_id, "succeeded")
    out = await platform.handle_forged(done)
    assert [m.type for m in out][:2] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert platform.booking(booking_id) is BookingStatus.REFUNDED


class Deadlines:
    """The expiry scheduler's port: the earliest deadline it was told of."""

    def __init__(self) -> None:
        self.told: list[datetime] = []

    def hold_created(self, expires_at: datetime) -> None:
        self.told.append(expires_at)


async def test_an_event_with_a_hold_time_of_its_own_holds_for_that_long_and_is_released_then() -> None:
    quick = replace(small_event("ev_quick"), hold_seconds=30)
    deadlines = Deadlines()
    platform = Platform(holds=deadlines)
    platform.tables.add_event(quick)
    [quick_hold] = await platform.handle(hold_request("fan", "A1", event_id="ev_quick"))
    [usual_hold] = await platform.handle(hold_request("fan", "A1"))
    assert quick_hold.data["expiresAt"] == "2030-01-01T12:00:30.000Z"
    assert platform.tables.bookings[str(quick_hold.data["bookingId"])].expires_at == NOW + timedelta(seconds=30)
    assert platform.tables.bookings[str(usual_hold.data["bookingId"])].expires_at == NOW + HOLD
    assert deadlines.told == [NOW + timedelta(seconds=30), NOW + HOLD]  # the scheduler wakes for the quick one

    platform.now = NOW + timedelta(seconds=30)
    out = await platform.handle(Message(topics.SEAT_RESERVATION_TIMEOUT, "ev_quick",
                                        {"bookingId": quick_hold.data["bookingId"]}))
    assert [m.type for m in out] == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert platform.tables.seats[("ev_quick", "A1")].status is SeatStatus.AVAILABLE
    assert platform.seat("A1") is SeatStatus.RESERVED  # the other event's hold runs on
