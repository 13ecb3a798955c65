"""Paying for and cancelling a booking; a user's bookings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from boxoffice import messages as topics
from boxoffice import views
from boxoffice.adapters.payment_provider import luhn_valid
from boxoffice.domain import errors
from boxoffice.domain.accounts import Principal
from boxoffice.domain.model import PAYMENT_ANSWERS
from boxoffice.entrypoints.gateway import answers
from boxoffice.entrypoints.gateway.access import (
    BODY_TOO_LARGE,
    LIMITED,
    OWNED,
    require_owner,
)
from boxoffice.entrypoints.gateway.answers import respond
from boxoffice.entrypoints.gateway.bookings import owned_booking, publish_command
from boxoffice.entrypoints.gateway.deps import NO_BODY, Caller, GatewayDep, LimitedCaller
from boxoffice.entrypoints.gateway.replies import within
from boxoffice.entrypoints.gateway.responses import JSON, ApiError, error
from boxoffice.entrypoints.gateway.schemas import (
    USER_ID,
    BookingAnswer,
    BookingList,
    ConfirmRequest,
    ErrorBody,
)
from boxoffice.messages import Message

router = APIRouter(tags=["bookings"], responses=BODY_TOO_LARGE)

BookingPath = Annotated[str, Path(max_length=64)]
_USER_ID = re.compile(USER_ID)

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}


# A cancel refused with these was overtaken by another cancel or refund of the same booking.
_ENDED_BY_ANOTHER = (errors.BookingCancelled.code, errors.BookingRefunded.code)


def _processing(booking_id: str, caveat: str = "") -> Response:
    return JSON({"success": False, "status": "processing", "bookingId": booking_id,
                 "statusUrl": f"/bookings/{booking_id}",
                 "error": f"Your request is queued and will be processed in order{caveat}; check the booking's "
                          "status"},
                status_code=202)


# A payment is judged when the booking service takes it: the hold may have run out by then.
_PAYMENT_CAVEAT = "; if the hold runs out before then, its seats are released and nothing is charged"


async def _load(gw: GatewayDep, booking_id: str, caller: Principal | None) -> Any:
    return await owned_booking(gw, booking_id, caller, lambda _pool, booking: gw.booking_states(booking))


async def _send_and_wait(gw: GatewayDep, booking_id: str, message: Message | None, command: str,
                         timeout: float) -> Message | None:
    """Publishes (unless the command is already under way) and waits for the booking's next outcome."""
    def accept(reply: Message) -> bool:
        if reply.type == topics.BOOKING_COMMAND_REJECTED:
            # A refund that failed answers every refund of the booking that waited for the one under way.
            return reply.data.get("command") == command and (
                message is None or reply.request_id == message.request_id
                or reply.data.get("code") == errors.RefundFailed.code)
        return reply.type in (topics.BOOKING_CONFIRMED, topics.BOOKING_CANCELLED)

    if message is not None and not gw.health.is_up("booking") and gw.health.refreshed_at:
        await publish_command(gw, message)
        return None
    reply = gw.replies.expect_booking(booking_id, accept)
    try:
        if message is not None:
            await publish_command(gw, message)
        return await within(reply, timeout)
    except TimeoutError:
        return None
    finally:
        gw.replies.forget_booking(booking_id, reply)


@router.put("/bookings/{booking_id}/confirm", response_model=BookingAnswer,
            responses={**_ERRORS, 402: {"model": ErrorBody}, 202: {"model": BookingAnswer}, **LIMITED})
