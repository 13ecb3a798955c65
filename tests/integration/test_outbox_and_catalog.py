"""Outcomes reach Kafka through the outbox, and the catalog applies each seat event once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice.adapters import outbox
from boxoffice.adapters.kafka import Publisher
from boxoffice.adapters.outbox import (
    KafkaEpochWatch,
    OutboxRelay,
    bump_kafka_epoch,
    count_broker_start,
    insert_outbox,
    replay_if_broker_restarted,
)
from boxoffice.bootstrap.catalog import catalog_handler
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import SEAT_RELEASED, SEAT_RESERVED, Message, decode
from tests.booking_service import reserve


async def test_outbox_rows_are_published_in_order_then_marked_published(pool: asyncpg.Pool, kafka: str,
                                                               event: EventSpec) -> None:
    consumer = AIOKafkaConsumer(SEAT_RESERVED, "seat.reservation.failed", bootstrap_servers=kafka,
                                auto_offset_reset="latest", group_id=None, fetch_max_wait_ms=20)
    await consumer.start()
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        commands = [ReserveSeats(f"req-{uuid.uuid4()}", event.event_id, f"user_{i}", ["A7"]) for i in range(3)]
        rows = await reserve(pool, commands, timedelta(minutes=10), datetime.now(UTC))
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1)", [r.id for r in rows]) == 3

        relay = OutboxRelay(pool, Publisher(producer), retain_seconds=60)
        relay_task = asyncio.create_task(relay.run())
        received: list[Message] = []
        async with asyncio.timeout(20):
            while len(received) < 3:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    received += [m for m in map(decode, (r.value for r in records))
                                 if m.request_id in {c.request_id for c in commands}]
        by_request = {m.request_id: m.type for m in received}
        assert [by_request[c.request_id] for c in commands] == [
            SEAT_RESERVED, "seat.reservation.failed", "seat.reservation.failed"]
        async with asyncio.timeout(5):  # rows are marked once Kafka has acknowledged them
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NULL",
                                      [r.id for r in rows]):
                await asyncio.sleep(0.05)
        # ... and kept for the retention time, for a broker that might forget them.
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NOT NULL",
                                   [r.id for r in rows]) == 3
        relay_task.cancel()
    finally:
        await consumer.stop()
        await producer.stop()


async def test_catalog_counts_are_those_of_the_newest_change_read(pool: asyncpg.Pool, event: EventSpec) -> None:
    counter = catalog_handler(pool)
    held = Message(SEAT_RESERVED, event.event_id,
                   {"seatIds": ["A1", "A2"], "seq": 1, "available": 18, "reserved": 2, "booked": 0})
    released = Message(SEAT_RELEASED, event.event_id,
                       {"seatIds": ["A2"], "seq": 2, "available": 19, "reserved": 1, "booked": 0})

    await counter([released])  # read before the hold it releases (another topic)
    await counter([held, released, released])
    await counter([held])

    counts = await pool.fetchrow(
        "SELECT total, available, reserved, booked FROM event_availability WHERE event_id = $1", event.event_id)
    assert dict(counts) == {"total": 20, "available": 19, "reserved": 1, "booked": 0}


async def test_rows_left_behind_are_swept_up_once_by_several_relays(pool: asyncpg.Pool, kafka: str) -> None:
    """A process stopped before Kafka acknowledged its rows: every other process of the producer sweeps, and
    each row still goes out exactly once; young rows are left to the process that wrote them."""
    topic, producer_name = f"sweep.{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        left = await insert_outbox(con, [(topic, b"k", b"left-%d" % i) for i in range(2500)], producer_name)
        await con.execute("UPDATE outbox SET created_at = now() - interval '1 minute' WHERE id = ANY($1)",
                          [r.id for r in left])
        young = await insert_outbox(con, [(topic, b"k", b"young")], producer_name)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    relays = [OutboxRelay(pool, Publisher(producer), producer=producer_name, abandoned_after=30) for _ in range(3)]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        async with asyncio.timeout(20):
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NULL",
                                      [r.id for r in left]):
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert await pool.fetchval("SELECT published_at IS NULL FROM outbox WHERE id = $1", young[0].id) is True
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await pool.execute("DELETE FROM outbox WHERE producer = $1", producer_name)

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        received: list[bytes] = []
        async with asyncio.timeout(20):
            while len(received) < len(left):
                received += [r.value for records in (await consumer.getmany(timeout_ms=200)).values()
                             for r in records]
        received += [r.value for records in (await consumer.getmany(timeout_ms=500)).values() for r in records]
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(b"left-%d" % i for i in range(2500))
    assert sum(relay.published for relay in relays) == len(left)


async def _read_all(kafka: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=20)
    await consumer.start()
    try:
        received: list[bytes] = []
        async with asyncio.timeout(20):
            while len(received) < expected:
                received += [r.value for records in (await consumer.getmany(timeout_ms=200)).values()
                             for r in records]
        received += [r.value for records in (await consumer.getmany(timeout_ms=300)).values() for r in records]
        return received
    finally:
        await consumer.stop()


async def test_a_new_kafka_epoch_publishes_the_kept_rows_again_in_order(pool: asyncpg.Pool, kafka: str) -> None:
    """The embedded broker forgets everything when it restarts: rows published within the retention time go
    out once more, in their order, once per epoch; rows older than that are deleted instead."""
    topic, producer_name = f"replay.{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        old = await insert_outbox(con, [(topic, b"k", b"old")], producer_name)
        kept = await insert_outbox(con, [(topic, b"k", b"kept-%d" % i) for i in range(50)], producer_name)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    relay = OutboxRelay(pool, Publisher(producer), producer=producer_name, abandoned_after=0.1, retain_seconds=60,
                        prune_every=0.1)
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(20):  # published once, by the sweep, and the producer is known at this epoch
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE producer = $1 AND published_at IS NULL",
                                      producer_name):
                await asyncio.sleep(0.05)
        await pool.execute("UPDATE outbox SET published_at = now() - interval '2 minutes' WHERE id = $1", old[0].id)
        async with pool.acquire() as con:
            await bump_kafka_epoch(con)
        async with asyncio.timeout(20):  # the old row is pruned, the kept ones published a second time
            while (await _read_all(kafka, topic, 0)).count(b"kept-49") < 2 \
                    or await pool.fetchval("SELECT count(*) FROM outbox WHERE id = $1", old[0].id):
                await asyncio.sleep(0.1)
        async with asyncio.timeout(20):
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE producer = $1 AND published_at IS NULL",
                                      producer_name):
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.execute("DELETE FROM outbox WHERE producer = $1", producer_name)
    received = await _read_all(kafka, topic, 1 + 2 * len(kept))
    names = [b"kept-%d" % i for i in range(len(kept))]
    assert received == [b"old", *names, *names]


async def test_a_producer_new_to_the_database_replays_nothing(pool: asyncpg.Pool) -> None:
    producer_name = f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        await bump_kafka_epoch(con)
        rows = await insert_outbox(con, [("replay.none", b"k", b"v")], producer_name)
        await con.execute("UPDATE outbox SET published_at = now() WHERE id = $1", rows[0].id)
        assert await replay_if_broker_restarted(con, producer_name) == 0
        await bump_kafka_epoch(con)
        assert await replay_if_broker_restarted(con, producer_name) == 1
        assert await replay_if_broker_restarted(con, producer_name) == 0
        await con.execute("DELETE FROM outbox WHERE producer = $1", producer_name)


async def test_a_replay_leaves_rows_published_longer_ago_than_they_are_kept(pool: asyncpg.Pool) -> None:
    """However late the relay prunes, a broker restart never sends out again what is past its retention."""
    producer_name = f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        await replay_if_broker_restarted(con, producer_name, 60)  # the producer is known at this epoch
        rows = await insert_outbox(con, [("replay.old", b"k", b"v-%d" % i) for i in range(3)], producer_name)
        await con.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1)", [r.id for r in rows])
        await con.execute("UPDATE outbox SET published_at = now() - interval '61 seconds' WHERE id = $1", rows[0].id)
        await bump_kafka_epoch(con)
        assert await replay_if_broker_restarted(con, producer_name, 60) == 2
        unpublished = await con.fetch("SELECT id FROM outbox WHERE producer = $1 AND published_at IS NULL ORDER BY id",
                                      producer_name)
        assert [r["id"] for r in unpublished] == [r.id for r in rows[1:]]
        await con.execute("DELETE FROM outbox WHERE producer = $1", producer_name)


async def test_a_prune_deletes_every_due_row_in_batches(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pruned a few times per retention time, a pass deletes batch after batch until the due rows are gone, also
    behind rows not yet published, and leaves the young and the unpublished."""
    monkeypatch.setattr(outbox, "PRUNE_BATCH", 10)
    producer_name = f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        stuck = await insert_outbox(con, [("prune.pending", b"k", b"s-%d" % i) for i in range(4)], producer_name)
        due = await insert_outbox(con, [("prune.due", b"k", b"d-%d" % i) for i in range(35)], producer_name)
        young = await insert_outbox(con, [("prune.young", b"k", b"y")], producer_name)
        unpublished = await insert_outbox(con, [("prune.pending", b"k", b"p")], producer_name)
        await con.execute("UPDATE outbox SET created_at = now() - interval '2 minutes', "
                          "published_at = now() - interval '90 seconds' WHERE id = ANY($1)", [r.id for r in due])
        await con.execute("UPDATE outbox SET published_at = now() WHERE id = $1", young[0].id)
        relay = OutboxRelay(pool, Publisher(None), producer=producer_name, retain_seconds=60)  # type: ignore[arg-type]
        await relay._prune(con)  # noqa: SLF001 - one pass, without a broker
        left = await con.fetch("SELECT id FROM outbox WHERE producer = $1 ORDER BY id", producer_name)
        await con.execute("DELETE FROM outbox WHERE producer = $1", producer_name)
    assert [r["id"] for r in left] == [*(r.id for r in stuck), young[0].id, unpublished[0].id]


