"""The booking service's PostgreSQL side after a hold: confirm, pay, cancel, expire.

Each message is one transaction: the booking row is locked, the domain decides, and the booking, its
seats and the outbox rows are written together. Redelivered messages find the booking already moved on
and change nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

import asyncpg

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.adapters.outbox import insert_outbox
from boxoffice.adapters.sequence import stamp_sequence
from boxoffice.domain import errors, events
from boxoffice.domain.model import Booking, BookingStatus
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message
from boxoffice.service_layer.lifecycle_messages import messages_for, rejection
from boxoffice.service_layer.ports import OutboxRow

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

LIFECYCLE_TOPICS = (
    topics.BOOKING_CONFIRMATION_REQUESTED, topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED,
    topics.BOOKING_CANCELLATION_REQUESTED, topics.SEAT_RESERVATION_TIMEOUT,
)

_COMMANDS = {topics.BOOKING_CONFIRMATION_REQUESTED: "confirm", topics.BOOKING_CANCELLATION_REQUESTED: "cancel"}

# What a handled message did, counted and logged once its transaction has committed:
# (booking status or "rejected", booking id, the refused command and its code, request id).
Outcome = tuple[str, str, tuple[str, str] | None, str | None]


class SeatsOutOfStep(Exception):
    """A booking's seats are not in the state the booking says: the transaction is rolled back."""


def _booking(row: asyncpg.Record) -> Booking:
    return Booking(str(row["booking_id"]), row["event_id"], row["user_id"], list(row["seat_ids"]), row["amount"],
                   row["currency"].strip(), BookingStatus(row["status"]), row["expires_at"], row["payment_id"])


