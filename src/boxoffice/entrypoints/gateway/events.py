"""POST /events: an organiser's new event with its seat map, created by the catalog service."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path
from starlette.responses import Response

from boxoffice import views
from boxoffice.domain import moments
from boxoffice.domain.catalog import EventSpec, PriceCategory, SeatRow
from boxoffice.entrypoints.gateway.access import BODY_TOO_LARGE, OWNED, require_event_organiser
from boxoffice.entrypoints.gateway.bookings import ask, publish_command
from boxoffice.entrypoints.gateway.deps import NO_BODY, EventCanceller, EventCreator, GatewayDep, cancels_events
from boxoffice.entrypoints.gateway.queue import check_opening, on_sale_of
from boxoffice.entrypoints.gateway.responses import JSON, ApiError
from boxoffice.entrypoints.gateway.schemas import EVENT_EXAMPLES, EVENT_ID, ErrorBody, EventDetail, NewEvent
from boxoffice.messages import EVENT_CANCELLATION_REQUESTED, EVENT_CREATION_REQUESTED, Message, utc_now
from boxoffice.service_layer.event_creation import event_to_data

router = APIRouter(tags=["catalog"], responses=BODY_TOO_LARGE)

MAX_SEATS_PER_EVENT = 100_000


def _spec(body: NewEvent, organiser_id: str | None) -> EventSpec:
    if bool(body.rows) == bool(body.seats):
        raise ApiError(422, "validation_error", "Give the seat map as either rows or seats, not both or neither")
    categories = {c.category_id for c in body.price_categories}
    if len(categories) != len(body.price_categories):
        raise ApiError(422, "validation_error", "priceCategories: categoryId values must be unique")
    used = {r.category_id for r in body.rows} | {s.category_id for s in body.seats}
    if unknown := sorted(used - categories):
        raise ApiError(422, "validation_error", f"Unknown categoryId: {', '.join(unknown)}")
    if any(Decimal(str(c.price)) != Decimal(str(c.price)).quantize(Decimal("0.01")) for c in body.price_categories):
        raise ApiError(422, "validation_error", "priceCategories.price: at most two decimal places")
    try:
        starts_at = moments.parse(body.starts_at)
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"startsAt: {exc}") from None
    if starts_at <= utc_now():
        raise ApiError(422, "validation_error", "startsAt: the event must start in the future")
    on_sale = on_sale_of(body.on_sale)
    if on_sale is not None:
        check_opening(on_sale, starts_at, "onSale.opensAt")
    spec = EventSpec(
        body.event_id, body.name, body.venue.name, body.venue.city, starts_at, body.currency,
        tuple(PriceCategory(c.category_id, c.name, Decimal(str(c.price))) for c in body.price_categories),
        tuple(SeatRow(r.row, r.section, r.category_id, r.seats) for r in body.rows),
        tuple((s.seat_id, s.row, s.number, s.section, s.category_id) for s in body.seats),
        tuple(body.best_order),
        on_sale,
        organiser_id,
        body.hold_seconds,
    )
    seat_ids = [s.seat_id for s in spec.seats()]
    if len(seat_ids) > MAX_SEATS_PER_EVENT:
        raise ApiError(422, "validation_error", f"An event has at most {MAX_SEATS_PER_EVENT} seats")
    if len(set(seat_ids)) != len(seat_ids):
        repeated = sorted(seat for seat, n in Counter(seat_ids).items() if n > 1)
        hint = "rows repeated, or seats listed twice"
        if any(r.row[-1:].isdigit() for r in body.rows):
            # A row's seat ids are its label and the number joined: row 1 seat 11 and row 11 seat 1 are both 111.
            hint = ("a row label that ends in a digit runs into the seat numbers: give such rows letters, or list "
                    "the seats with ids of their own (`seats`)")
        raise ApiError(422, "validation_error", f"Seat ids must be unique ({hint}); twice: {', '.join(repeated[:5])}")
    if len({r.row for r in body.rows}) != len(body.rows):
        raise ApiError(422, "validation_error", "rows: each row label once")
    places = Counter((s.row, s.number) for s in body.seats)
    if twice := sorted(place for place, n in places.items() if n > 1):
        listed = ", ".join(f"row {row} number {number}" for row, number in twice[:5])
        raise ApiError(422, "validation_error", f"seats: each place (row and number) once; listed twice: {listed}")
    if unknown := spec.unknown_in_best_order():
        raise ApiError(422, "validation_error", f"bestOrder: no seat or row {', '.join(unknown[:5])}")
    if len(set(body.best_order)) != len(body.best_order):
        raise ApiError(422, "validation_error", "bestOrder: each seat or row once")
    return spec


@router.post("/events", status_code=201, response_model=EventDetail,
             responses={202: {"description": "Accepted; the catalog service creates it shortly"},
                        409: {"model": ErrorBody}, 422: {"model": ErrorBody}, **OWNED})
async def create_event(body: Annotated[NewEvent, Body(openapi_examples=EVENT_EXAMPLES)], gw: GatewayDep,
                       caller: EventCreator) -> Response:
    """Create an event with its seat map (rows × seats, or an explicit list) and price categories.
    With accounts on, organisers and admins only; the event is the caller's to manage (on-sale, cancelling, the
    door)."""
    spec = _spec(body, caller.user_id if caller is not None else None)
    if await views.get_event(gw.pool, spec.event_id) is not None:
        raise ApiError(409, "event_exists", f"Event {spec.event_id} already exists")
    request_id = gw.request_ids.new()
    await publish_command(gw, Message(EVENT_CREATION_REQUESTED, spec.event_id, event_to_data(spec), request_id))
    mine = await _wait_for_creation(gw, spec.event_id, request_id, gw.settings.booking_reply_seconds)
    if mine is None:
        return JSON({"success": False, "status": "queued", "eventId": spec.event_id,
                     "statusUrl": f"/events/{spec.event_id}",
                     "error": "The catalog service has not created the event yet; it will shortly"}, status_code=202)
    if not mine:  # another request for the same id came first: this one was refused, whatever the event is now
        raise ApiError(409, "event_exists", f"Event {spec.event_id} already exists")
    return JSON(await views.get_event(gw.pool, spec.event_id), status_code=201)


async def _wait_for_creation(gw: GatewayDep, event_id: str, request_id: str, timeout: float) -> bool | None:
    """Whether this request created the event, once the event exists (False: another request did); None if it
    does not exist within the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = await views.created_by(gw.pool, event_id, request_id)
        if mine is not None:
            return mine
        await asyncio.sleep(0.05)
    return None


