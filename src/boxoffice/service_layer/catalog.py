"""The catalog service's decisions: organisers' new events are created, and each seat event moves the
live availability counts once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.catalog_ports import CatalogUnitOfWork, SeatCounts
from boxoffice.service_layer.event_creation import event_from_data

log = logging.getLogger(__name__)

# The consumer name its processed messages are recorded under.
CONSUMER = "catalog.availability"

# How the counts move per seat of each seat event.
SEAT_CHANGES = {
    topics.SEAT_RESERVED: SeatCounts(available=-1, reserved=1),
    topics.SEAT_RELEASED: SeatCounts(available=1, reserved=-1),
    topics.BOOKING_CONFIRMED: SeatCounts(reserved=-1, booked=1),
}
# A refund gives back seats that were BOOKED.
REFUNDED = SeatCounts(available=1, booked=-1)

# A handler takes the batch's messages of its topics, in order.
Handler = Callable[[list[Message], CatalogUnitOfWork], Awaitable[None]]


async def create_events(messages: list[Message], uow: CatalogUnitOfWork) -> None:
    """Creating is idempotent: a redelivered request finds its event and changes nothing."""
    for message in messages:
        try:
            spec = event_from_data(message.data)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            log.error("dropping malformed event creation %s", message.id)
            continue
        async with uow:
            created = await uow.events.create(spec)
            await uow.commit()
        if created:
            log.info("created event %s with %d seats", spec.event_id, len(spec.seats()))


async def count_seats(messages: list[Message], uow: CatalogUnitOfWork) -> None:
    """Messages processed before (a redelivery) change nothing; the batch's changes go in one write."""
    async with uow:
        fresh = await uow.processed.first_seen(CONSUMER, [m.id for m in messages])
        changes: dict[str, SeatCounts] = {}
        for message in messages:
            if message.id not in fresh:
                continue
            fresh.discard(message.id)  # a copy later in the same batch is a redelivery too
            seats = len(message.data.get("seatIds") or [])
            counts = REFUNDED if message.data.get("reason") == "refunded" else SEAT_CHANGES[message.type]
            change = counts.times(seats)
            changes[message.event_id] = changes.get(message.event_id, SeatCounts()) + change
        if changes:
            await uow.availability.add(changes)
        await uow.commit()


HANDLERS: dict[str, Handler] = {
    topics.EVENT_CREATION_REQUESTED: create_events,
    **dict.fromkeys(SEAT_CHANGES, count_seats),
}
TOPICS = list(HANDLERS)


class CatalogHandler:
    """A batch handler for the consumer loop: each handler gets its messages of the batch, in the table's
    order (new events before seat changes: a seat event for an event of the same batch then finds it)."""

    def __init__(self, uow: Callable[[], CatalogUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, batch: list[Message]) -> None:
        by_handler: dict[Handler, list[Message]] = {handler: [] for handler in HANDLERS.values()}
        for message in batch:
            handler = HANDLERS.get(message.type)
            if handler is not None:
                by_handler[handler].append(message)
        for handler, messages in by_handler.items():
            if messages:
                await handler(messages, self._uow())
