"""The catalog handlers over in-memory fakes: events created once, each seat event counted once."""

from __future__ import annotations

import logging

import pytest

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.catalog import CONSUMER, HANDLERS, CatalogHandler, count_seats, create_events
from boxoffice.service_layer.catalog_ports import AvailabilityCounts, SeatCounts
from boxoffice.service_layer.event_creation import event_to_data
from tests.conftest import small_event
from tests.fakes import CatalogDatabase, FakeCatalogUnitOfWork

EVENT = small_event("ev_catalog", rows=2, seats=5)  # 10 seats


def seats(topic: str, *seat_ids: str, event_id: str = EVENT.event_id) -> Message:
    return Message(topic, event_id, {"bookingId": "b", "seatIds": list(seat_ids)})


def creation() -> Message:
    return Message(topics.EVENT_CREATION_REQUESTED, EVENT.event_id, event_to_data(EVENT))


def handler_over(db: CatalogDatabase) -> CatalogHandler:
    return CatalogHandler(lambda: FakeCatalogUnitOfWork(db))


async def created(db: CatalogDatabase) -> CatalogHandler:
    handler = handler_over(db)
    await handler([creation()])
    return handler


def test_the_topic_table() -> None:
    assert {topics.EVENT_CREATION_REQUESTED: create_events, topics.SEAT_RESERVED: count_seats,
            topics.SEAT_RELEASED: count_seats, topics.BOOKING_CONFIRMED: count_seats} == HANDLERS


async def test_an_event_is_created_once(caplog: pytest.LogCaptureFixture) -> None:
    db = CatalogDatabase()
    handler = handler_over(db)
    with caplog.at_level(logging.INFO, "boxoffice.service_layer.catalog"):
        await handler([creation(), creation()])
        await handler([creation()])
    assert db.events == {EVENT.event_id: EVENT} and db.counts == {EVENT.event_id: (10, 10, 0, 0)}
    assert caplog.messages == [f"created event {EVENT.event_id} with 10 seats"]


async def test_a_malformed_creation_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    db = CatalogDatabase()
    bad = Message(topics.EVENT_CREATION_REQUESTED, "ev_bad", {"eventId": "ev_bad", "name": "No seats"})
    with caplog.at_level(logging.ERROR):
        await handler_over(db)([bad, creation()])
    assert f"dropping malformed event creation {bad.id}" in caplog.text
    assert list(db.events) == [EVENT.event_id]


async def test_each_seat_event_moves_the_counts_by_its_seats() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    await handler([seats(topics.SEAT_RESERVED, "A1", "A2", "A3"), seats(topics.SEAT_RELEASED, "A3")])
    await handler([seats(topics.BOOKING_CONFIRMED, "A1", "A2"), seats(topics.SEAT_RESERVED, "B1")])
    assert db.counts[EVENT.event_id] == (10, 7, 1, 2)


async def test_a_redelivered_seat_message_moves_the_counts_once() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    held = seats(topics.SEAT_RESERVED, "A1", "A2")
    await handler([held])
    await handler([held, held])
    assert db.counts[EVENT.event_id] == (10, 8, 2, 0)
    assert db.processed == {(CONSUMER, held.id): True}


async def test_an_event_created_in_the_same_batch_is_counted() -> None:
    db = CatalogDatabase()
    await handler_over(db)([seats(topics.SEAT_RESERVED, "A1"), creation()])
    assert db.counts[EVENT.event_id] == (10, 9, 1, 0)


async def test_seats_of_an_unknown_event_change_nothing() -> None:
    db = CatalogDatabase()
    await handler_over(db)([seats(topics.SEAT_RESERVED, "A1", event_id="ev_unknown")])
    assert db.counts == {} and len(db.processed) == 1


class FailingAvailability:
    """Writes the change, then the connection drops before the commit."""

    def __init__(self, inner: AvailabilityCounts) -> None:
        self._inner = inner

    async def add(self, changes: dict[str, SeatCounts]) -> None:
        await self._inner.add(changes)
        raise ConnectionError("the database went away")


class FailingUnitOfWork(FakeCatalogUnitOfWork):
    def _begin(self) -> None:
        super()._begin()
        self.availability = FailingAvailability(self.availability)


async def test_a_failed_batch_records_nothing_so_its_retry_counts() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    held = seats(topics.SEAT_RESERVED, "A1")

    with pytest.raises(ConnectionError):
        await CatalogHandler(lambda: FailingUnitOfWork(db))([held])
    assert db.processed == {} and db.counts[EVENT.event_id] == (10, 10, 0, 0)

    await handler([held])
    assert db.counts[EVENT.event_id] == (10, 9, 1, 0)
