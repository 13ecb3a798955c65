"""Drives the booking service's handlers against a real PostgreSQL, as its consumer loop does."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from boxoffice import messages as topics
from boxoffice.adapters.booking_uow import PostgresBookingUnitOfWork
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import Message
from boxoffice.service_layer.booking import BookingService
from boxoffice.service_layer.decisions import BookingRules
from boxoffice.service_layer.ports import OutboxRow

HOLD = timedelta(minutes=10)


class CollectingOutbox:
    """Keeps what a handler submits for publishing."""

    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        self.rows += rows


def reservation(command: ReserveSeats) -> Message:
    data = {"userId": command.user_id, "seatIds": list(command.seat_ids), "bodyHash": command.body_hash,
            "email": command.email}
    return Message(topics.SEAT_RESERVATION_REQUESTED, command.event_id, data, command.request_id)


def booking_service(pool: asyncpg.Pool, outbox: CollectingOutbox, *, hold: timedelta = HOLD,
                    now: datetime | None = None, seats_per_user: int | None = None, seat_check: bool = True,
                    after_lock: Callable[[], Awaitable[None]] | None = None) -> BookingService:
    return BookingService(lambda: PostgresBookingUnitOfWork(pool, seat_check=seat_check, after_lock=after_lock),
                          outbox, BookingRules(hold, 10, seats_per_user), lambda: now or datetime.now(UTC))


async def record_as_the_payment_service(pool: asyncpg.Pool, messages: list[Message]) -> None:
    """The rows the payment service commits before it publishes these payment and refund outcomes."""
    for m in messages:
        data = m.data
        if m.type in (topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED) and _is_uuid(data.get("bookingId")):
            await pool.execute(
                "INSERT INTO payments (booking_id, payment_id, event_id, amount, currency, status, provider) "
                "VALUES ($1, $2, $3, $4, 'USD', $5, 'test') "
                "ON CONFLICT (booking_id, payment_id) DO UPDATE SET status = EXCLUDED.status",
                data["bookingId"], str(data.get("paymentId")), m.event_id, Decimal(str(data.get("amount", 0))),
                "succeeded" if m.type == topics.PAYMENT_SUCCEEDED else "failed")
        elif m.type in (topics.REFUND_SUCCEEDED, topics.REFUND_FAILED) and _is_uuid(data.get("bookingId")):
            await pool.execute(
                "INSERT INTO refunds (refund_id, booking_id, payment_id, event_id, amount, currency, provider, status) "
                "VALUES ($1, $2, $3, $4, $5, 'USD', 'test', $6) "
                "ON CONFLICT (refund_id) DO UPDATE SET status = EXCLUDED.status",
                str(data.get("refundId")), data["bookingId"], str(data.get("paymentId", "")), m.event_id,
                Decimal(str(data.get("amount", 0))), "succeeded" if m.type == topics.REFUND_SUCCEEDED else "failed")


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


async def decide(pool: asyncpg.Pool, messages: list[Message], now: datetime | None = None,
                 **options: object) -> list[OutboxRow]:
    """Hands `messages` to a booking service at `now`, each payment or refund outcome recorded first as the
    payment service would have; returns the outbox rows it submitted."""
    await record_as_the_payment_service(pool, messages)
    outbox = CollectingOutbox()
    await booking_service(pool, outbox, now=now, **options)(messages)  # type: ignore[arg-type]
    return outbox.rows


async def reserve(pool: asyncpg.Pool, commands: list[ReserveSeats], hold: timedelta = HOLD,
                  now: datetime | None = None, **options: object) -> list[OutboxRow]:
    return await decide(pool, [reservation(c) for c in commands], now, hold=hold, **options)


async def expire(pool: asyncpg.Pool, event_id: str, booking_ids: list[str], now: datetime) -> list[OutboxRow]:
    timeouts = [Message(topics.SEAT_RESERVATION_TIMEOUT, event_id, {"bookingId": b}) for b in booking_ids]
    return await decide(pool, timeouts, now)


async def handle(pool: asyncpg.Pool, message: Message, now: datetime | None = None) -> list[OutboxRow]:
    return await decide(pool, [message], now)
