"""Which payment and refund requests a booking asks for, read from the bookings in PostgreSQL: the payment service
charges or refunds nothing else (a request any client of the broker could have written)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.payment_store import PostgresPaymentUnitOfWork
from boxoffice.service_layer.payment_ports import ChargeRequest, RefundRequest
from tests.conftest import small_event


async def a_booking(pool: asyncpg.Pool, status: str, payment_id: str | None = "pay_1",
                    refund_id: str | None = None) -> tuple[str, str]:
    spec = small_event()
    async with pool.acquire() as con:
        assert await create_event(con, spec)
    booking_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency,
                                 expires_at, payment_id, refund_id)
           VALUES ($1::uuid, $2, $3, 'fan', $4, ARRAY['A1'], 150, 'EUR', now(), $5, $6)""",
        booking_id, f"req-{booking_id}", spec.event_id, status, payment_id, refund_id)
    return booking_id, spec.event_id


def charge(booking_id: str, event_id: str, payment_id: str = "pay_1", amount: str = "150.00",
           currency: str = "EUR") -> ChargeRequest:
    return ChargeRequest(booking_id, payment_id, event_id, Decimal(amount), currency, "tok", "4242", None)


def refund(booking_id: str, event_id: str, refund_id: str, amount: str = "150.00") -> RefundRequest:
    return RefundRequest(booking_id, "pay_1", refund_id, event_id, Decimal(amount), "EUR", None)


async def test_only_the_payment_a_paying_booking_makes_is_asked_for(pool: asyncpg.Pool) -> None:
    paying, event_id = await a_booking(pool, "paying")
    confirmed, other_event = await a_booking(pool, "confirmed")
    pending, third_event = await a_booking(pool, "pending", payment_id=None)
    asked = [charge(paying, event_id),
             charge(paying, event_id, payment_id="pay_2"),  # another payment of it
             charge(paying, event_id, amount="1.00"),  # another amount
             charge(paying, event_id, currency="USD"),
             charge(paying, other_event),  # another event
             charge(confirmed, other_event),  # paid already
             charge(pending, third_event),  # not paying
             charge(str(uuid.uuid4()), event_id),  # no such booking
             charge(paying, event_id)]  # the first again, later in the list
    async with PostgresPaymentUnitOfWork(pool) as uow:
        found = await uow.payments.asked_for(asked)
    assert found == [True, False, False, False, False, False, False, False, True]


async def test_only_the_refund_a_refunding_booking_makes_is_asked_for(pool: asyncpg.Pool) -> None:
    refunding, event_id = await a_booking(pool, "refunding", refund_id="r_1")
    confirmed, other_event = await a_booking(pool, "confirmed")
    async with PostgresPaymentUnitOfWork(pool) as uow:
        assert await uow.payments.refund_asked_for(refund(refunding, event_id, "r_1"))
        assert not await uow.payments.refund_asked_for(refund(refunding, event_id, "r_forged"))
        assert not await uow.payments.refund_asked_for(refund(refunding, event_id, "r_1", amount="999.00"))
        assert not await uow.payments.refund_asked_for(refund(confirmed, other_event, "r_1"))


async def test_a_copy_of_what_was_recorded_is_asked_for_to_be_answered_again(pool: asyncpg.Pool) -> None:
    confirmed, event_id = await a_booking(pool, "confirmed")
    paid = charge(confirmed, event_id)
    async with PostgresPaymentUnitOfWork(pool) as uow:  # its payment, recorded while it was paying
        await uow.payments.attempt(paid, "simulated")
        await uow.commit()
    refunded, other_event = await a_booking(pool, "refunded", refund_id="r_done")
    confirmed_again, third_event = await a_booking(pool, "confirmed", refund_id="r_unanswered")
    async with PostgresPaymentUnitOfWork(pool) as uow:
        for booking_id, event, refund_id, status in [(refunded, other_event, "r_done", "succeeded"),
                                                     (confirmed_again, third_event, "r_unanswered", "refunding")]:
            await pool.execute(
                """INSERT INTO refunds (refund_id, booking_id, payment_id, event_id, amount, currency, provider,
                                        status)
                   VALUES ($1, $2::uuid, 'pay_1', $3, 150, 'EUR', 'simulated', $4)""",
                refund_id, booking_id, event, status)
        assert await uow.payments.asked_for([paid, charge(confirmed, event_id, payment_id="pay_2")]) == [True, False]
        assert await uow.payments.refund_asked_for(refund(refunded, other_event, "r_done"))
        # Left unanswered, the booking confirmed again: asking the provider again would give the money back.
        assert not await uow.payments.refund_asked_for(refund(confirmed_again, third_event, "r_unanswered"))
