"""POST /bookings and the reads of bookings and booking requests."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Header, Path
from starlette.responses import Response

from boxoffice import messages as topics
from boxoffice import views
from boxoffice.adapters.kafka import BrokerUnavailable, DeliveryUnknown
from boxoffice.domain import errors
from boxoffice.domain.accounts import Principal
from boxoffice.entrypoints.gateway.access import (
    BODY_TOO_LARGE,
    LIMITED,
    OWNED,
    require_owner,
)
from boxoffice.entrypoints.gateway.answers import (
    NOT_STORED,
    Answer,
    refuse,
    reservation_result,
    respond,
    waitlist_join_result,
)
from boxoffice.entrypoints.gateway.deps import BuyingCaller, Caller, GatewayDep
from boxoffice.entrypoints.gateway.replies import within
from boxoffice.entrypoints.gateway.request_ids import PATTERN as REQUEST_ID_PATTERN
from boxoffice.entrypoints.gateway.responses import JSON, ApiError, error
from boxoffice.entrypoints.gateway.schemas import (
    HOLD_EXAMPLES,
    UUID,
    Booking,
    BookingHeld,
    BookingRequest,
    ErrorBody,
    RequestQueued,
    RequestStatus,
    SeatsUnavailable,
    WaitlistJoin,
)
from boxoffice.logs import REQUEST_ID, Outage
from boxoffice.messages import SEAT_RESERVATION_FAILED, SEAT_RESERVATION_REQUESTED, Message, utc_now

log = logging.getLogger(__name__)

router = APIRouter(tags=["bookings"], responses=BODY_TOO_LARGE)

QUEUED_MESSAGE = ("Booking service temporarily unavailable; your request is queued and will be processed "
                  "in order")


def _queued(request_id: str) -> JSON:
    return JSON({"success": False, "status": "queued", "requestId": request_id,
                 "statusUrl": f"/booking-requests/{request_id}", "error": QUEUED_MESSAGE}, status_code=202)


def _body_hash(body: BookingRequest, user_id: str, email: str) -> str:
    if body.seat_ids is not None:
        text = f"{body.event_id}\0{','.join(body.seat_ids)}\0{user_id}\0{email}"
    else:  # best available: a separator no picked-seats body can have
        text = f"{body.event_id}\0\0{body.quantity}\0{body.category_id or ''}\0{body.section or ''}\0{user_id}\0{email}"
    return hashlib.sha256(text.encode()).hexdigest()


def _what_is_asked(body: BookingRequest, gw: GatewayDep) -> dict[str, Any]:
    """The seats picked, or how many of which kind for best available (CONTRACT §8.2)."""
    most = gw.settings.max_seats_per_booking
    if (body.seat_ids is None) == (body.quantity is None):
        raise ApiError(422, "validation_error", "Give either seatIds (the seats you pick) or quantity (best "
                                                "available), not both or neither")
    if body.quantity is not None:
        if body.quantity > most:
            raise refuse(errors.TooManySeats.code, f"At most {most} seats can be booked at once")
        asked: dict[str, Any] = {"quantity": body.quantity}
        if body.category_id is not None:
            asked["categoryId"] = body.category_id
        if body.section is not None:
            asked["section"] = body.section
        return asked
    if body.category_id is not None or body.section is not None:
        raise ApiError(422, "validation_error", "categoryId and section go with quantity (best available), "
                                                "not with seatIds")
    assert body.seat_ids is not None
    if len(body.seat_ids) > most:
        raise refuse(errors.TooManySeats.code, f"At most {most} seats can be booked at once")
    duplicates = sorted({s for s in body.seat_ids if body.seat_ids.count(s) > 1})
    if duplicates:
        raise ApiError(422, "duplicate_seats", f"Seat {', '.join(duplicates)} is listed more than once",
                       seatIds=duplicates)
    return {"seatIds": body.seat_ids}


def buyer(body: BookingRequest | WaitlistJoin, caller: Principal | None, gw: GatewayDep) -> tuple[str, str]:
    """Who books and where their email goes: the token's account when accounts are on."""
    if caller is None:
        if body.user_id is None:
            raise ApiError(422, "validation_error", "userId: Field required", details=[
                {"field": "userId", "message": "userId: Field required"}])
        gw.access.limit_user(body.user_id)
        return body.user_id, body.email or ""
    if body.user_id is not None and body.user_id != caller.user_id:
        raise ApiError(403, "user_mismatch", f"userId must be your own ({caller.user_id}) or left out")
    return caller.user_id, body.email or caller.email


