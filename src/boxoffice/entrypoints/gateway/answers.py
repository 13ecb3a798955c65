"""The one map from domain error codes to HTTP statuses, and the HTTP answers (CONTRACT §3) that the booking
service's outcome messages stand for."""

from __future__ import annotations

from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import errors
from boxoffice.domain.model import shown_status
from boxoffice.entrypoints.gateway.responses import JSON, ApiError
from boxoffice.messages import Message

Answer = tuple[int, dict[str, Any]]

# A request that could not be stored in Kafka (503), and the refusal kept as the decision of a hold whose fate in
# Kafka was unknown.
NOT_STORED = "queue_unavailable"

STATUS: dict[str, int] = {
    errors.SeatUnavailable.code: 409,
    errors.SeatLimitReached.code: 409,
    errors.SoldOut.code: 409,
    errors.EventCancelled.code: 409,
    errors.SaleNotOpen.code: 409,
    errors.SaleOpen.code: 409,
    errors.NotEnoughAdjacent.code: 409,
    errors.CategoryNotFound.code: 404,
    errors.SectionNotFound.code: 404,
    errors.TooManySeats.code: 422,
    errors.WaitlistEntryNotFound.code: 404,
    errors.WaitlistEntryEnded.code: 409,
    errors.SeatNotFound.code: 404,
    errors.EventNotFound.code: 404,
    errors.BookingNotFound.code: 404,
    errors.InvalidRequest.code: 422,
    errors.AmountMismatch.code: 422,
    errors.BookingNotPending.code: 409,
    errors.BookingExpired.code: 409,
    errors.BookingCancelled.code: 409,
    errors.BookingAlreadyConfirmed.code: 409,
    errors.BookingPaymentFailed.code: 409,
    errors.PaymentInProgress.code: 409,
    errors.NotAdmitted.code: 403,
    errors.AdmissionExpired.code: 403,
    errors.NoWaitingRoom.code: 409,
    errors.ProofOfWorkRequired.code: 403,
    errors.ProofOfWorkInvalid.code: 403,
    errors.RefundInProgress.code: 409,
    errors.BookingRefunded.code: 409,
    errors.RefundFailed.code: 502,
    errors.TicketsUsed.code: 409,
    NOT_STORED: 503,
}
# Any other refusal is a conflict with the state things are in.
DEFAULT_STATUS = 409

# A booking's status, when it no longer takes commands → the refusal's code and how the sentence ends.
ENDED = {
    "expired": (errors.BookingExpired.code, "has expired; its seats were released"),
    "cancelled": (errors.BookingCancelled.code, "was cancelled"),
    "confirmed": (errors.BookingAlreadyConfirmed.code, "is already confirmed"),
    "payment_failed": (errors.BookingPaymentFailed.code, "ended with a declined payment; its seats were released"),
    "paying": (errors.PaymentInProgress.code, "has a payment in progress"),
    "refunding": (errors.RefundInProgress.code, "is being refunded"),
    "refunded": (errors.BookingRefunded.code, "was refunded; its seats were released"),
}


def status_of(code: str) -> int:
    return STATUS.get(code, DEFAULT_STATUS)


def refusal(code: str, sentence: str, **extra: Any) -> Answer:
    return status_of(code), {"success": False, "error": sentence, "code": code, **extra}


def refuse(code: str, sentence: str, **extra: Any) -> ApiError:
    """A refusal to raise from a route."""
    return ApiError(status_of(code), code, sentence, **extra)


def respond(answer: Answer, headers: dict[str, str] | None = None) -> JSON:
    status, body = answer
    return JSON(body, status_code=status, headers=headers)


def reservation_result(message: Message) -> Answer:
    """POST /bookings' answer for a seat.reserved or seat.reservation.failed message."""
    data = message.data
    if message.type == topics.SEAT_RESERVED:
        return 201, {
            "success": True, "bookingId": data["bookingId"], "status": "pending", "eventId": message.event_id,
            "userId": data["userId"], "seatIds": data["seatIds"], "amount": data["amount"],
            "currency": data["currency"], "expiresAt": data["expiresAt"], "requestId": message.request_id,
        }
    return refusal(data["code"], data["reason"], seatIds=data["seatIds"], eventId=message.event_id,
                   requestId=message.request_id)


