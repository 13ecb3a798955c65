"""Reservation outcomes as the messages the booking service publishes (the gateway makes them HTTP answers)."""

from __future__ import annotations

from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import events
from boxoffice.messages import Message, iso


def reservation_message(outcome: events.SeatsReserved | events.ReservationFailed) -> Message:
    if isinstance(outcome, events.SeatsReserved):
        data: dict[str, Any] = {
            "bookingId": outcome.booking_id, "userId": outcome.user_id, "seatIds": outcome.seat_ids,
            "amount": float(outcome.amount), "currency": outcome.currency,
            "expiresAt": iso(outcome.expires_at), "status": "pending",
        }
        return Message(topics.SEAT_RESERVED, outcome.event_id, data, outcome.request_id)
    data = {"userId": outcome.user_id, "seatIds": outcome.seat_ids, "code": outcome.code, "reason": outcome.reason}
    return Message(topics.SEAT_RESERVATION_FAILED, outcome.event_id, data, outcome.request_id)