@router.post(
    "/bookings", status_code=201,
    responses={201: {"model": BookingHeld}, 202: {"model": RequestQueued}, 404: {"model": ErrorBody},
               409: {"model": SeatsUnavailable}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}, **LIMITED},
)
async def create_booking(
    body: Annotated[BookingRequest, Body(openapi_examples=HOLD_EXAMPLES)], gw: GatewayDep, caller: BuyingCaller,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
    queue_access: Annotated[str | None, Header(alias="X-Queue-Access", max_length=2048)] = None,
) -> Response:
    """Hold seats: 201 with a pending booking, 409 when any seat is taken (or, for best available, too few are
    left together), 202 when the answer is late. For an event behind an active waiting room, send the access
    token of your admission as `X-Queue-Access` (403 `not_admitted` / `admission_expired` otherwise)."""
    user_id, email = buyer(body, caller, gw)
    asked = _what_is_asked(body, gw)
    if (access := await admission(gw, body.event_id, user_id, caller, queue_access)) is not None:
        asked["queueAccess"] = access
    known = await gw.seats.seats_of(body.event_id)
    if known is None:
        raise refuse(errors.EventNotFound.code, f"Event {body.event_id} does not exist")
    unknown = [s for s in body.seat_ids or [] if s not in known]
    if unknown:
        subject = f"Seat {unknown[0]} does not" if len(unknown) == 1 else f"Seats {', '.join(unknown)} do not"
        raise refuse(errors.SeatNotFound.code, f"{subject} exist for event {body.event_id}", seatIds=unknown)

    body_hash = _body_hash(body, user_id, email)
    if idempotency_key is not None:
        if not idempotency_key.strip():
            raise ApiError(422, "validation_error", "Idempotency-Key must not be empty")
        request_id = gw.request_ids.for_idempotency_key(user_id, idempotency_key)
        stored = await views.request_outcome(gw.pool, request_id)
        if stored is not None:
            outcome, stored_hash = stored
            if outcome.data.get("code") == NOT_STORED:
                # Withdrawn when Kafka did not acknowledge it (503, "nothing was done"): asked again, with this
                # body or another, it is decided afresh.
                await views.forget_withdrawal(gw.pool, request_id)
                gw.replies.release(request_id)
            elif stored_hash != body_hash:
                raise _key_reused()
            else:
                return respond(reservation_result(outcome))
        if not gw.replies.claim(request_id, body_hash):
            raise _key_reused()
    else:
        request_id = gw.request_ids.new()

    message = Message(SEAT_RESERVATION_REQUESTED, body.event_id,
                      {"userId": user_id, **asked, "bodyHash": body_hash, "email": email},
                      request_id)
    if not gw.health.is_up("booking") and gw.health.refreshed_at:
        if (decided := await publish_command(gw, message)) is not None:
            return respond(reservation_result(decided))
        return _queued(request_id)
    reply = gw.replies.expect(request_id)
    started = time.perf_counter()
    try:
        if (decided := await publish_command(gw, message)) is not None:
            return respond(reservation_result(decided))
        published = time.perf_counter()
        outcome = await within(reply, gw.settings.booking_reply_seconds)
    except TimeoutError:
        return _queued(request_id)
    finally:
        gw.replies.forget(request_id, reply)
    if idempotency_key is not None and await _decided_for_another_body(gw, request_id, body_hash):
        raise _key_reused()
    # Where the time went, for `boxoffice bench` and browser dev tools.
    timing = (f"publish;dur={(published - started) * 1000:.2f}, "
              f"decision;dur={(time.perf_counter() - published) * 1000:.2f}")
    return respond(reservation_result(outcome), headers={"Server-Timing": timing})


def _key_reused() -> ApiError:
    return ApiError(422, "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request body")


