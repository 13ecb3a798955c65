"""The waiting list, decided by the booking service in the event's order (CONTRACT §8.3).

Buyers join and leave through Kafka like any other command of the event. When a transaction releases seats
(expiry, cancel, declined payment, refund), the event's free seats, the released ones and any released before
that nobody could take, are offered to the waiting list inside that same transaction, so a released seat is
never free for the crowd and offered at once: the first entries that fit get pending bookings for them (held
like any hold, with their own deadline), and whatever is left is free for everyone.
An offer that runs out releases its seats again, and they go to the next entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from boxoffice import messages as topics
from boxoffice.domain import errors, events
from boxoffice.domain.allocation import Block
from boxoffice.domain.model import Booking, BookingStatus, SeatMap, SeatStatus, seat_limit_reason
from boxoffice.domain.waitlist import WaitlistEntry, WaitlistStatus, offers
from boxoffice.messages import Message, iso
from boxoffice.service_layer.booking_ports import BookingUnitOfWork, StoredOutcome
from boxoffice.service_layer.change_numbers import number_seat_changes
from boxoffice.service_layer.decisions import Decide, Decision, admission_refusal
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
    """A new entry at the back of the line; a buyer already in line (waiting, or holding an offer not yet paid
    for) keeps their entry and place, and is never given a second one. A called-off
    event takes no new entries: the join is answered `event_cancelled`, and nothing is stored.

    A join that made no entry of its own (refused, or the buyer's entry already waiting) has its answer kept
    under its request id, like a hold's: a join answered 202 shows it at its status URL, and a redelivery
    gets it again."""
    data = message.data
    waitlist_id, user_id, quantity = data.get("waitlistId"), data.get("userId"), data.get("quantity")
    if not message.request_id or not isinstance(waitlist_id, str) or not _UUID.match(waitlist_id) \
            or not isinstance(user_id, str) or type(quantity) is not int or quantity < 1:
        log.error("dropping malformed waiting list join %s", message.id)
        return []
    entry = await uow.waitlist.joined_by(message.request_id)
    if entry is None:
        stored = (await uow.requests.find([message.request_id])).get(message.request_id)
        if stored is not None:
            await uow.outbox.add([stored.outgoing()])
            return []
        entry = await uow.waitlist.waiting_for(message.event_id, user_id)
    if entry is None:
        # Under the event's lock: a cancel that ends the line either comes after this entry or refuses it.
        called_off = await uow.events.lock_called_off(message.event_id)
        if called_off is None:
            log.error("dropping waiting list join %s: event %s does not exist", message.id, message.event_id)
            return []
        refusal = ((errors.EventCancelled.code, closed_line(message.event_id)) if called_off
                   else await _not_admitted(uow, message, user_id, decide)
                   or await _over_the_cap(uow, message.event_id, user_id, quantity, decide)
                   or await _never_together(uow, message.event_id, quantity, decide))
        if refusal is not None:
            refused = WaitlistEntry(waitlist_id, message.event_id, user_id, str(data.get("email") or ""), quantity,
                                    0, WaitlistStatus.EXPIRED)
            await _answer(uow, updated(refused, message.request_id, joined=False, code=refusal[0],
                                       reason=refusal[1]), kept=True)
            return []
        entry = await uow.waitlist.add(WaitlistEntry(waitlist_id, message.event_id, user_id,
                                                     str(data.get("email") or ""), quantity, 0), message.request_id)
    ahead = await uow.waitlist.ahead_of(entry) if entry.status is WaitlistStatus.WAITING else None
    made_here = entry.waitlist_id == waitlist_id
    await _answer(uow, updated(entry, message.request_id, ahead, joined=made_here), kept=not made_here)
    return []


async def _answer(uow: BookingUnitOfWork, answer: Message, kept: bool) -> None:
    if kept:
        await uow.requests.add([StoredOutcome(str(answer.request_id), answer.event_id, "", answer.type,
                                              answer.encode())])
    await uow.outbox.add([Outgoing.of(answer)])


async def _over_the_cap(uow: BookingUnitOfWork, event_id: str, user_id: str, quantity: int,
                        decide: Decide) -> tuple[str, str] | None:
    """A buyer who could not take the seats waited for (BOXOFFICE_MAX_SEATS_PER_USER) does not join the line."""
    cap = decide.rules.seats_per_user
    if cap is None:
        return None
    owned = (await uow.bookings.seats_per_buyer([(event_id, user_id)])).get((event_id, user_id), 0)
    if owned + quantity <= cap:
        return None
    return errors.SeatLimitReached.code, seat_limit_reason(cap, owned)


async def _never_together(uow: BookingUnitOfWork, event_id: str, quantity: int,
                          decide: Decide) -> tuple[str, str] | None:
    """An entry for more seats than the event has together in one row does not join the line: offers are seats
    together (domain/waitlist.offers), so it would wait for ever, and keep its buyer waiting."""
    most = await decide.seatings.most_together(uow.seats, event_id)
    if quantity <= most:
        return None
    return errors.TooManySeats.code, (f"Event {event_id} has at most {most} seats together in one row: a waiting "
                                      f"list entry for {quantity} could never be offered seats")


async def _not_admitted(uow: BookingUnitOfWork, message: Message, user_id: str,
                        decide: Decide) -> tuple[str, str] | None:
    """Behind an active waiting room the line is joined with an admission, like a hold: seats it offers later
    must not go to someone who skipped the queue."""
    if decide.admissions is None:
        return None
    gate = (await uow.waiting_rooms.gates([message.event_id])).get(message.event_id)
    if gate is None or not gate.waiting_room:
        return None
    return admission_refusal(decide, message.data.get("queueAccess"), message.event_id, user_id)


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
    """Ends the entries whose offer these bookings were, and offers their events' free seats (those these
    bookings released among them) to the waiting list. Returns the messages to publish after the bookings'
    own, and the offers made."""
    released = [b for b in bookings if any(isinstance(e, events.SeatsReleased) for e in b.events)]
    if not released:
        return [], []
    ended = await uow.waitlist.offered_with([b.booking_id for b in released])
    status = {b.booking_id: b.status for b in released}
    for entry in ended:
        entry.offer_ended(by_the_buyer=status.get(entry.booking_id or "") is BookingStatus.CANCELLED)
    waiting = await uow.waitlist.waiting(sorted({b.event_id for b in released}), LOOK_AHEAD)
    holds: list[events.SeatsReserved] = []
    offered: list[WaitlistEntry] = []
    for event_id, entries in waiting.items():
        owned = await _seats_owned(uow, event_id, entries, decide)
        cap = decide.rules.seats_per_user
        if cap is not None:  # an entry whose offer would take its buyer over the cap waits on; the next gets them
            entries = [e for e in entries if owned.get(e.user_id, 0) + e.quantity <= cap]
        for entry, block, seat_map in await _promised(uow, event_id, entries):
            seat_map.per_user_limit, seat_map.seats_per_user = cap, dict(owned)
            hold = seat_map.hold(offer_request_id(entry), entry.user_id, list(block.seat_ids),
                                 decide.new_booking_id(), decide.now + (seat_map.hold_time or decide.rules.hold))
            # The seats were locked AVAILABLE just now and the buyer is under the cap: only a called-off event
            # refuses, and its line has ended.
            if not isinstance(hold, events.SeatsReserved):
                continue
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


async def _seats_owned(uow: BookingUnitOfWork, event_id: str, entries: list[WaitlistEntry],
                       decide: Decide) -> dict[str, int]:
    """The seats each entry's buyer holds or owns of the event, when buyers have a cap
    (BOXOFFICE_MAX_SEATS_PER_USER)."""
    if decide.rules.seats_per_user is None or not entries:
        return {}
    owned = await uow.bookings.seats_per_buyer(sorted({(event_id, e.user_id) for e in entries}))
    return {user_id: seats for (_, user_id), seats in owned.items()}


async def _promised(uow: BookingUnitOfWork, event_id: str,
                    entries: list[WaitlistEntry]) -> list[tuple[WaitlistEntry, Block, SeatMap]]:
    """Which entries get which of the event's free seats, with the seat map of those seats, locked AVAILABLE
    until the transaction ends. The free seats are all those AVAILABLE now: the seats just released together
    with those released before that no entry could take alone, so two single seats released one after the
    other make the pair an entry waits for. A seat that another transaction took before it could be locked is
    left out, and the offers are chosen again without it."""
    _, free = await uow.seats.free_seats(event_id)
    placed = await uow.seats.placed(event_id, sorted(free)) if free else []
    while True:
        chosen = offers(placed, entries)
        if not chosen:
            return []
        wanted = sorted((event_id, s) for _, block in chosen for s in block.seat_ids)
        seat_map = (await uow.seats.lock([event_id], wanted)).get(event_id)
        if seat_map is None:
            return []
        taken = {s for _, s in wanted
                 if s not in seat_map.seats or seat_map.seats[s].status is not SeatStatus.AVAILABLE}
        if not taken:
            return [(entry, block, seat_map) for entry, block in chosen]
        placed = [p for p in placed if p.seat_id not in taken]
