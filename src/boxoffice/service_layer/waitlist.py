"""The waiting list, decided by the booking service in the event's order (CONTRACT §8.3).

Buyers join and leave through Kafka like any other command of the event. Seats that a transaction releases
(expiry, cancel, declined payment, refund) are offered to the waiting list inside that same transaction, so
a released seat is never free for the crowd and offered at once: the first entries that fit get pending
bookings for them (held like any hold, with their own deadline), and whatever is left is free for everyone.
An offer that runs out releases its seats again, and they go to the next entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import errors, events
from boxoffice.domain.model import Booking, BookingStatus, Seat, SeatMap, SeatStatus
from boxoffice.domain.waitlist import WaitlistEntry, WaitlistStatus, offers
from boxoffice.messages import Message, iso
from boxoffice.service_layer.booking_ports import BookingUnitOfWork
from boxoffice.service_layer.change_numbers import number_seat_changes
from boxoffice.service_layer.decisions import Decide, Decision
from boxoffice.service_layer.lifecycle_messages import messages_for
from boxoffice.service_layer.outcomes import reservation_message
from boxoffice.service_layer.unit_of_work import Outgoing

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# How many waiting entries of an event a release looks at: entries that fit are usually near the front.
LOOK_AHEAD = 500


def offer_request_id(entry: WaitlistEntry) -> str:
    """The request id an offer's booking is stored under: one offer per entry, ever."""
    return f"waitlist:{entry.waitlist_id}"


def updated(entry: WaitlistEntry, request_id: str | None, ahead: int | None = None,
            offer: events.SeatsReserved | None = None, **extra: Any) -> Message:
    data: dict[str, Any] = {
        "waitlistId": entry.waitlist_id, "userId": entry.user_id, "email": entry.email, "quantity": entry.quantity,
        "status": entry.status.value, "position": None if ahead is None else ahead + 1,
        "bookingId": entry.booking_id, **extra}
    if offer is not None:
        data |= {"seatIds": offer.seat_ids, "amount": float(offer.amount), "currency": offer.currency,
                 "expiresAt": iso(offer.expires_at)}
    return Message(topics.WAITLIST_UPDATED, entry.event_id, data, request_id)


def closed_line(event_id: str) -> str:
    return f"Event {event_id} was cancelled by its organiser: its waiting list is closed"


