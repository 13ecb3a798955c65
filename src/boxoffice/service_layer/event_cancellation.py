"""An organiser calls an event off (CONTRACT §8.3), decided by the booking service in the event's order.

One transaction closes the event (every later hold is refused `event_cancelled`), releases its unpaid holds,
ends its waiting list and asks for a refund of every paid booking; so a restart of any service finds it either
not begun or done, and each booking refunded once. A payment still in flight decides on its own: paid, it is
refunded when it confirms.
"""

from __future__ import annotations

import logging

from boxoffice import messages as topics
from boxoffice.domain.model import BookingStatus
from boxoffice.domain.waitlist import WaitlistStatus
from boxoffice.messages import Message
from boxoffice.service_layer.booking_lifecycle import refund_id
from boxoffice.service_layer.booking_ports import BookingUnitOfWork
from boxoffice.service_layer.change_numbers import number_seat_changes
from boxoffice.service_layer.decisions import Decide, Decision
from boxoffice.service_layer.lifecycle_messages import messages_for
from boxoffice.service_layer.unit_of_work import Outgoing
from boxoffice.service_layer.waitlist import updated

log = logging.getLogger(__name__)

# Every waiting entry of the event ends with it.
ALL_WAITING = 1_000_000


async def cancel_event(uow: BookingUnitOfWork, message: Message, decide: Decide) -> list[Decision]:
    event_id = message.event_id
    cancelled_now = await uow.events.call_off(event_id)
    if cancelled_now is None:
        log.error("dropping the cancellation of event %s: it does not exist", event_id)
        return []
    bookings = await uow.bookings.live_of_event(event_id)
    unpaid = [b for b in bookings if b.status is BookingStatus.PENDING]
    for booking in unpaid:
        booking.call_off()
    await uow.bookings.save(unpaid)
    offered = await uow.waitlist.offered_with([b.booking_id for b in unpaid])
    for entry in offered:
        entry.offer_ended(by_the_buyer=False)
    waiting = (await uow.waitlist.waiting([event_id], ALL_WAITING)).get(event_id, [])
    for entry in waiting:
        entry.status = WaitlistStatus.EXPIRED
    waiting += offered
    await uow.waitlist.save(waiting)
    # Paid bookings are refunded; a payment still in flight is refunded when it confirms (payment_succeeded).
    paid = [b for b in bookings if b.status is BookingStatus.CONFIRMED]
    for booking in paid:
        booking.start_refund(refund_id(booking))
    await uow.bookings.save(paid)
    to_refund = [b for b in bookings if b.status in (BookingStatus.REFUNDING, BookingStatus.PAYING)]
    outgoing = [*(m for b in [*unpaid, *paid] for m in messages_for(b, None)), *(updated(e, None) for e in waiting)]
    await number_seat_changes(uow.sequence, outgoing)
    done = Message(topics.EVENT_CANCELLED, event_id,
                   {"released": len(unpaid), "toRefund": len(to_refund), "cancelledNow": cancelled_now},
                   message.request_id)
    await uow.outbox.add([Outgoing.of(m) for m in [*outgoing, done]])
    if cancelled_now:
        log.info("event %s cancelled: %d holds released, %d bookings to refund", event_id, len(unpaid),
                 len(to_refund))
    return [(event, None) for b in unpaid for event in b.events]
