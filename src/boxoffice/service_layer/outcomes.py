"""Reservation outcomes as messages and as HTTP answers: one mapping, used by the writer and the gateway."""

from __future__ import annotations

from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import errors, events
from boxoffice.messages import Message, iso

_FAILURE_STATUS = {
    errors.SeatUnavailable.code: 409,
    errors.SeatNotFound.code: 404,
    errors.EventNotFound.code: 404,
    errors.InvalidRequest.code: 422,
    errors.SeatLimitReached.code: 409,
}


def reservation_message(outcome: events.SeatsReserved | events.ReservationFailed) -> tuple[str, Message]:
    if isinstance(outcome, events.SeatsReserved):
        data: dict[str, Any] = {
            "bookingId": outcome.booking_id, "userId": outcome.user_id, "seatIds": outcome.seat_ids,
            "amount": float(outcome.amount), "currency": outcome.currency,
            "expiresAt": iso(outcome.expires_at), "status": "pending",
        }
        return topics.SEAT_RESERVED, Message(topics.SEAT_RESERVED, outcome.event_id, data, outcome.request_id)
    data = {"userId": outcome.user_id, "seatIds": outcome.seat_ids, "code": outcome.code, "reason": outcome.reason}
    return topics.SEAT_RESERVATION_FAILED, Message(topics.SEAT_RESERVATION_FAILED, outcome.event_id, data,
                                                   outcome.request_id)


def reservation_result(message: Message) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body (CONTRACT §3) that a reservation outcome message stands for."""
    data = message.data
    if message.type == topics.SEAT_RESERVED:
        return 201, {
            "success": True, "bookingId": data["bookingId"], "status": "pending", "eventId": message.event_id,
            "userId": data["userId"], "seatIds": data["seatIds"], "amount": data["amount"],
            "currency": data["currency"], "expiresAt": data["expiresAt"], "requestId": message.request_id,
        }
    return _FAILURE_STATUS.get(data["code"], 409), {
        "success": False, "error": data["reason"], "code": data["code"], "seatIds": data["seatIds"],
        "eventId": message.event_id, "requestId": message.request_id,
    }
