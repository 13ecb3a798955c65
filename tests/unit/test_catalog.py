"""The catalog handlers over in-memory fakes: events created once, and the counts of each event's newest seat
change kept, whatever order its messages come in."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.catalog import HANDLERS, CatalogHandler, count_seats, create_events
from boxoffice.service_layer.catalog_ports import AvailabilityCounts, CountsAt
from boxoffice.service_layer.event_creation import event_to_data
from tests.conftest import small_event
from tests.fakes import CatalogDatabase, FakeCatalogUnitOfWork

EVENT = small_event("ev_catalog", rows=2, seats=5)  # 10 seats


def seats(topic: str, seq: int, after: tuple[int, int, int], *seat_ids: str,
          event_id: str = EVENT.event_id) -> Message:
    """A seat change numbered `seq`, with the event's (available, reserved, booked) counts right after it."""
    available, reserved, booked = after
    return Message(topic, event_id, {"bookingId": "b", "seatIds": list(seat_ids), "seq": seq,
                                     "available": available, "reserved": reserved, "booked": booked})


def creation(request_id: str | None = None) -> Message:
    return Message(topics.EVENT_CREATION_REQUESTED, EVENT.event_id, event_to_data(EVENT), request_id)


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


async def test_the_event_keeps_the_request_that_created_it() -> None:
    """Two organisers' requests for one new id: the first read creates it, and the event keeps that request, so
    the gateway tells its sender 201 and the other 409, whichever is asked first; a redelivery changes nothing."""
    db = CatalogDatabase()
    first, second = creation("req_first"), creation("req_second")
    await handler_over(db)([first, second])
    await handler_over(db)([second, first])
    assert db.creation_requests == {EVENT.event_id: "req_first"}


async def test_the_event_keeps_the_account_that_created_it() -> None:
    """With accounts on, the gateway names the creating organiser: the event keeps it (it alone of the organisers
    manages the event). Without an account (the open demo) the event has no organiser."""
    owned = dataclasses.replace(small_event("ev_owned"), organiser_id="user_o")
    assert event_to_data(owned)["organiserId"] == "user_o" and "organiserId" not in event_to_data(EVENT)
    db = CatalogDatabase()
    await handler_over(db)([creation(), Message(topics.EVENT_CREATION_REQUESTED, owned.event_id,
                                                event_to_data(owned), "req_owned")])
    assert db.events[owned.event_id] == owned and db.events[owned.event_id].organiser_id == "user_o"
    assert db.events[EVENT.event_id].organiser_id is None


async def test_a_malformed_creation_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    db = CatalogDatabase()
    bad = Message(topics.EVENT_CREATION_REQUESTED, "ev_bad", {"eventId": "ev_bad", "name": "No seats"})
    with caplog.at_level(logging.ERROR):
        await handler_over(db)([bad, creation()])
    assert f"dropping malformed event creation {bad.id}" in caplog.text
    assert list(db.events) == [EVENT.event_id]


async def test_the_counts_of_the_newest_change_are_kept() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    await handler([seats(topics.SEAT_RESERVED, 1, (7, 3, 0), "A1", "A2", "A3"),
                   seats(topics.SEAT_RELEASED, 2, (8, 2, 0), "A3")])
    assert db.counts[EVENT.event_id] == (10, 8, 2, 0)
    await handler([seats(topics.BOOKING_CONFIRMED, 3, (8, 0, 2), "A1", "A2"),
                   seats(topics.SEAT_RESERVED, 4, (7, 1, 2), "B1")])
    assert db.counts[EVENT.event_id] == (10, 7, 1, 2) and db.change_seqs[EVENT.event_id] == 4


async def test_changes_read_out_of_order_end_at_the_newest() -> None:
    """One event's seat messages come on three topics, read in no order between them: a hold released and the
    seats held again can be read hold, hold, release (which, added up, had 4 seats of 2 reserved)."""
    db = CatalogDatabase()
    handler = await created(db)
    first = seats(topics.SEAT_RESERVED, 1, (8, 2, 0), "A1", "A2")
    released = seats(topics.SEAT_RELEASED, 2, (10, 0, 0), "A1", "A2")
    again = seats(topics.SEAT_RESERVED, 3, (8, 2, 0), "A1", "A2")
    await handler([first])
    await handler([again])
    await handler([released])
    assert db.counts[EVENT.event_id] == (10, 8, 2, 0) and db.change_seqs[EVENT.event_id] == 3


async def test_a_redelivered_seat_message_changes_nothing() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    held = seats(topics.SEAT_RESERVED, 1, (8, 2, 0), "A1", "A2")
    await handler([held])
    await handler([seats(topics.SEAT_RELEASED, 2, (10, 0, 0), "A1", "A2")])
    await handler([held, held])
    assert db.counts[EVENT.event_id] == (10, 10, 0, 0)


async def test_a_seat_message_without_counts_changes_nothing() -> None:
    """From a booking service of a version before counts travelled with the change: the next change says."""
    db = CatalogDatabase()
    handler = await created(db)
    await handler([Message(topics.SEAT_RESERVED, EVENT.event_id, {"bookingId": "b", "seatIds": ["A1"]})])
    assert db.counts[EVENT.event_id] == (10, 10, 0, 0)


async def test_an_event_created_in_the_same_batch_is_counted() -> None:
    db = CatalogDatabase()
    await handler_over(db)([seats(topics.SEAT_RESERVED, 1, (9, 1, 0), "A1"), creation()])
    assert db.counts[EVENT.event_id] == (10, 9, 1, 0)


async def test_seats_of_an_unknown_event_change_nothing() -> None:
    db = CatalogDatabase()
    await handler_over(db)([seats(topics.SEAT_RESERVED, 1, (9, 1, 0), "A1", event_id="ev_unknown")])
    assert db.counts == {}


class FailingAvailability:
    """Writes the change, then the connection drops before the commit."""

    def __init__(self, inner: AvailabilityCounts) -> None:
        self._inner = inner

    async def keep_newest(self, latest: dict[str, CountsAt]) -> None:
        await self._inner.keep_newest(latest)
        raise ConnectionError("the database went away")


class FailingUnitOfWork(FakeCatalogUnitOfWork):
    def _begin(self) -> None:
        super()._begin()
        self.availability = FailingAvailability(self.availability)


async def test_a_failed_batch_records_nothing_so_its_retry_counts() -> None:
    db = CatalogDatabase()
    handler = await created(db)
    held = seats(topics.SEAT_RESERVED, 1, (9, 1, 0), "A1")

    with pytest.raises(ConnectionError):
        await CatalogHandler(lambda: FailingUnitOfWork(db))([held])
    assert db.change_seqs == {} and db.counts[EVENT.event_id] == (10, 10, 0, 0)

    await handler([held])
    assert db.counts[EVENT.event_id] == (10, 9, 1, 0)
