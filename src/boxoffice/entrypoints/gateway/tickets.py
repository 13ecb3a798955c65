"""POST /tickets/verify: door staff scan a ticket's QR code; each seat gets in once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from boxoffice.domain.tickets import UnreadableTicket, Verdict
from boxoffice.entrypoints.gateway.access import BODY_TOO_LARGE, OWNED, require_event_organiser
from boxoffice.entrypoints.gateway.deps import DoorStaff, GatewayDep
from boxoffice.entrypoints.gateway.responses import JSON
from boxoffice.entrypoints.gateway.schemas import ErrorBody, TicketCheck, TicketVerdict
from boxoffice.messages import iso, utc_now
from boxoffice.service_layer.door import verify_ticket

router = APIRouter(tags=["tickets"], responses=BODY_TOO_LARGE)


def _answer(verdict: Verdict) -> dict[str, Any]:
    body: dict[str, Any] = {"success": verdict.status == "valid", "status": verdict.status}
    if verdict.ticket is not None:  # only a genuine ticket's ids are worth showing
        ticket = verdict.ticket
        body |= {"eventId": ticket.event_id, "bookingId": ticket.booking_id, "seatId": ticket.seat_id}
    if verdict.used_at is not None:
        body["usedAt"] = iso(verdict.used_at)
    if verdict.reason is not None:
        body |= {"reason": verdict.reason, "message": verdict.message}
    return body


@router.post("/tickets/verify", response_model=TicketVerdict, responses={422: {"model": ErrorBody}, **OWNED})
async def verify(body: TicketCheck, gw: GatewayDep, caller: DoorStaff) -> Response:
    """Check a ticket at the door: `valid` (let in; the entry is recorded now), `already_used` (with the first
    entry's `usedAt`) or `invalid` (with the `reason`). A ticket is valid once, for a confirmed booking.
    With accounts on, the organiser of the ticket's event and admins only."""
    if caller is not None:
        try:
            ticket = gw.tickets.read(body.ticket)
        except UnreadableTicket:
            pass  # not a ticket of any event: the check below tells why
        else:
            await require_event_organiser(gw.pool, caller, ticket.event_id)
    return JSON(_answer(await verify_ticket(body.ticket, gw.tickets, gw.door(), utc_now)))
