"""After the hold, against a real PostgreSQL: pay, decline, cancel, expire — and the races between them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from boxoffice import messages as topics
from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.bootstrap.payment import payment_handler
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import Message, decode
from boxoffice.service_layer.ports import OutboxRow
from tests.booking_service import CollectingOutbox, decide, expire, handle, reserve
from tests.conftest import small_event


def now() -> datetime:
    return datetime.now(UTC)


async def hold(pool: asyncpg.Pool, event: EventSpec, seats: list[str], hold_for: timedelta = timedelta(minutes=10),
               at: datetime | None = None) -> str:
    rows = await reserve(
        pool, [ReserveSeats(f"req-{uuid.uuid4()}", event.event_id, "buyer", seats, email="buyer@example.com")],
        hold_for, at or now())
    reserved = decode(rows[0].payload)
    assert reserved.type == topics.SEAT_RESERVED
    return str(reserved.data["bookingId"])


def msg(event: EventSpec, topic: str, **data: object) -> Message:
    return Message(topic, event.event_id, dict(data), request_id=f"req-{uuid.uuid4()}")


async def state(pool: asyncpg.Pool, booking_id: str) -> tuple[str, list[str]]:
    status = await pool.fetchval("SELECT status FROM bookings WHERE booking_id = $1", booking_id)
    seats = await pool.fetch(
        "SELECT s.status FROM seats s JOIN bookings b ON s.event_id = b.event_id AND s.seat_id = ANY(b.seat_ids) "
        "WHERE b.booking_id = $1 ORDER BY s.seat_id", booking_id)
    return status, [r["status"] for r in seats]


def types(rows: list) -> list[str]:
    return [decode(r.payload).type for r in rows]


async def test_confirm_then_payment_succeeds(pool: asyncpg.Pool, event: EventSpec) -> None:
    booking_id = await hold(pool, event, ["A1", "A2"])

    asked = await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id,
                                   paymentId="pay_1", amount=300.0, cardToken="tok_1", cardLast4="4242"), now())
    assert types(asked) == [topics.PAYMENT_REQUESTED]
    assert decode(asked[0].payload).data["cardToken"] == "tok_1" and "card" not in decode(asked[0].payload).data
    assert await state(pool, booking_id) == ("paying", ["RESERVED", "RESERVED"])

    done = await handle(pool, msg(event, topics.PAYMENT_SUCCEEDED, bookingId=booking_id, paymentId="pay_1"), now())
    assert types(done) == [topics.BOOKING_CONFIRMED]
    assert decode(done[0].payload).data["email"] == "buyer@example.com"
    assert await state(pool, booking_id) == ("confirmed", ["BOOKED", "BOOKED"])

    again = await handle(pool, msg(event, topics.PAYMENT_SUCCEEDED, bookingId=booking_id, paymentId="pay_1"), now())
    assert again == [] and await state(pool, booking_id) == ("confirmed", ["BOOKED", "BOOKED"])


async def test_declined_payment_releases_the_seats(pool: asyncpg.Pool, event: EventSpec) -> None:
    booking_id = await hold(pool, event, ["A3"])
    await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id, paymentId="p",
                           amount=150), now())
    rows = await handle(pool, msg(event, topics.PAYMENT_FAILED, bookingId=booking_id, paymentId="p",
                                  declineCode="card_declined", reason="Your card was declined"), now())

    assert types(rows) == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert decode(rows[0].payload).data["reason"] == "payment_failed"
    assert decode(rows[1].payload).data["declineCode"] == "card_declined"
    assert await state(pool, booking_id) == ("payment_failed", ["AVAILABLE"])
    assert await pool.fetchval("SELECT count(*) FROM booking_seats WHERE booking_id = $1 AND live", booking_id) == 0


@pytest.mark.parametrize("amount", [149.99, 0.01, "abc"])
async def test_wrong_amount_is_refused_and_the_hold_kept(pool: asyncpg.Pool, event: EventSpec, amount: object) -> None:
    booking_id = await hold(pool, event, ["A4"])
    rows = await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id,
                                                 paymentId="p", amount=amount), now())

    rejected = decode(rows[0].payload)
    assert rejected.type == topics.BOOKING_COMMAND_REJECTED
    assert rejected.data["code"] in ("amount_mismatch", "invalid_request")
    assert await state(pool, booking_id) == ("pending", ["RESERVED"])


async def test_cancel_releases_and_a_confirmed_booking_cannot_be_cancelled(pool: asyncpg.Pool,
                                                                          event: EventSpec) -> None:
    cancelled = await hold(pool, event, ["A5"])
    rows = await handle(pool, msg(event, topics.BOOKING_CANCELLATION_REQUESTED, bookingId=cancelled), now())
    assert types(rows) == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert await state(pool, cancelled) == ("cancelled", ["AVAILABLE"])

    kept = await hold(pool, event, ["A6"])
    await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=kept, paymentId="p",
                           amount=150), now())
    await handle(pool, msg(event, topics.PAYMENT_SUCCEEDED, bookingId=kept, paymentId="p"), now())
    refused = await handle(pool, msg(event, topics.BOOKING_CANCELLATION_REQUESTED, bookingId=kept), now())
    assert decode(refused[0].payload).data["code"] == "booking_already_confirmed"
    assert await state(pool, kept) == ("confirmed", ["BOOKED"])


async def test_timeout_expires_only_after_the_deadline(pool: asyncpg.Pool, event: EventSpec) -> None:
    start = now()
    booking_id = await hold(pool, event, ["A7"], timedelta(seconds=2), at=start)

    early = await handle(pool, msg(event, topics.SEAT_RESERVATION_TIMEOUT, bookingId=booking_id),
                               start + timedelta(seconds=1))
    assert early == [] and await state(pool, booking_id) == ("pending", ["RESERVED"])

    late = await handle(pool, msg(event, topics.SEAT_RESERVATION_TIMEOUT, bookingId=booking_id),
                              start + timedelta(seconds=2))
    assert types(late) == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED]
    assert decode(late[0].payload).data["reason"] == "timeout"
    assert await state(pool, booking_id) == ("expired", ["AVAILABLE"])

    confirm = await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id,
                                     paymentId="p", amount=150), start + timedelta(seconds=3))
    assert decode(confirm[0].payload).data["code"] == "booking_expired"


async def test_confirm_racing_the_deadline_always_ends_consistently(pool: asyncpg.Pool) -> None:
    """Confirm, timeout and payment arrive in every order around the deadline; booking and seat always agree."""
    event = small_event(rows=3)
    async with pool.acquire() as con:
        await create_event(con, event)
    outcomes: list[str] = []
    for round_, seat in enumerate(s.seat_id for s in event.seats()):
        start = now()
        booking_id = await hold(pool, event, [seat], timedelta(milliseconds=50), at=start)
        deadline = start + timedelta(milliseconds=50)
        confirm_at = deadline + timedelta(milliseconds=(round_ % 5) * 10 - 20)
        await asyncio.gather(
            handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id, paymentId="p",
                             amount=150), confirm_at),
            handle(pool, msg(event, topics.SEAT_RESERVATION_TIMEOUT, bookingId=booking_id), deadline),
        )
        await handle(pool, msg(event, topics.PAYMENT_SUCCEEDED, bookingId=booking_id, paymentId="p"), deadline)
        # A paying booking is never expired: the payment decides, so a late timeout changes nothing.
        await handle(pool, msg(event, topics.SEAT_RESERVATION_TIMEOUT, bookingId=booking_id),
                           deadline + timedelta(seconds=1))
        result = await state(pool, booking_id)
        assert result in [("confirmed", ["BOOKED"]), ("expired", ["AVAILABLE"])], result
        outcomes.append(result[0])
    assert set(outcomes) == {"confirmed", "expired"}, outcomes


async def test_the_same_payment_request_charges_once(pool: asyncpg.Pool, event: EventSpec) -> None:
    booking_id = await hold(pool, event, ["B2"])
    await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id, paymentId="pay_once",
                           amount=20), now())  # the booking asks for the payment
    provider = SimulatedProvider(pool, latency_seconds=0.01)

    outbox = CollectingOutbox()
    handler = payment_handler(pool, provider, outbox)
    request = msg(event, topics.PAYMENT_REQUESTED, bookingId=booking_id, paymentId="pay_once", amount=20.0,
                  currency="USD", card="4242424242424242")

    await handler([request, request])
    await handler([request])

    assert handler.charged == 1
    assert [decode(r.payload).type for r in outbox.rows] == [topics.PAYMENT_SUCCEEDED] * 3
    assert len({decode(r.payload).data["providerRef"] for r in outbox.rows}) == 1
    assert await pool.fetchval("SELECT count(*) FROM simulated_provider_charges WHERE idempotency_key = $1",
                               f"{booking_id}:pay_once") == 1
    assert await pool.fetchval("SELECT status FROM payments WHERE booking_id = $1", booking_id) == "succeeded"


async def test_declined_test_card_fails_the_payment(pool: asyncpg.Pool, event: EventSpec) -> None:
    booking_id = await hold(pool, event, ["B3"])
    await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=booking_id, paymentId="p",
                           amount=20), now())
    provider = SimulatedProvider(pool, latency_seconds=0)

    outbox = CollectingOutbox()
    card = await provider.tokenise("4000000000000002")
    assert card.last4 == "0002" and "4000000000000002" not in card.token
    await payment_handler(pool, provider, outbox)(
        [msg(event, topics.PAYMENT_REQUESTED, bookingId=booking_id, paymentId="p", amount=20.0,
             cardToken=card.token, cardLast4=card.last4)])

    failed = decode(outbox.rows[0].payload)
    assert failed.type == topics.PAYMENT_FAILED and failed.data["declineCode"] == "card_declined"


async def test_many_timeouts_expire_in_one_transaction_and_spare_the_rest(pool: asyncpg.Pool) -> None:
    event = small_event(rows=3)
    async with pool.acquire() as con:
        await create_event(con, event)
    start = now()
    seats = [s.seat_id for s in event.seats()]
    due = [await hold(pool, event, [seat], timedelta(seconds=1), at=start) for seat in seats[:20]]
    not_yet = await hold(pool, event, [seats[20]], timedelta(minutes=5), at=start)
    paying = await hold(pool, event, [seats[21]], timedelta(seconds=1), at=start)
    await handle(pool, msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=paying, paymentId="p",
                           amount=20), start)

    rows = await expire(pool, event.event_id, [*due, not_yet, paying, "not-a-uuid"], start + timedelta(seconds=1))

    assert types(rows) == [topics.SEAT_RELEASED, topics.BOOKING_CANCELLED] * 20
    for booking_id in due:
        assert await state(pool, booking_id) == ("expired", ["AVAILABLE"])
    assert await state(pool, not_yet) == ("pending", ["RESERVED"])
    assert await state(pool, paying) == ("paying", ["RESERVED"])
    assert await expire(pool, event.event_id, due, start + timedelta(seconds=2)) == []


async def test_a_run_of_payments_is_decided_together_and_a_booking_out_of_step_alone_left_unapplied(
        pool: asyncpg.Pool, event: EventSpec) -> None:
    ids = [await hold(pool, event, [f"B{n}"]) for n in range(1, 5)]
    asked = await decide(pool, [msg(event, topics.BOOKING_CONFIRMATION_REQUESTED, bookingId=b, paymentId=f"pay_{n}",
                                    amount=20.0) for n, b in enumerate(ids)], now())
    assert [(m.type, m.data["bookingId"], m.data["paymentId"]) for m in map(decode_row, asked)] == [
        (topics.PAYMENT_REQUESTED, b, f"pay_{n}") for n, b in enumerate(ids)]
    # B2 was given back behind its booking's back: the booking and its seat disagree.
    await pool.execute("UPDATE seats SET status = 'AVAILABLE', booking_id = NULL WHERE event_id = $1 "
                       "AND seat_id = 'B2'", event.event_id)

    out = [decode_row(r) for r in await decide(pool, [
        *(msg(event, topics.PAYMENT_SUCCEEDED, bookingId=b, paymentId=f"pay_{n}") for n, b in enumerate(ids[:3])),
        msg(event, topics.PAYMENT_FAILED, bookingId=ids[3], paymentId="pay_3", declineCode="card_declined")], now())]

    assert [(m.type, m.data["bookingId"], m.data.get("seq")) for m in out] == [
        (topics.BOOKING_CONFIRMED, ids[0], 5), (topics.BOOKING_CONFIRMED, ids[2], 6),
        (topics.SEAT_RELEASED, ids[3], 7), (topics.BOOKING_CANCELLED, ids[3], None)]
    assert [await state(pool, b) for b in ids] == [("confirmed", ["BOOKED"]), ("paying", ["AVAILABLE"]),
                                                   ("confirmed", ["BOOKED"]), ("payment_failed", ["AVAILABLE"])]


def decode_row(row: OutboxRow) -> Message:
    return decode(row.payload)
