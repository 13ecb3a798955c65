"""Events and seat maps, read from the catalog's tables."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from boxoffice import views
from boxoffice.domain import errors
from boxoffice.entrypoints.gateway.answers import refusal, respond
from boxoffice.entrypoints.gateway.deps import GatewayDep
from boxoffice.entrypoints.gateway.responses import JSON, error
from boxoffice.entrypoints.gateway.schemas import (
    EVENT_ID,
    ErrorBody,
    EventDetail,
    EventSummary,
    SeatView,
)

router = APIRouter(tags=["catalog"])

EventPath = Annotated[str, Path(max_length=64)]
_EVENT_ID = re.compile(EVENT_ID)
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}
# Whole seat maps read at once: an event's may be 10 MB of JSON, a second of PostgreSQL's time; more readers
# wait their turn instead of taking the pool's connections from every other route.
_WHOLE_SEAT_MAPS = asyncio.Semaphore(2)


def _invalid_event_id(event_id: str) -> Response | None:
    return None if _EVENT_ID.fullmatch(event_id) else error(422, "invalid_id", "Malformed event id")


def _not_found(event_id: str) -> Response:
    return respond(refusal(errors.EventNotFound.code, f"Event {event_id} does not exist"))


@router.get("/events", response_model=list[EventSummary])
async def list_events(gw: GatewayDep) -> Response:
    """Every event with its available / reserved / booked counts."""
    return JSON(await views.list_events(gw.pool))


@router.get("/events/{event_id}", response_model=EventDetail, responses=_ERRORS)
async def get_event(event_id: EventPath, gw: GatewayDep) -> Response:
    if (invalid := _invalid_event_id(event_id)) is not None:
        return invalid
    event = await views.get_event(gw.pool, event_id)
    return JSON(event) if event else _not_found(event_id)


@router.get("/events/{event_id}/seats", response_model=list[SeatView], responses=_ERRORS)
async def get_seats(event_id: EventPath, gw: GatewayDep) -> Response:
    """The seat map with each seat's status."""
    if (invalid := _invalid_event_id(event_id)) is not None:
        return invalid
    async with _WHOLE_SEAT_MAPS:
        seats = await views.seat_map_json(gw.pool, event_id)
    if seats == b"[]" and await gw.seats.seats_of(event_id) is None:
        return _not_found(event_id)
    return Response(seats, media_type="application/json")