async def _decided_for_another_body(gw: GatewayDep, request_id: str, body_hash: str) -> bool:
    """Two bodies under one key sent at once (to two gateway processes): the answer read is the one decided
    first, which is the other body's if its stored hash differs."""
    stored = await views.request_outcome(gw.pool, request_id)
    return stored is not None and stored[1] != body_hash


async def admission(gw: GatewayDep, event_id: str, buyer: str, caller: Principal | None,
                    header: str | None) -> str | None:
    """The access token a hold for an event behind an active waiting room travels with (the booking service
    checks it again); 403 without a valid one of the buyer's own. None: the event has no active room."""
    room = await gw.queue.room(event_id)
    if room is None or not room.enabled:
        return None
    token = header
    if token is None and caller is not None:
        # With accounts on, an admitted account needs no header: its place is found by the account, and the token
        # of its admission, run out or not, is checked as if sent (an admission that ran out is told so).
        place = await views.queue_place(gw.pool, event_id, gw.queue.tokens.queue_token(event_id, caller.user_id))
        if place is not None:
            state, _ = gw.queue.status(room, caller.user_id, place["position"], place["admitted_at"])
            token = gw.queue.admission_token(room, caller.user_id, state)
    code = gw.queue.tokens.refusal(token, event_id, buyer, utc_now())
    if code is not None and await views.event_cancelled(gw.pool, event_id):
        # No admission would help: the answer any hold for a called-off event gets (CONTRACT §8.3).
        raise refuse(errors.EventCancelled.code, f"Event {event_id} was cancelled by its organiser")
    if code == errors.AdmissionExpired.code:
        raise refuse(code, "Your admission from the waiting room has expired")
    if code is not None:
        raise refuse(code, f"Event {event_id} is selling through its waiting room: send X-Queue-Access with the "
                           f"access token of your own admission (join at /events/{event_id}/queue)")
    return token


NOTHING_DONE = "The request could not be stored in Kafka; nothing was done, please try again"
# The booking service's commands: each answer it publishes carries the command's request id, which tells the
# gateway that the command no longer needs writing again.
ANSWERED_BY_REQUEST_ID = frozenset({
    SEAT_RESERVATION_REQUESTED, topics.BOOKING_CONFIRMATION_REQUESTED, topics.BOOKING_CANCELLATION_REQUESTED,
    topics.WAITLIST_JOIN_REQUESTED, topics.WAITLIST_LEAVE_REQUESTED, topics.EVENT_CANCELLATION_REQUESTED})

_KAFKA_ACKNOWLEDGING = Outage(log, "Kafka's acknowledgements of hold requests (unacknowledged holds are withdrawn)")

NOT_ACKNOWLEDGED = ("Kafka did not acknowledge the request in time; it may still be carried out, so look before "
                    "trying again")


async def publish_command(gw: GatewayDep, message: Message) -> Message | None:
    """Publishes a command; 503 when it could not be stored. A hold whose fate in Kafka is unknown (sent, not
    acknowledged) is withdrawn: its refusal is stored as its decision, so that the booking service holds nothing
    for it if the message arrives after all, and the 503 stays true. If the booking service decided it first,
    that decision is returned instead."""
    # From here on this HTTP request's lines carry the id that every service logs the command under.
    REQUEST_ID.set(message.request_id)
    log.debug("publishing %s for event %s", message.type, message.event_id)
    try:
        await gw.publisher.publish(message.type, message)
    except DeliveryUnknown as exc:
        if message.type != SEAT_RESERVATION_REQUESTED:
            raise ApiError(503, NOT_STORED, NOT_ACKNOWLEDGED) from exc
        assert message.request_id is not None
        # One line when Kafka starts failing to acknowledge, one when it works again: the requests between are
        # DEBUG lines (a broker outage would otherwise write one warning per hold asked for).
        _KAFKA_ACKNOWLEDGING.failed(exc)
        log.debug("Kafka did not acknowledge hold request %s in time (%s): withdrawing it", message.request_id, exc)
        refusal = Message(SEAT_RESERVATION_FAILED, message.event_id,
                          {"userId": message.data["userId"], "seatIds": message.data.get("seatIds", []),
                           "code": NOT_STORED, "reason": NOTHING_DONE}, message.request_id)
        decided = await views.withdraw_request(gw.pool, message.request_id, str(message.data.get("bodyHash", "")),
                                               refusal)
        if decided is None:  # the status URL says so too, whatever Kafka hands on later
            raise ApiError(503, NOT_STORED, NOTHING_DONE, requestId=message.request_id,
                           statusUrl=f"/booking-requests/{message.request_id}") from exc
        return decided
    except BrokerUnavailable as exc:
        raise ApiError(503, NOT_STORED, NOTHING_DONE) from exc
    _KAFKA_ACKNOWLEDGING.recovered()
    if message.type in ANSWERED_BY_REQUEST_ID:
        gw.replies.unanswered.sent(message)
    return None