def _amount(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if isinstance(value, (int, float, str)) else None
    except InvalidOperation:
        return None


class LifecycleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, message: Message, now: datetime) -> list[OutboxRow]:
        return await self.handle_many([message], now)

    async def handle_many(self, batch: list[Message], now: datetime) -> list[OutboxRow]:
        """One commit for the whole run, one savepoint per message, in order."""
        rows: list[OutboxRow] = []
        outcomes: list[Outcome] = []
        async with self._pool.acquire() as con, con.transaction():
            for message in batch:
                token = REQUEST_ID.set(message.request_id)  # for the lines logged while it is handled
                try:
                    async with con.transaction():
                        rows += await self._handle(con, message, now, outcomes)
                except SeatsOutOfStep:
                    log.exception("%s %s left unapplied: the booking and its seats disagree", message.type,
                                  message.id)
                finally:
                    REQUEST_ID.reset(token)
        _record(outcomes)
        return rows

    async def _handle(self, con: asyncpg.Connection, message: Message, now: datetime,
                      outcomes: list[Outcome]) -> list[OutboxRow]:
        booking_id = message.data.get("bookingId")
        if not isinstance(booking_id, str) or not _UUID.match(booking_id):
            log.error("dropping %s %s without a valid bookingId", message.type, message.id)
            return []
        row = await con.fetchrow("SELECT * FROM bookings WHERE booking_id = $1 FOR UPDATE", booking_id)
        command = _COMMANDS.get(message.type)
        if row is None:
            if command is None:
                return []
            outcomes.append(("rejected", booking_id, (command, errors.BookingNotFound.code), message.request_id))
            return await insert_outbox(con, [_encode(rejection(
                message.event_id, booking_id, command, errors.BookingNotFound.code,
                f"Booking {booking_id} does not exist", message.request_id))])
        booking = _booking(row)
        try:
            if not self._decide(booking, message, now):
                return []
        except errors.DomainError as exc:
            if command is None:
                log.info("%s for booking %s ignored: %s", message.type, booking_id, exc.message)
                return []
            outcomes.append(("rejected", booking_id, (command, exc.code), message.request_id))
            return await insert_outbox(con, [_encode(rejection(
                booking.event_id, booking_id, command, exc.code, exc.message, message.request_id))])
        await self._write(con, booking)
        card = message.data.get("card") if message.type == topics.BOOKING_CONFIRMATION_REQUESTED else None
        decline = ({"declineCode": message.data.get("declineCode"), "declineReason": message.data.get("reason")}
                   if message.type == topics.PAYMENT_FAILED else None)
        outgoing = messages_for(booking, row["email"], message.request_id, card if isinstance(card, str) else None,
                                decline)
        await stamp_sequence(con, outgoing)
        rows = await insert_outbox(con, [_encode(m) for m in outgoing])
        outcomes.append((booking.status.value, booking_id, None, message.request_id))
        return rows

    async def expire(self, booking_ids: list[str], now: datetime) -> list[OutboxRow]:
        """Many timeouts in one transaction: at the end of a big on-sale's hold, thousands fall due together.
        Bookings no longer pending (paid, cancelled, already expired) or not yet due are left alone."""
        ids = sorted({b for b in booking_ids if _UUID.match(b)})
        if not ids:
            return []
        async with self._pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT * FROM bookings WHERE booking_id = ANY($1::uuid[]) AND status = 'pending' "
                "AND expires_at <= $2 ORDER BY booking_id FOR UPDATE", ids, now)
            if not rows:
                return []
            bookings = [_booking(r) for r in rows]
            for booking in bookings:
                booking.expire(now)
            seats = sorted((b.event_id, s, b.booking_id) for b in bookings for s in b.seat_ids)
            released = await con.execute(
                """UPDATE seats s SET status = 'AVAILABLE', booking_id = NULL, updated_at = now()
                   FROM unnest($1::text[], $2::text[], $3::uuid[]) AS r(event_id, seat_id, booking_id)
                   WHERE s.event_id = r.event_id AND s.seat_id = r.seat_id AND s.booking_id = r.booking_id
                     AND s.status = 'RESERVED'""", *(list(c) for c in zip(*seats, strict=True)))
            if int(released.split()[-1]) != len(seats):
                raise SeatsOutOfStep(f"expiring {len(bookings)} bookings: {released}, expected {len(seats)} seats")
            expired = [b.booking_id for b in bookings]
            await con.execute("UPDATE booking_seats SET live = false WHERE booking_id = ANY($1::uuid[])", expired)
            await con.execute(
                "UPDATE bookings SET status = 'expired', end_reason = 'timeout', decided_at = now(), "
                "updated_at = now() WHERE booking_id = ANY($1::uuid[])", expired)
            emails = {str(r["booking_id"]): r["email"] for r in rows}
            outgoing = [m for b in bookings for m in messages_for(b, emails[b.booking_id], None, None)]
            await stamp_sequence(con, outgoing)
            outbox = await insert_outbox(con, [_encode(m) for m in outgoing])
        metrics.HOLDS_EXPIRED.inc(by=len(expired))
        log.info("%d holds expired; their seats are available again", len(expired))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("expired bookings: %s", ", ".join(expired))
        return outbox

    @staticmethod
    def _decide(booking: Booking, message: Message, now: datetime) -> bool:
        """Applies the message to the booking; False when it is a duplicate or stale and changes nothing."""
        data = message.data
        if message.type == topics.BOOKING_CONFIRMATION_REQUESTED:
            payment_id, amount = data.get("paymentId"), _amount(data.get("amount"))
            if not isinstance(payment_id, str) or amount is None:
                raise errors.InvalidRequest("A confirmation needs a paymentId and an amount")
            if booking.payment_id == payment_id and booking.status is not BookingStatus.PENDING:
                return False  # the same payment again: its first answer stands
            booking.start_payment(payment_id, amount, now)
        elif message.type in (topics.PAYMENT_SUCCEEDED, topics.PAYMENT_FAILED):
            if booking.status is not BookingStatus.PAYING or booking.payment_id != data.get("paymentId"):
                return False
            booking.confirm() if message.type == topics.PAYMENT_SUCCEEDED else booking.fail_payment()
        elif message.type == topics.BOOKING_CANCELLATION_REQUESTED:
            booking.cancel()
        elif message.type == topics.SEAT_RESERVATION_TIMEOUT:
            if booking.status is not BookingStatus.PENDING or now < booking.expires_at:
                return False
            booking.expire(now)
        else:
            return False
        return True

    @staticmethod
    async def _write(con: asyncpg.Connection, booking: Booking) -> None:
        seats = sorted(booking.seat_ids)
        for event in booking.events:
            if isinstance(event, events.PaymentRequested):
                await con.execute(
                    "UPDATE bookings SET status = 'paying', payment_id = $2, payment_requested_at = now(), "
                    "updated_at = now() WHERE booking_id = $1", booking.booking_id, booking.payment_id)
            elif isinstance(event, events.BookingConfirmed):
                booked = await con.execute(
                    "UPDATE seats SET status = 'BOOKED', updated_at = now() WHERE event_id = $1 "
                    "AND seat_id = ANY($2) AND booking_id = $3 AND status = 'RESERVED'",
                    booking.event_id, seats, booking.booking_id)
                _expect(booked, len(seats), booking)
                await con.execute(
                    "UPDATE bookings SET status = 'confirmed', decided_at = now(), updated_at = now() "
                    "WHERE booking_id = $1", booking.booking_id)
            elif isinstance(event, events.SeatsReleased):
                released = await con.execute(
                    "UPDATE seats SET status = 'AVAILABLE', booking_id = NULL, updated_at = now() "
                    "WHERE event_id = $1 AND seat_id = ANY($2) AND booking_id = $3 AND status = 'RESERVED'",
                    booking.event_id, seats, booking.booking_id)
                _expect(released, len(seats), booking)
                await con.execute("UPDATE booking_seats SET live = false WHERE booking_id = $1", booking.booking_id)
                await con.execute(
                    "UPDATE bookings SET status = $2, end_reason = $3, decided_at = now(), updated_at = now() "
                    "WHERE booking_id = $1", booking.booking_id, booking.status.value, event.reason)


_DONE = {
    BookingStatus.CONFIRMED.value: (metrics.BOOKINGS_CONFIRMED, "booking %s confirmed; its seats are booked"),
    BookingStatus.CANCELLED.value: (metrics.BOOKINGS_CANCELLED, "booking %s cancelled; its seats are available"),
    BookingStatus.EXPIRED.value: (metrics.HOLDS_EXPIRED, "booking %s expired; its seats are available"),
    BookingStatus.PAYMENT_FAILED.value: (None, "booking %s: payment declined; its seats are available"),
}


def _record(outcomes: list[Outcome]) -> None:
    """Counts and logs what committed: one line per booking that changed, never per reservation request."""
    for status, booking_id, refused, request_id in outcomes:
        extra = {"requestId": request_id} if request_id else None
        if refused is not None:
            metrics.BOOKING_COMMANDS_REJECTED.inc(*refused)
            log.info("%s of booking %s refused: %s", refused[0], booking_id, refused[1], extra=extra)
        elif status in _DONE:
            counter, line = _DONE[status]
            if counter is not None:
                counter.inc()
            log.info(line, booking_id, extra=extra)
        else:
            log.debug("booking %s is %s", booking_id, status, extra=extra)


def _expect(result: str, count: int, booking: Booking) -> None:
    if int(result.split()[-1]) != count:
        raise SeatsOutOfStep(f"booking {booking.booking_id}: {result}, expected {count} seats")


def _encode(item: tuple[str, Message]) -> tuple[str, bytes, bytes]:
    topic, message = item
    return topic, message.key, message.encode()
