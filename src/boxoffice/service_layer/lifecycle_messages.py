"""Messages for what happens to a booking after its hold: payment, confirmation, release, refusal."""

from __future__ import annotations

from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import events
from boxoffice.domain.model import Booking, BookingStatus
from boxoffice.messages import Message


def _booking_data(booking: Booking, email: str) -> dict[str, Any]:
    return {"bookingId": booking.booking_id, "userId": booking.user_id, "email": email,
            "seatIds": list(booking.seat_ids)}


def messages_for(booking: Booking, email: str, request_id: str | None, card: str | None,
                 decline: dict[str, Any] | None = None) -> list[tuple[str, Message]]:
    """The messages for the events the booking recorded, in order."""
    out: list[tuple[str, Message]] = []
    for event in booking.events:
        if isinstance(event, events.PaymentRequested):
            data = {"bookingId": event.booking_id, "paymentId": event.payment_id, "amount": float(event.amount),
                    "currency": event.currency, "card": card}
            out.append((topics.PAYMENT_REQUESTED, Message(topics.PAYMENT_REQUESTED, booking.event_id, data, request_id)))
        elif isinstance(event, events.BookingConfirmed):
            data = {**_booking_data(booking, email), "amount": float(event.amount), "currency": event.currency,
                    "paymentId": event.payment_id}
            out.append((topics.BOOKING_CONFIRMED, Message(topics.BOOKING_CONFIRMED, booking.event_id, data, request_id)))
        elif isinstance(event, events.SeatsReleased):
            released = {**_booking_data(booking, email), "reason": event.reason}
            out.append((topics.SEAT_RELEASED, Message(topics.SEAT_RELEASED, booking.event_id, released, request_id)))
            ended = {**released, "status": booking.status.value, **(decline or {})}
            out.append((topics.BOOKING_CANCELLED, Message(topics.BOOKING_CANCELLED, booking.event_id, ended, request_id)))
    return out


def rejection(event_id: str, booking_id: str, command: str, code: str, reason: str,
              request_id: str | None) -> tuple[str, Message]:
    data = {"bookingId": booking_id, "command": command, "code": code, "reason": reason}
    return topics.BOOKING_COMMAND_REJECTED, Message(topics.BOOKING_COMMAND_REJECTED, event_id, data, request_id)


ENDED_STATUSES = {BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.PAYMENT_FAILED}