async def ask(gw: GatewayDep, message: Message) -> Message | None:
    """Publishes a command for the booking service and waits for the answer under its request id; None if
    none came in time (or the service is down: the command waits in Kafka and is decided in order)."""
    assert message.request_id is not None
    if not gw.health.is_up("booking") and gw.health.refreshed_at:
        await publish_command(gw, message)
        return None
    reply = gw.replies.expect(message.request_id)
    try:
        await publish_command(gw, message)
        return await within(reply, gw.settings.booking_reply_seconds)
    except TimeoutError:
        return None
    finally:
        gw.replies.forget(message.request_id, reply)


@router.get("/booking-requests/{request_id}", response_model=RequestStatus,
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, **OWNED})
async def get_booking_request(request_id: Annotated[str, Path(max_length=64)], gw: GatewayDep,
                              caller: Caller) -> Response:
    """The outcome of a reservation request or a waiting-list join, or "queued" while it waits in Kafka."""
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        return error(422, "invalid_id", "Malformed request id")
    stored = await views.request_outcome(gw.pool, request_id)
    if stored is not None:
        outcome = stored[0]
        # Refusals name their buyer too (in the message, not in the body): both are the buyer's alone.
        require_owner(caller, str(outcome.data.get("userId", "")), "booking request")
        if outcome.type != topics.WAITLIST_UPDATED:
            return _processed(request_id, reservation_result(outcome))
        status, result = waitlist_join_result(outcome)
        if not outcome.data.get("code"):  # the buyer's entry, as it stands now (its place moves)
            result = await views.waitlist_entry(gw.pool, str(outcome.data["waitlistId"])) or result
        return _processed(request_id, (status, result))
    if not gw.request_ids.issued_here(request_id):
        return error(404, "request_not_found", f"Booking request {request_id} does not exist")
    entry = await views.waitlist_entry_joined_by(gw.pool, request_id)
    if entry is not None:  # a join that made its entry: the entry as it stands now
        require_owner(caller, entry["userId"], "booking request")
        return _processed(request_id, (201, entry))
    return JSON({"success": False, "requestId": request_id, "status": "queued", "httpStatus": None, "result": None})


def _processed(request_id: str, answer: Answer) -> Response:
    status, result = answer
    # `success` says what the request came to, as in the answer it stands for (a 409 is no success).
    return JSON({"success": status in (200, 201), "requestId": request_id, "status": "processed",
                 "httpStatus": status, "result": result})


@router.get("/bookings/{booking_id}", response_model=Booking,
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, **OWNED})
async def get_booking(booking_id: Annotated[str, Path(max_length=64)], gw: GatewayDep, caller: Caller) -> Response:
    return JSON(await owned_booking(gw, booking_id, caller))


async def owned_booking(gw: GatewayDep, booking_id: str, caller: Principal | None,
                        read: BookingRead = views.get_booking) -> Any:
    """The booking as `read` gives it (422 for a malformed id, 404 if unknown, 403 if another user's)."""
    if not is_uuid(booking_id):
        raise ApiError(422, "invalid_id", "Malformed booking id")
    booking = await read(gw.pool, booking_id)
    if booking is None:
        raise refuse(errors.BookingNotFound.code, f"Booking {booking_id} does not exist")
    require_owner(caller, booking["userId"], "booking")
    return booking


BookingRead = Callable[[asyncpg.Pool, str], Awaitable[Any]]


_UUID = re.compile(UUID)


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None
