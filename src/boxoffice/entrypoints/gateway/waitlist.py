"""The waiting list of an event (CONTRACT §8.3): join, see where you stand, leave.

Joining and leaving are commands for the booking service, which keeps the line in the event's order together
with the holds and releases; the gateway waits for the entry's update like it waits for a hold's outcome.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path
from starlette.responses import Response

from boxoffice import messages as topics
from boxoffice import views
from boxoffice.domain import errors
from boxoffice.domain.accounts import Principal
from boxoffice.entrypoints.gateway.access import BODY_TOO_LARGE, LIMITED, OWNED, require_owner
from boxoffice.entrypoints.gateway.answers import refuse, respond, waitlist_entry, waitlist_join_result
from boxoffice.entrypoints.gateway.bookings import admission, ask, buyer, is_uuid
from boxoffice.entrypoints.gateway.deps import NO_BODY, BuyingCaller, Caller, GatewayDep, LimitedCaller
from boxoffice.entrypoints.gateway.responses import JSON, ApiError
from boxoffice.entrypoints.gateway.schemas import EVENT_ID, WAITLIST_EXAMPLES, ErrorBody, WaitlistEntry, WaitlistJoin
from boxoffice.messages import Message
from boxoffice.service_layer.waitlist import closed_line

router = APIRouter(tags=["waiting list"], responses=BODY_TOO_LARGE)

EventPath = Annotated[str, Path(pattern=EVENT_ID)]
EntryPath = Annotated[str, Path(max_length=64)]
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 409: {"model": ErrorBody},
                                            422: {"model": ErrorBody}}
QUEUED = "The booking service has not answered yet; your request is queued and will be processed in order"


@router.post("/events/{event_id}/waitlist", status_code=201,
             responses={201: {"model": WaitlistEntry}, 200: {"model": WaitlistEntry}, **_ERRORS, **LIMITED})
async def join_waitlist(
    event_id: EventPath, body: Annotated[WaitlistJoin, Body(openapi_examples=WAITLIST_EXAMPLES)], gw: GatewayDep,
    caller: BuyingCaller,
    queue_access: Annotated[str | None, Header(alias="X-Queue-Access", max_length=2048)] = None,
) -> Response:
    """Wait for seats of a sold-out event: 201 with your place in line; 200 with the same entry if you are
    already waiting. Seats that come free are offered in order, as a pending booking and an email. Behind an
    active waiting room, send the access token of your admission as `X-Queue-Access`, as for a hold (403
    `not_admitted` / `admission_expired` otherwise)."""
    user_id, email = buyer(body, caller, gw)
    if body.quantity > gw.settings.max_seats_per_booking:
        raise refuse(errors.TooManySeats.code,
                     f"At most {gw.settings.max_seats_per_booking} seats can be booked at once")
    if await gw.seats.seats_of(event_id) is None:
        raise refuse(errors.EventNotFound.code, f"Event {event_id} does not exist")
    # A called-off event stays so: answered here, also while the booking service is down. A buyer's entry that
    # waits is not answered from here: a leave of it may be queued ahead of this join (the booking service
    # takes them in the order they were asked for).
    if await views.event_called_off(gw.pool, event_id):
        raise refuse(errors.EventCancelled.code, closed_line(event_id))
    access = await admission(gw, event_id, user_id, caller, queue_access)
    waitlist_id = str(uuid.uuid4())
    message = Message(topics.WAITLIST_JOIN_REQUESTED, event_id,
                      {"waitlistId": waitlist_id, "userId": user_id, "quantity": body.quantity, "email": email,
                       **({"queueAccess": access} if access is not None else {})},
                      gw.request_ids.new())
    reply = await ask(gw, message)
    if reply is None:
        # The join's outcome (its entry, or why it made none) shows at the request's status URL.
        return JSON({"success": False, "status": "queued", "requestId": message.request_id,
                     "statusUrl": f"/booking-requests/{message.request_id}", "error": QUEUED}, status_code=202)
    return respond(waitlist_join_result(reply))


async def _owned(gw: GatewayDep, waitlist_id: str, caller: Principal | None) -> dict[str, Any]:
    if not is_uuid(waitlist_id):
        raise ApiError(422, "invalid_id", "Malformed waiting list id")
    entry = await views.waitlist_entry(gw.pool, waitlist_id)
    if entry is None:
        raise refuse(errors.WaitlistEntryNotFound.code, f"Waiting list entry {waitlist_id} does not exist")
    require_owner(caller, entry["userId"], "waiting list entry")
    return entry


@router.get("/waitlist/{waitlist_id}", response_model=WaitlistEntry, responses={**_ERRORS, **OWNED})
async def get_waitlist_entry(waitlist_id: EntryPath, gw: GatewayDep, caller: Caller) -> Response:
    """Where an entry stands: `waiting` (with its place in line), `offered` (with the booking that holds the
    seats: pay it before it expires), `expired` or `left`."""
    return JSON(await _owned(gw, waitlist_id, caller))


@router.delete("/waitlist/{waitlist_id}", dependencies=NO_BODY, response_model=WaitlistEntry,
                responses={**_ERRORS, **OWNED, **LIMITED})
async def leave_waitlist(waitlist_id: EntryPath, gw: GatewayDep, caller: LimitedCaller) -> Response:
    """Leave the line; with an offer still unpaid, decline it (its seats go to the next in line)."""
    entry = await _owned(gw, waitlist_id, caller)
    if entry["status"] == "left":
        return JSON(entry)
    if entry["status"] == "expired":
        raise refuse(errors.WaitlistEntryEnded.code, f"Waiting list entry {waitlist_id} has expired")
    if entry["status"] == "offered":
        booking = await views.booking_state(gw.pool, entry["bookingId"])
        if booking is None or booking["status"] != "pending":
            raise refuse(errors.WaitlistEntryEnded.code,
                         f"Waiting list entry {waitlist_id} was offered booking {entry['bookingId']}, which is "
                         f"{booking['status'] if booking else 'gone'}: cancel the booking instead")
    reply = await ask(gw, Message(topics.WAITLIST_LEAVE_REQUESTED, entry["eventId"], {"waitlistId": waitlist_id},
                                   gw.request_ids.new()))
    if reply is None:
        return JSON({"success": False, "status": "queued", "waitlistId": waitlist_id,
                     "statusUrl": f"/waitlist/{waitlist_id}", "error": QUEUED}, status_code=202)
    if reply.data["status"] != "left":
        raise refuse(errors.WaitlistEntryEnded.code,
                     f"Waiting list entry {waitlist_id} is {reply.data['status']} and cannot leave")
    return JSON(waitlist_entry(reply.data, entry["eventId"]))
