"""Holding seats: a batch of reservation requests decided in one transaction, in the order Kafka holds them.

The seats the batch asks for are locked in one statement, then the domain decides each request in turn
(later requests see earlier holds); a request decided before (a redelivery, or a retry after another
process took the partition) gets its stored outcome again instead of a second decision.
"""

from __future__ import annotations

import logging

from boxoffice.domain import errors, events
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import Message, iso
from boxoffice.service_layer.booking_ports import BookingUnitOfWork, StoredOutcome
from boxoffice.service_layer.change_numbers import number_seat_changes
from boxoffice.service_layer.decisions import Decide, Decision, admission_refusal
from boxoffice.service_layer.outcomes import reservation_message

log = logging.getLogger(__name__)


def reserve_command(message: Message) -> ReserveSeats | None:
    data = message.data
    user_id, seat_ids, quantity = data.get("userId"), data.get("seatIds"), data.get("quantity")
    if not message.request_id or not isinstance(user_id, str):
        return None
    body_hash, email = str(data.get("bodyHash", "")), str(data.get("email") or "")
    access = data.get("queueAccess")
    queue_access = access if isinstance(access, str) else None
    if seat_ids is None and type(quantity) is int and quantity > 0:
        category_id, section = data.get("categoryId"), data.get("section")
        if not all(v is None or isinstance(v, str) for v in (category_id, section)):
            return None
        return ReserveSeats(message.request_id, message.event_id, user_id, [], body_hash, email, quantity,
                            category_id, section, queue_access)
    if not isinstance(seat_ids, list) or not seat_ids or not all(isinstance(s, str) for s in seat_ids) \
            or quantity is not None:
        return None
    return ReserveSeats(message.request_id, message.event_id, user_id, seat_ids, body_hash, email,
                        queue_access=queue_access)


async def reserve_seats(uow: BookingUnitOfWork, batch: list[Message], decide: Decide) -> list[Decision]:
    """Decides every request not decided before; the stored outcome of those that were goes out again."""
    unique: dict[str, ReserveSeats] = {}
    for message in batch:
        command = reserve_command(message)
        if command is None:
            log.error("dropping malformed reservation request %s", message.id)
            continue
        unique.setdefault(command.request_id, command)
    if not unique:
        return []
    stored = await uow.requests.find(list(unique))
    fresh = [c for c in unique.values() if c.request_id not in stored]
    outcomes = await _decide(uow, fresh, decide) if fresh else []
    outgoing = [reservation_message(outcome) for outcome in outcomes]
    await number_seat_changes(uow.sequence, outgoing)
    _note_numbers(decide, outgoing)
    answers = [StoredOutcome(c.request_id, c.event_id, c.body_hash, m.type, m.encode())
               for c, m in zip(fresh, outgoing, strict=True)]
    await uow.requests.add(answers)
    # Replays go out in the order their requests came, like the first time.
    replays = [stored[request_id] for request_id in unique if request_id in stored]
    await uow.outbox.add([a.outgoing() for a in (*answers, *replays)])
    return [(outcome, outcome.request_id) for outcome in outcomes]


async def _decide(uow: BookingUnitOfWork, commands: list[ReserveSeats],
                  decide: Decide) -> list[events.SeatsReserved | events.ReservationFailed]:
    rules = decide.rules
    # Events with best-available requests, and those whose seating is kept, choose from their seating.
    event_ids = {c.event_id for c in commands}
    choosing = {c.event_id for c in commands if c.quantity} | decide.seatings.known(event_ids)
    seatings = await decide.seatings.current(uow.seats, sorted(choosing)) if choosing else {}
    wanted = sorted({(c.event_id, s) for c in commands for s in c.seat_ids})
    maps = await uow.seats.lock(sorted(event_ids), wanted)
    for event_id, event_map in maps.items():
        event_map.per_booking_limit = rules.max_seats_per_booking
        event_map.per_user_limit = rules.seats_per_user
        if event_id in seatings:
            event_map.follow(seatings[event_id])
    if rules.seats_per_user is not None:
        owned = await uow.bookings.seats_per_buyer(sorted({(c.event_id, c.user_id) for c in commands}))
        for (event_id, user_id), seats in owned.items():
            if event_id in maps:
                maps[event_id].seats_per_user[user_id] = seats

    # A request that slipped past the gateway's check of the waiting room's access token cannot hold; without a
    # waiting room, no request holds before the on-sale's opening.
    gates = await uow.waiting_rooms.gates(sorted(event_ids))
    gated = {e for e, g in gates.items() if g.waiting_room} if decide.admissions is not None else set()
    not_open = {e: g.opens_at for e, g in gates.items() if not g.waiting_room and decide.now < g.opens_at}

    outcomes: list[events.SeatsReserved | events.ReservationFailed] = []
    for command in commands:
        seat_map = maps.get(command.event_id)
        if seat_map is None:
            outcomes.append(events.ReservationFailed(
                command.request_id, command.event_id, command.user_id, list(command.seat_ids),
                errors.EventNotFound.code, f"Event {command.event_id} does not exist"))
            continue
        if command.event_id in gated and (refused := _not_admitted(command, decide)) is not None:
            outcomes.append(refused)
            continue
        if command.event_id in not_open:
            outcomes.append(events.ReservationFailed(
                command.request_id, command.event_id, command.user_id, list(command.seat_ids),
                errors.SaleNotOpen.code,
                f"The sale of event {command.event_id} opens at {iso(not_open[command.event_id])}"))
            continue
        expires_at = decide.now + (seat_map.hold_time or rules.hold)
        if command.quantity:
            outcomes.append(seat_map.hold_best(command.request_id, command.user_id, command.quantity,
                                               command.category_id, command.section, decide.new_booking_id(),
                                               expires_at))
        else:
            outcomes.append(seat_map.hold(command.request_id, command.user_id, list(command.seat_ids),
                                          decide.new_booking_id(), expires_at))
    holds = [o for o in outcomes if isinstance(o, events.SeatsReserved)]
    if holds:
        await uow.seats.hold(holds)
        await uow.bookings.add(holds, {c.request_id: c.email for c in commands})
    return outcomes


def _not_admitted(command: ReserveSeats, decide: Decide) -> events.ReservationFailed | None:
    refused = admission_refusal(decide, command.queue_access, command.event_id, command.user_id)
    if refused is None:
        return None
    return events.ReservationFailed(command.request_id, command.event_id, command.user_id, list(command.seat_ids),
                                    *refused)


def _note_numbers(decide: Decide, outgoing: list[Message]) -> None:
    """Tells the seatings which change numbers this run's holds took, per event."""
    numbers: dict[str, list[int]] = {}
    for message in outgoing:
        if "seq" in message.data:
            numbers.setdefault(message.event_id, []).append(message.data["seq"])
    for event_id, seqs in numbers.items():
        decide.seatings.numbered(event_id, min(seqs), max(seqs))
