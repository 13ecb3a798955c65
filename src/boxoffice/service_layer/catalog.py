"""The catalog service's decisions: organisers' new events are created, and the live availability counts follow
the seat changes. Each seat message carries the event's counts right after it and its change number; the
catalog keeps the newest, since one event's seat messages come on three topics, in no order between them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.catalog_ports import CatalogUnitOfWork, CountsAt, SeatCounts
from boxoffice.service_layer.event_creation import event_from_data

log = logging.getLogger(__name__)

SEAT_CHANGES = (topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED)

# A handler takes the batch's messages of its topics, in order.
Handler = Callable[[list[Message], CatalogUnitOfWork], Awaitable[None]]


async def create_events(messages: list[Message], uow: CatalogUnitOfWork) -> None:
    """Creating is idempotent: a redelivered request finds its event and changes nothing. The event keeps the
    request that created it, so each request's sender learns its own outcome: created, or the id was taken."""
    for message in messages:
        try:
            spec = event_from_data(message.data)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            log.error("dropping malformed event creation %s", message.id)
            continue
        async with uow:
            created = await uow.events.create(spec, message.request_id or message.id)
            await uow.commit()
        if created:
            log.info("created event %s with %d seats", spec.event_id, len(spec.seats()))


def counts_after(message: Message) -> CountsAt | None:
    """The event's counts right after this change, as its message carries them; None from a booking service
    of a version before counts travelled with the change (the next change of the event carries them)."""
    seq, available, reserved, booked = (message.data.get(k) for k in ("seq", "available", "reserved", "booked"))
    if not (isinstance(seq, int) and isinstance(available, int) and isinstance(reserved, int)
            and isinstance(booked, int)):
        return None
    return CountsAt(seq, SeatCounts(available, reserved, booked))


async def count_seats(messages: list[Message], uow: CatalogUnitOfWork) -> None:
    """Keeps the newest counts of each event: a redelivered or late message changes nothing."""
    latest: dict[str, CountsAt] = {}
    for message in messages:
        counts = counts_after(message)
        if counts is None:
            log.debug("seat message %s carries no counts", message.id)
            continue
        kept = latest.get(message.event_id)
        if kept is None or counts.seq > kept.seq:
            latest[message.event_id] = counts
    if not latest:
        return
    async with uow:
        await uow.availability.keep_newest(latest)
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