async def confirm_booking(booking_id: BookingPath, body: ConfirmRequest, gw: GatewayDep,
                          caller: LimitedCaller) -> Response:
    """Pay for a pending booking: 200 confirmed (seats BOOKED), 402 declined (seats released)."""
    amount = Decimal(str(body.amount))
    if amount != amount.quantize(Decimal("0.01")):
        raise ApiError(422, "validation_error", "amount: at most two decimal places")
    if body.card is not None and not luhn_valid(body.card):
        raise ApiError(422, "validation_error", "card: not a valid card number")
    state = await _load(gw, booking_id, caller)
    status = state["status"]
    if state["payment_id"] == body.payment_id and status in PAYMENT_ANSWERS:
        if status == "confirmed":
            return respond(answers.confirmed(booking_id, body.payment_id, float(state["amount"]),
                                             state["currency"].strip(), list(state["seat_ids"])))
        if status == "payment_failed":  # the first answer again, with the provider's words
            code, reason = await views.payment_decline(gw.pool, booking_id, body.payment_id)
            return respond(answers.declined(booking_id, reason or "Payment declined", declineCode=code))
        message = None  # this very payment is under way: wait for its outcome
    elif status != "pending":
        return respond(answers.not_live(booking_id, status))
    else:
        # The card number stops here: the provider's token (and the last four digits) go on instead.
        card = await gw.cards.tokenise(body.card) if body.card is not None else None
        message = Message(topics.BOOKING_CONFIRMATION_REQUESTED, state["event_id"],
                          {"bookingId": booking_id, "paymentId": body.payment_id, "amount": float(amount),
                           **({"cardToken": card.token, "cardLast4": card.last4} if card else {})},
                          gw.request_ids.new())
    reply = await _send_and_wait(gw, booking_id, message, "confirm", gw.settings.confirm_reply_seconds)
    if reply is None:
        return _processing(booking_id, _PAYMENT_CAVEAT)
    return respond(answers.confirm_result(booking_id, body.payment_id, reply))


async def _cancel(booking_id: str, gw: GatewayDep, caller: Principal | None, may_read_again: bool = True) -> Response:
    state = await _load(gw, booking_id, caller)
    status = state["status"]
    if status == "cancelled":
        return respond(answers.cancelled(booking_id, list(state["seat_ids"])))
    if status == "refunded":  # one refund per booking: asking again gets the first answer
        return respond(answers.refunded(booking_id, state["refund_id"], float(state["amount"]),
                                        state["currency"].strip(), list(state["seat_ids"])))
    message: Message | None = None  # a refund under way: wait for its outcome
    if status in ("pending", "confirmed"):
        message = Message(topics.BOOKING_CANCELLATION_REQUESTED, state["event_id"],
                          {"bookingId": booking_id, **({"refund": True} if status == "confirmed" else {})},
                          gw.request_ids.new())
    elif status != "refunding":
        return respond(answers.not_live(booking_id, status))
    # A refund waits for the payment provider, like a payment.
    timeout = gw.settings.booking_reply_seconds if status == "pending" else gw.settings.confirm_reply_seconds
    reply = await _send_and_wait(gw, booking_id, message, "cancel", timeout)
    if reply is None:
        return _processing(booking_id)
    if may_read_again and reply.type == topics.BOOKING_COMMAND_REJECTED and reply.data.get("code") in _ENDED_BY_ANOTHER:
        # Another cancel or refund of this booking got there first: answer as a repeat of it does.
        return await _cancel(booking_id, gw, caller, may_read_again=False)
    return respond(answers.cancel_result(booking_id, reply))


# A cancel may wait in Kafka (202), and a refund the provider refuses leaves the booking confirmed (502).
_CANCEL_ANSWERS: dict[int | str, dict[str, Any]] = {**_ERRORS, 202: {"model": BookingAnswer},
                                                    502: {"model": ErrorBody}, **LIMITED}


@router.delete("/bookings/{booking_id}", dependencies=NO_BODY, response_model=BookingAnswer,
                responses=_CANCEL_ANSWERS)
async def cancel_booking(booking_id: BookingPath, gw: GatewayDep, caller: LimitedCaller) -> Response:
    """Cancel a pending booking, or refund a confirmed one (200 `refunded`, once per booking; 502
    `refund_failed` leaves it confirmed): its seats are AVAILABLE again."""
    return await _cancel(booking_id, gw, caller)


@router.post("/bookings/{booking_id}/cancel", dependencies=NO_BODY, response_model=BookingAnswer,
              responses=_CANCEL_ANSWERS)
async def cancel_booking_post(booking_id: BookingPath, gw: GatewayDep, caller: LimitedCaller) -> Response:
    """The same as DELETE /bookings/{bookingId}."""
    return await _cancel(booking_id, gw, caller)


@router.get("/users/{user_id}/bookings", response_model=BookingList, responses={**_ERRORS, **OWNED})
async def list_user_bookings(user_id: Annotated[str, Path(max_length=128)], gw: GatewayDep,
                             caller: Caller) -> Response:
    """A user's bookings, newest first (at most 100)."""
    if not _USER_ID.fullmatch(user_id):
        return error(422, "invalid_id", "Malformed user id")
    require_owner(caller, user_id, "list of bookings")
    return JSON({"success": True, "userId": user_id, "bookings": await views.user_bookings(gw.pool, user_id)})
