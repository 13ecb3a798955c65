"""A booking after its hold: paying, the payment's outcome, cancelling, and holds that ran out.

Each handler locks its bookings, lets the domain decide, and writes the bookings, their seats and the
messages together. Confirmation requests and payment outcomes come in runs of tens to hundreds under load:
their handlers decide a whole run of one topic at once, with one lock, one save and one write of the
messages, message by message in partition order as one by one would (a booking named twice sees the first
message's effect); the single-message handlers are the same over a run of one, for the service's fallback.
A redelivered message finds the booking already moved on and changes nothing; a buyer's command that the
booking's state refuses is answered with booking.command.rejected.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.domain import errors, events, moments
from boxoffice.domain.model import Booking, BookingStatus
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message
from boxoffice.service_layer import waitlist
from boxoffice.service_layer.booking_ports import BookingUnitOfWork
from boxoffice.service_layer.change_numbers import number_seat_changes
from boxoffice.service_layer.decisions import Decide, Decision
from boxoffice.service_layer.lifecycle_messages import messages_for, rejection
from boxoffice.service_layer.payment_ports import CardTokeniser
from boxoffice.service_layer.unit_of_work import Outgoing

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Applies a message to its booking; False when the message is a duplicate or stale and changes nothing.
Apply = Callable[[Booking, Message, datetime], bool]


def _amount(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if isinstance(value, (int, float, str)) else None
    except InvalidOperation:
        return None


def _start_payment(booking: Booking, message: Message, now: datetime) -> bool:
    payment_id, amount = message.data.get("paymentId"), _amount(message.data.get("amount"))
    if not isinstance(payment_id, str) or amount is None:
        raise errors.InvalidRequest("A confirmation needs a paymentId and an amount")
    if booking.repeats_payment(payment_id):
        return False  # the same payment again: its outcome answers (a refunded booking's is refused below)
    booking.start_payment(payment_id, amount, now, _asked_at(message))
    return True


def _asked_at(message: Message) -> datetime | None:
    """When the gateway took the request (the envelope's occurredAt)."""
    try:
        return moments.parse(message.occurred_at)
    except (AttributeError, ValueError):
        return None


def _is_current_payment(booking: Booking, message: Message) -> bool:
    return booking.status is BookingStatus.PAYING and booking.payment_id == message.data.get("paymentId")


def refund_id(booking: Booking) -> str:
    """One refund per booking, ever: its id is the booking's."""
    return f"refund_{booking.booking_id}"


def _cancel(booking: Booking, message: Message, seats_let_in: list[str]) -> bool:
    """A hold not yet paid is let go; a paid booking is refunded when the buyer asked for a refund (CONTRACT
    §8.3), unless a ticket of it was used at the door — a cancel of the hold that its payment overtook is
    refused, not turned into a refund. A refund under way changes nothing: its outcome answers."""
    if booking.status is BookingStatus.REFUNDING:
        return False
    if booking.status is BookingStatus.CONFIRMED and message.data.get("refund") is True:
        booking.start_refund(refund_id(booking), seats_let_in)
    else:
        booking.cancel()
    return True


async def request_payments(uow: BookingUnitOfWork, run: list[Message], decide: Decide) -> list[Decision]:
    return await _apply(uow, run, decide, _start_payment, command="confirm")


async def request_payment(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    return await request_payments(uow, [message], decide)


async def _payments_recorded(uow: BookingUnitOfWork, run: list[Message]) -> dict[tuple[str, str], str]:
    keys = sorted({(b.lower(), str(m.data.get("paymentId"))) for m in run if (b := _booking_id(m)) is not None})
    return await uow.payment_records.payment_statuses(keys)


def _as_recorded(message: Message, booking: Booking, found: str | None, statuses: tuple[str, ...]) -> bool:
    """Whether the payment service recorded this outcome: the broker takes any local producer's messages."""
    if found in statuses:
        return True
    log.warning("%s for booking %s does not match what the payment service recorded (%s): ignored", message.type,
                booking.booking_id, found or "nothing")
    metrics.FORGED_OUTCOMES.inc(message.type)
    return False


def _current_and_recorded(booking: Booking, message: Message, recorded: dict[tuple[str, str], str],
                          status: str) -> bool:
    """The outcome of the payment the booking is paying under, as the payment service recorded it."""
    return _is_current_payment(booking, message) and _as_recorded(
        message, booking, recorded.get((booking.booking_id, str(message.data.get("paymentId")))), (status,))


async def payments_succeeded(uow: BookingUnitOfWork, run: list[Message], decide: Decide) -> list[Decision]:
    """Paid: confirmed; if the event was called off while the payment was in flight, refunded at once."""
    called_off = await uow.events.cancelled(sorted({m.event_id for m in run}))
    recorded = await _payments_recorded(uow, run)

    def confirm(booking: Booking, message: Message, now: datetime) -> bool:
        if not _current_and_recorded(booking, message, recorded, "succeeded"):
            return False
        booking.confirm()
        if message.event_id in called_off:
            booking.start_refund(refund_id(booking))
        return True
    return await _apply(uow, run, decide, confirm)


async def payment_succeeded(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    return await payments_succeeded(uow, [message], decide)


async def payments_failed(uow: BookingUnitOfWork, run: list[Message], decide: Decide) -> list[Decision]:
    recorded = await _payments_recorded(uow, run)

    def release(booking: Booking, message: Message, now: datetime) -> bool:
        if not _current_and_recorded(booking, message, recorded, "failed"):
            return False
        booking.fail_payment()
        return True
    return await _apply(uow, run, decide, release)


async def payment_failed(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    return await payments_failed(uow, [message], decide)


async def cancel_booking(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    let_in: dict[str, list[str]] = {}
    if message.data.get("refund") is True and (booking_id := _booking_id(message)) is not None:
        # Locked before the door's entries are read: a ticket being checked in meanwhile is waited for.
        await uow.bookings.lock([booking_id])
        let_in = await uow.bookings.let_in([booking_id])

    def cancel(booking: Booking, message: Message, now: datetime) -> bool:
        return _cancel(booking, message, let_in.get(booking.booking_id, []))
    return await _apply(uow, [message], decide, cancel, command="cancel")


async def refund_succeeded(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    return await _apply(uow, [message], decide,
                        await _refund_as_recorded(uow, message, lambda booking: booking.refunded(), ("succeeded",)))


async def refund_failed(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    # A refund the provider left unanswered is reported failed but stays "refunding" in the payment service.
    reason = str(message.data.get("reason") or "the payment provider refused")
    return await _apply(uow, [message], decide, await _refund_as_recorded(
        uow, message, lambda booking: booking.refund_failed(reason), ("failed", "refunding")))


async def _refund_as_recorded(uow: BookingUnitOfWork, message: Message, outcome: Callable[[Booking], None],
                              statuses: tuple[str, ...]) -> Apply:
    """The refund's outcome for the booking being refunded under it, once the payment service recorded it so."""
    refund_id = str(message.data.get("refundId"))
    found = (await uow.payment_records.refund_statuses([refund_id])).get(refund_id)

    def checked(booking: Booking, message: Message, now: datetime) -> bool:
        if booking.status is not BookingStatus.REFUNDING or refund_id != booking.refund_id:
            return False  # a redelivery, or not this booking's refund
        status = found[1] if found is not None and found[0] == booking.booking_id else None
        if not _as_recorded(message, booking, status, statuses):
            return False
        outcome(booking)
        return True
    return checked


async def expire_holds(uow: BookingUnitOfWork, batch: list[Message], decide: Decide) -> list[Decision]:
    """Many timeouts in one transaction: at the end of a big on-sale's hold, thousands fall due together.
    Bookings no longer pending (paid, cancelled, already expired) or not yet due are left alone."""
    ids = sorted({b for m in batch if isinstance(b := m.data.get("bookingId"), str) and _UUID.match(b)})
    if not ids:
        return []
    due = [b for b in await uow.bookings.lock(ids)
           if b.status is BookingStatus.PENDING and decide.now >= b.expires_at]
    for booking in due:
        booking.expire(decide.now)
    if not due:
        return []
    await uow.bookings.save(due)
    to_waitlist, offered = await waitlist.after_release(uow, due, decide)
    await _publish(uow, [*(m for b in due for m in messages_for(b, None)), *to_waitlist])
    return [(event, None) for b in due for event in b.events] + offered


def _booking_id(message: Message) -> str | None:
    booking_id = message.data.get("bookingId")
    return booking_id if isinstance(booking_id, str) and _UUID.match(booking_id) else None


@contextlib.contextmanager
def _handling(message: Message) -> Iterator[None]:
    """Lines logged while one message of a run is decided carry its request id."""
    token = REQUEST_ID.set(message.request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


async def _apply(uow: BookingUnitOfWork, run: list[Message], decide: Decide, apply: Apply,
                 command: str | None = None) -> list[Decision]:
    """Applies each message of the run to its booking, in order. `command` names a buyer's command, which is
    answered even when refused; other messages are not."""
    named = [b for m in run if (b := _booking_id(m)) is not None]
    found = {b.booking_id: b for b in await uow.bookings.lock(named)} if named else {}
    changed: dict[str, Booking] = {}
    outgoing: list[Message] = []
    decisions: list[Decision] = []
    for message in run:
        with _handling(message):
            booking_id = _booking_id(message)
            if booking_id is None:
                log.error("dropping %s %s without a valid bookingId", message.type, message.id)
                continue
            booking = found.get(booking_id.lower())  # the database spells a uuid in lower case
            if booking is None:
                if command is not None:
                    missing = errors.BookingNotFound(f"Booking {booking_id} does not exist")
                    _refuse(outgoing, decisions, message, message.event_id, booking_id, command, missing)
                continue
            recorded = len(booking.events)
            try:
                if not apply(booking, message, decide.now):
                    continue
            except errors.DomainError as exc:
                if command is None:
                    log.info("%s for booking %s ignored: %s", message.type, booking_id, exc.message)
                else:
                    _refuse(outgoing, decisions, message, booking.event_id, booking_id, command, exc)
                continue
            changed[booking.booking_id] = booking
            card = (await card_fields(message.data, decide.cards)
                    if message.type == topics.BOOKING_CONFIRMATION_REQUESTED else None)
            decline = ({"declineCode": message.data.get("declineCode"), "declineReason": message.data.get("reason")}
                       if message.type == topics.PAYMENT_FAILED else None)
            # This message's own events only, as they are now: a later message of the run cannot change them.
            outgoing += messages_for(booking, message.request_id, card, decline, since=recorded)
            decisions += [(event, message.request_id) for event in booking.events[recorded:]]
    offered: list[Decision] = []
    if changed:
        await uow.bookings.save(list(changed.values()))
        to_waitlist, offered = await waitlist.after_release(uow, changed.values(), decide)
        outgoing += to_waitlist
    if outgoing:
        await _publish(uow, outgoing)
    return decisions + offered


async def card_fields(data: dict[str, Any], cards: CardTokeniser | None) -> dict[str, Any]:
    """What payment.requested passes on of the card a confirmation named: the provider's token, never a number.
    A confirmation sent before cards were tokenised names the number: it is tokenised here (or, with nothing to
    tokenise it, passed on for the payment service to)."""
    fields = {k: v for k in ("cardToken", "cardLast4") if isinstance(v := data.get(k), str)}
    number = data.get("card")
    if "cardToken" in fields or not isinstance(number, str):
        return fields
    if cards is None:
        return {"card": number}
    token = await cards.tokenise(number)
    return {"cardToken": token.token, "cardLast4": token.last4}


def _refuse(outgoing: list[Message], decisions: list[Decision], message: Message, event_id: str, booking_id: str,
            command: str, error: errors.DomainError) -> None:
    refused = events.CommandRejected(booking_id, event_id, command, error.code, error.message)
    outgoing.append(rejection(refused, message.request_id))
    decisions.append((refused, message.request_id))


async def _publish(uow: BookingUnitOfWork, outgoing: list[Message]) -> None:
    await number_seat_changes(uow.sequence, outgoing)
    await uow.outbox.add([Outgoing.of(m) for m in outgoing])