def waitlist_entry(data: dict[str, Any], event_id: str) -> dict[str, Any]:
    """An entry of the waiting list as a waitlist.updated message tells it."""
    return {"success": True, "waitlistId": data["waitlistId"], "eventId": event_id, "userId": data["userId"],
            "quantity": data["quantity"], "status": data["status"], "position": data.get("position"),
            "bookingId": data.get("bookingId")}


def waitlist_join_result(message: Message) -> Answer:
    """POST /events/{id}/waitlist's answer for the waitlist.updated message that answers a join: 201 for a new
    entry, 200 for the buyer's entry already waiting, the refusal otherwise."""
    data = message.data
    if data.get("code"):
        return refusal(str(data["code"]), str(data.get("reason")))
    return (201 if data.get("joined") else 200), waitlist_entry(data, message.event_id)


def confirmed(booking_id: str, payment_id: str, amount: float, currency: str, seat_ids: list[str]) -> Answer:
    return 200, {"success": True, "status": "confirmed", "bookingId": booking_id, "paymentId": payment_id,
                 "amount": amount, "currency": currency, "seatIds": seat_ids}


def cancelled(booking_id: str, seat_ids: list[str]) -> Answer:
    return 200, {"success": True, "status": "cancelled", "bookingId": booking_id, "seatIds": seat_ids}


def refunded(booking_id: str, refund_id: str, amount: float, currency: str, seat_ids: list[str]) -> Answer:
    return 200, {"success": True, "status": "refunded", "bookingId": booking_id, "refundId": refund_id,
                 "amount": amount, "currency": currency, "seatIds": seat_ids}


def declined(booking_id: str, reason: str = "Payment declined", **extra: Any) -> Answer:
    return 402, {"success": False, "error": f"{reason}; the seats were released", "code": "payment_declined",
                 "status": "payment_failed", "bookingId": booking_id, **extra}


def not_live(booking_id: str, status: str) -> Answer:
    """The refusal of a command to a booking that is no longer pending."""
    code, what = ENDED[status]
    return refusal(code, f"Booking {booking_id} {what}", bookingId=booking_id, status=shown_status(status))


def confirm_result(booking_id: str, payment_id: str, message: Message) -> Answer:
    """A confirm's answer for the booking.confirmed, booking.cancelled or booking.command.rejected message that
    ended its wait. That may be another request's outcome (a cancel, another payment or the expiry that got
    there first): then the answer is why this payment cannot confirm the booking, never another's success."""
    data = message.data
    if message.type == topics.BOOKING_CONFIRMED:
        if data["paymentId"] != payment_id:
            return not_live(booking_id, "confirmed")
        return confirmed(booking_id, data["paymentId"], data["amount"], data["currency"], data["seatIds"])
    if message.type == topics.BOOKING_CANCELLED:
        if data.get("status") == "payment_failed":
            return declined(booking_id, data.get("declineReason") or "Payment declined",
                            declineCode=data.get("declineCode"))
        return not_live(booking_id, str(data.get("status")))
    return rejected(booking_id, message)


def cancel_result(booking_id: str, message: Message) -> Answer:
    """A cancel's (or a refund's) answer for the message that ended its wait; if that is another request's
    outcome (a payment or the expiry that got there first), why the booking cannot be cancelled."""
    data = message.data
    if message.type == topics.BOOKING_CANCELLED:
        status = data.get("status")
        if status == "cancelled":
            return cancelled(booking_id, data["seatIds"])
        if status == "refunded":
            return refunded(booking_id, str(data.get("refundId")), data.get("amount") or 0.0,
                            str(data.get("currency") or ""), data["seatIds"])
        return not_live(booking_id, str(status))
    if message.type == topics.BOOKING_CONFIRMED:
        return not_live(booking_id, "confirmed")
    return rejected(booking_id, message)


def rejected(booking_id: str, message: Message) -> Answer:
    """The refusal a booking.command.rejected message stands for."""
    return refusal(str(message.data.get("code")), str(message.data.get("reason")), bookingId=booking_id)
