"""A consumer that dies after its database commit but before its offset commit gets the batch again from
Kafka: the second pass must change nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice import messages as topics
from boxoffice.adapters.consumer_loop import handle_with_retry
from boxoffice.domain.catalog import EventSpec
from boxoffice.messages import Message, decode
from boxoffice.service_layer.booking import BookingService
from tests.booking_service import CollectingOutbox, booking_service
from tests.dead_letters import KeptDeadLetters, deliveries


async def consume_once(kafka: str, group: str, topic: str, handler: BookingService, expected: int) -> None:
    """Reads the group's next messages and handles them, then stops without committing offsets: a crash."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=2000, heartbeat_interval_ms=500)
    await consumer.start()
    try:
        batch: list[Message] = []
        while len(batch) < expected:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                batch += [decode(r.value) for r in records]
        await handler(batch)
    finally:
        await consumer.stop()


async def test_a_batch_handled_twice_changes_nothing_twice(pool: asyncpg.Pool, kafka: str, event: EventSpec) -> None:
    topic = f"redelivery.{uuid.uuid4().hex[:8]}"
    requests = [Message(topics.SEAT_RESERVATION_REQUESTED, event.event_id,
                        {"userId": f"u{i}", "seatIds": ["A1", f"B{i + 1}"]}, f"req-{uuid.uuid4()}") for i in range(3)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    for message in requests:
        await producer.send_and_wait(topic, message.encode(), key=message.key)
    await producer.stop()
    outbox = CollectingOutbox()
    handler = booking_service(pool, outbox, hold=timedelta(minutes=5))
    group = f"booking-{uuid.uuid4().hex[:6]}"

    await consume_once(kafka, group, topic, handler, expected=3)
    first = [decode(r.payload) for r in outbox.rows]
    outbox.rows.clear()
    await consume_once(kafka, group, topic, handler, expected=3)  # the same three again: offsets never committed
    again = [decode(r.payload) for r in outbox.rows]

    assert [m.type for m in first] == [topics.SEAT_RESERVED] + [topics.SEAT_RESERVATION_FAILED] * 2
    assert [(m.id, m.data) for m in again] == [(m.id, m.data) for m in first]  # replayed, not decided anew
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", event.event_id) == 1
    assert await pool.fetchval("SELECT count(*) FROM booking_seats WHERE event_id = $1 AND live",
                               event.event_id) == 2
    assert await pool.fetchval("SELECT change_seq FROM events WHERE event_id = $1", event.event_id) == 1


async def test_two_processes_on_one_batch_at_once_decide_it_once(pool: asyncpg.Pool, event: EventSpec) -> None:
    """A partition changed hands while its old owner still held a batch (past the rebalance wait): the new
    owner reads the same messages while the old one decides them. One transaction wins; the other is refused
    by the stored outcomes' key, retried, and replays them."""
    requests = [Message(topics.SEAT_RESERVATION_REQUESTED, event.event_id,
                        {"userId": f"u{i}", "seatIds": ["A1", f"B{i + 1}"]}, f"req-{uuid.uuid4()}") for i in range(3)]
    old_owner, new_owner = CollectingOutbox(), CollectingOutbox()
    loaded = asyncio.Event()

    async def pause() -> None:
        loaded.set()
        await asyncio.sleep(0.3)  # holds the seat locks while the new owner starts on the same batch

    dead = KeptDeadLetters()
    slow = booking_service(pool, old_owner, hold=timedelta(minutes=5), after_lock=pause)
    first = asyncio.create_task(handle_with_retry(slow, deliveries(requests), dead))
    await loaded.wait()
    await handle_with_retry(booking_service(pool, new_owner, hold=timedelta(minutes=5)), deliveries(requests), dead)
    await first

    decided = [decode(r.payload) for r in old_owner.rows]
    replayed = [decode(r.payload) for r in new_owner.rows]
    assert [m.type for m in decided] == [topics.SEAT_RESERVED] + [topics.SEAT_RESERVATION_FAILED] * 2
    assert [(m.id, m.data) for m in replayed] == [(m.id, m.data) for m in decided]
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", event.event_id) == 1
    assert await pool.fetchval("SELECT count(*) FROM booking_requests WHERE request_id = ANY($1)",
                               [m.request_id for m in requests]) == 3
    assert dead.letters == []
