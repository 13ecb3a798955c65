"""Messages for what happens to a booking after its hold: payment, confirmation, release, refusal."""

from __future__ import annotations

from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import events
from boxoffice.domain.model import Booking
from boxoffice.messages import Message


def _booking_data(booking: Booking) -> dict[str, Any]:
    return {"bookingId": booking.booking_id, "userId": booking.user_id, "email": booking.email,
            "seatIds": list(booking.seat_ids)}


def messages_for(booking: Booking, request_id: str | None, card: dict[str, Any] | None = None,
                 decline: dict[str, Any] | None = None, since: int = 0) -> list[Message]:
    """The messages for the events the booking recorded (from its `since`-th on), in order."""
    out: list[Message] = []
    for event in booking.events[since:]:
        if isinstance(event, events.PaymentRequested):
            data: dict[str, Any] = {"bookingId": event.booking_id, "paymentId": event.payment_id,
                                    "amount": float(event.amount), "currency": event.currency, **(card or {})}
            out.append(Message(topics.PAYMENT_REQUESTED, booking.event_id, data, request_id))
        elif isinstance(event, events.BookingConfirmed):
            data = {**_booking_data(booking), "amount": float(event.amount), "currency": event.currency,
                    "paymentId": event.payment_id}
            out.append(Message(topics.BOOKING_CONFIRMED, booking.event_id, data, request_id))
        elif isinstance(event, events.RefundRequested):
            data = {"bookingId": event.booking_id, "paymentId": event.payment_id, "refundId": event.refund_id,
                    "amount": float(event.amount), "currency": event.currency}
            out.append(Message(topics.REFUND_REQUESTED, booking.event_id, data, request_id))
        elif isinstance(event, events.RefundFailed):
            refused = events.CommandRejected(booking.booking_id, booking.event_id, "cancel", "refund_failed",
                                             f"The refund of booking {booking.booking_id} failed: {event.reason}; "
                                             "the booking stays confirmed")
            out.append(rejection(refused, request_id))
        elif isinstance(event, events.SeatsReleased):
            released = {**_booking_data(booking), "reason": event.reason}
            if event.reason == "refunded":  # the refund email says how much goes back
                released |= {"refundId": booking.refund_id, "amount": float(booking.amount),
                             "currency": booking.currency}
            out.append(Message(topics.SEAT_RELEASED, booking.event_id, released, request_id))
            ended = {**released, "status": booking.status.value, **(decline or {})}
            out.append(Message(topics.BOOKING_CANCELLED, booking.event_id, ended, request_id))
    return out


def rejection(refused: events.CommandRejected, request_id: str | None) -> Message:
    data = {"bookingId": refused.booking_id, "command": refused.command, "code": refused.code,
            "reason": refused.reason}
    return Message(topics.BOOKING_COMMAND_REJECTED, refused.event_id, data, request_id)
