"""Checking a ticket at the door (POST /tickets/verify): genuine, for a confirmed booking, and used once.

Each seat's ticket gets in once: its first check records the entry, and every later one (also one racing
it) finds that entry and answers `already_used` with its time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from boxoffice.domain.tickets import TicketSeal, UnreadableTicket, Verdict, refusal
from boxoffice.service_layer.door_ports import DoorUnitOfWork


async def verify_ticket(payload: str, seal: TicketSeal, uow: DoorUnitOfWork,
                        clock: Callable[[], datetime]) -> Verdict:
    try:
        ticket = seal.read(payload)
    except UnreadableTicket as exc:
        return Verdict("invalid", reason=exc.reason, message=exc.message)
    async with uow:
        refused = refusal(ticket, await uow.bookings.get(ticket.booking_id))
        if refused is not None:
            reason, message = refused
            return Verdict("invalid", ticket, reason=reason, message=message)
        now = clock()
        earlier = await uow.entries.enter(ticket, now)
        await uow.commit()
    if earlier is not None:
        return Verdict("already_used", ticket, used_at=earlier, reason="already_used",
                       message=f"Seat {ticket.seat_id} of this booking was let in already")
    return Verdict("valid", ticket, used_at=now)