# The role first: a buyer is refused whatever the body, as for the other organisers' calls.
@router.post("/events/{event_id}/cancel", dependencies=[Depends(cancels_events), *NO_BODY], response_model=EventDetail,
             responses={202: {"description": "Accepted; the booking service cancels it shortly"},
                        404: {"model": ErrorBody}, 422: {"model": ErrorBody}, **OWNED})
async def cancel_event(event_id: Annotated[str, Path(pattern=EVENT_ID)], gw: GatewayDep,
                       caller: EventCanceller) -> Response:
    """Call an event off: it takes no new holds (409 event_cancelled), its unpaid holds are released, its
    waiting list ends, and every paid booking is refunded and emailed. Progress shows on GET /events/{id}.
    With accounts on, the event's organiser and admins only. Cancelling again answers the same."""
    await require_event_organiser(gw.pool, caller, event_id)
    event = await views.get_event(gw.pool, event_id)
    if event is None:
        raise ApiError(404, "event_not_found", f"Event {event_id} does not exist")
    if event["status"] == "cancelled":
        return JSON(event)
    if await ask(gw, Message(EVENT_CANCELLATION_REQUESTED, event_id, {}, gw.request_ids.new())) is None:
        return JSON({"success": False, "status": "queued", "eventId": event_id, "statusUrl": f"/events/{event_id}",
                     "error": "The booking service has not cancelled the event yet; it will, in order"},
                    status_code=202)
    return JSON(await views.get_event(gw.pool, event_id))