async def test_without_retention_published_rows_are_deleted(pool: asyncpg.Pool, kafka: str) -> None:
    """With a broker that keeps what it acknowledged (Apache Kafka), nothing is kept for a replay."""
    topic, producer_name = f"noretain.{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as con:
        rows = await insert_outbox(con, [(topic, b"k", b"v-%d" % i) for i in range(5)], producer_name)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    relay = OutboxRelay(pool, Publisher(producer), producer=producer_name, retain_seconds=0)
    task = asyncio.create_task(relay.run())
    try:
        relay.submit(rows)
        async with asyncio.timeout(20):
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1)", [r.id for r in rows]):
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    assert await _read_all(kafka, topic, 5) == [b"v-%d" % i for i in range(5)]


async def test_the_epoch_watch_follows_the_kafka_epoch_that_postgres_holds(pool: asyncpg.Pool) -> None:
    watch = KafkaEpochWatch(pool, every=0.05)
    assert watch.current() is None
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(10):
            while watch.current() is None:
                await asyncio.sleep(0.01)
            before = watch.current()
            assert before == await pool.fetchval("SELECT epoch FROM kafka_epoch")
            async with pool.acquire() as con:
                bumped = await bump_kafka_epoch(con)
            while watch.current() == before:
                await asyncio.sleep(0.01)
            assert (watch.current(), watch.broker_starts()) == (bumped, bumped)
            async with pool.acquire() as con:  # a new broker listens: counted before its epoch
                started = await count_broker_start(con)
            while watch.broker_starts() == bumped:
                await asyncio.sleep(0.01)
            assert (watch.current(), watch.broker_starts()) == (bumped, started) == (bumped, bumped + 1)
            async with pool.acquire() as con:  # its topics settled: the epoch catches up, not one further
                assert await bump_kafka_epoch(con) == started
            while watch.current() == bumped:
                await asyncio.sleep(0.01)
        assert (watch.current(), watch.broker_starts()) == (started, started)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