async def join_waitlist(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    """A new entry at the back of the line; a buyer already waiting keeps their entry and place. A called-off
    event takes no new entries: the join is answered `event_cancelled`, and nothing is stored."""
    data = message.data
    waitlist_id, user_id, quantity = data.get("waitlistId"), data.get("userId"), data.get("quantity")
    if not message.request_id or not isinstance(waitlist_id, str) or not _UUID.match(waitlist_id) \
            or not isinstance(user_id, str) or type(quantity) is not int or quantity < 1:
        log.error("dropping malformed waiting list join %s", message.id)
        return []
    entry = await uow.waitlist.joined_by(message.request_id)
    if entry is None:
        entry = await uow.waitlist.waiting_for(message.event_id, user_id)
    if entry is None:
        # Under the event's lock: a cancel that ends the line either comes after this entry or refuses it.
        called_off = await uow.events.lock_called_off(message.event_id)
        if called_off is None:
            log.error("dropping waiting list join %s: event %s does not exist", message.id, message.event_id)
            return []
        if called_off:
            refused = WaitlistEntry(waitlist_id, message.event_id, user_id, str(data.get("email") or ""), quantity,
                                    0, WaitlistStatus.EXPIRED)
            await uow.outbox.add([Outgoing.of(updated(
                refused, message.request_id, joined=False, code=errors.EventCancelled.code,
                reason=closed_line(message.event_id)))])
            return []
        entry = await uow.waitlist.add(WaitlistEntry(waitlist_id, message.event_id, user_id,
                                                     str(data.get("email") or ""), quantity, 0), message.request_id)
    ahead = await uow.waitlist.ahead_of(entry) if entry.status is WaitlistStatus.WAITING else None
    await uow.outbox.add([Outgoing.of(updated(entry, message.request_id, ahead,
                                              joined=entry.waitlist_id == waitlist_id))])
    return []


async def leave_waitlist(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    """A waiting entry leaves the line; an entry with an offer still unpaid declines it (its seats go to the
    next in line). An entry that already ended is answered as it stands."""
    waitlist_id = message.data.get("waitlistId")
    if not isinstance(waitlist_id, str) or not _UUID.match(waitlist_id):
        log.error("dropping malformed waiting list leave %s", message.id)
        return []
    entry = await uow.waitlist.find(waitlist_id)
    if entry is None or entry.event_id != message.event_id:
        log.info("waiting list entry %s to leave does not exist", waitlist_id)
        return []
    decisions: list[Decision] = []
    outgoing: list[Message] = []
    if entry.leave():
        await uow.waitlist.save([entry])
    elif entry.status is WaitlistStatus.OFFERED and entry.booking_id is not None:
        found = await uow.bookings.lock([entry.booking_id])
        booking = found[0] if found else None
        if booking is not None and booking.status is BookingStatus.PENDING:
            booking.cancel()
            await uow.bookings.save([booking])
            released, offered = await after_release(uow, [booking], decide)
            # Not under the leave's request id: the gateway answers it with the entry's update.
            outgoing = [*messages_for(booking, None), *released]
            decisions = [(event, message.request_id) for event in booking.events] + offered
            entry = await uow.waitlist.find(waitlist_id) or entry
    ahead = await uow.waitlist.ahead_of(entry) if entry.status is WaitlistStatus.WAITING else None
    await number_seat_changes(uow.sequence, outgoing)
    await uow.outbox.add([Outgoing.of(m) for m in [*outgoing, updated(entry, message.request_id, ahead)]])
    return decisions


async def after_release(uow: BookingUnitOfWork, bookings: Iterable[Booking],
                        decide: Decide) -> tuple[list[Message], list[Decision]]:
    """Offers the seats these bookings released to the waiting list, and ends the entries whose offer they
    were. Returns the messages to publish after the bookings' own, and the offers made."""
    released = [b for b in bookings if any(isinstance(e, events.SeatsReleased) for e in b.events)]
    if not released:
        return [], []
    ended = await uow.waitlist.offered_with([b.booking_id for b in released])
    status = {b.booking_id: b.status for b in released}
    for entry in ended:
        entry.offer_ended(by_the_buyer=status.get(entry.booking_id or "") is BookingStatus.CANCELLED)
    seats_by_event: dict[str, list[str]] = {}
    currency: dict[str, str] = {}
    for booking in released:
        seats_by_event.setdefault(booking.event_id, []).extend(booking.seat_ids)
        currency[booking.event_id] = booking.currency
    waiting = await uow.waitlist.waiting(sorted(seats_by_event), LOOK_AHEAD)
    holds: list[events.SeatsReserved] = []
    offered: list[WaitlistEntry] = []
    for event_id, entries in waiting.items():
        placed = await uow.seats.placed(event_id, seats_by_event[event_id])
        for entry, block in offers(placed, entries):
            prices = {s.seat_id: s.price for s in placed}
            seat_map = SeatMap(event_id, currency[event_id],
                               {s: Seat(s, SeatStatus.AVAILABLE, prices[s]) for s in block.seat_ids})
            hold = seat_map.hold(offer_request_id(entry), entry.user_id, list(block.seat_ids),
                                 decide.new_booking_id(), decide.now + decide.rules.hold)
            assert isinstance(hold, events.SeatsReserved)  # released seats, offered once each
            entry.offer(hold.booking_id)
            holds.append(hold)
            offered.append(entry)
    if holds:
        await uow.seats.hold(holds)
        await uow.bookings.add(holds, {offer_request_id(e): e.email for e in offered})
    await uow.waitlist.save([*ended, *offered])
    offer_of = {h.booking_id: h for h in holds}
    messages = [*(reservation_message(h) for h in holds), *(updated(e, None) for e in ended),
                *(updated(e, None, offer=offer_of[e.booking_id or ""]) for e in offered)]
    return messages, [(h, h.request_id) for h in holds]
