"""The expiry scheduler wakes for the next deadline and publishes each due hold's timeout, on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice.adapters.expiry import LEADER_LOCK, ExpiryScheduler
from boxoffice.adapters.kafka import Publisher
from boxoffice.domain.catalog import EventSpec
from boxoffice.messages import SEAT_RESERVATION_TIMEOUT, decode, utc_now
from tests.integration.test_lifecycle import hold


@contextlib.asynccontextmanager
async def timeout_topic(kafka: str) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
    """A producer for the schedulers and a consumer reading the timeouts they publish from now on."""
    consumer = AIOKafkaConsumer(SEAT_RESERVATION_TIMEOUT, bootstrap_servers=kafka, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=5)
    await consumer.start()
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        yield consumer, producer
    finally:
        await consumer.stop()
        await producer.stop()


async def test_timeouts_are_published_at_the_deadline(pool: asyncpg.Pool, kafka: str, event: EventSpec) -> None:
    async with timeout_topic(kafka) as (consumer, producer):
        await _published_at_the_deadline(pool, event, consumer, producer)


async def _published_at_the_deadline(pool: asyncpg.Pool, event: EventSpec, consumer: AIOKafkaConsumer,
                                     producer: AIOKafkaProducer) -> None:
    scheduler = ExpiryScheduler(pool, Publisher(producer), utc_now, resend_after=30)
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.sleep(0.2)  # the scheduler is asleep with nothing pending
        start = datetime.now(UTC)
        first = await hold(pool, event, ["A1"], timedelta(seconds=1.0), at=start)
        second = await hold(pool, event, ["A2"], timedelta(seconds=1.5), at=start)
        scheduler.hold_created(start + timedelta(seconds=1.0))

        arrivals: dict[str, datetime] = {}
        async with asyncio.timeout(10):
            while len(arrivals) < 2:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        message = decode(record.value)
                        if message.data["bookingId"] in (first, second):
                            arrivals.setdefault(message.data["bookingId"], datetime.now(UTC))
        await asyncio.sleep(0.5)
        repeats = sum(len(r) for r in (await consumer.getmany(timeout_ms=200)).values())
    finally:
        task.cancel()

    late_first = (arrivals[first] - (start + timedelta(seconds=1.0))).total_seconds()
    late_second = (arrivals[second] - (start + timedelta(seconds=1.5))).total_seconds()
    # CONTRACT §5.4: released within 1 s of the deadline.
    assert 0 <= late_first < 1.0 and 0 <= late_second < 1.0, (late_first, late_second)
    assert repeats == 0, "a timeout was published twice within the resend window"


async def test_one_of_several_schedulers_publishes_and_another_takes_over(pool: asyncpg.Pool, kafka: str,
                                                                          event: EventSpec) -> None:
    """Every booking process runs a scheduler; one publishes each timeout, and when its process goes, another
    takes over."""
    async with timeout_topic(kafka) as (consumer, producer):
        await _one_publishes_another_takes_over(pool, event, consumer, producer)


async def _one_publishes_another_takes_over(pool: asyncpg.Pool, event: EventSpec, consumer: AIOKafkaConsumer,
                                            producer: AIOKafkaProducer) -> None:
    schedulers = [ExpiryScheduler(pool, Publisher(producer), utc_now, resend_after=30, longest_sleep=0.5)
                  for _ in range(3)]
    tasks = [asyncio.create_task(s.run()) for s in schedulers]

    async def timeouts_of(bookings: set[str], settle: float) -> list[str]:
        seen: list[str] = []
        async with asyncio.timeout(10):
            while not bookings <= set(seen):
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    seen += [b for b in (decode(r.value).data["bookingId"] for r in records) if b in bookings]
        await asyncio.sleep(settle)  # anything published twice would arrive meanwhile
        for records in (await consumer.getmany(timeout_ms=200)).values():
            seen += [b for b in (decode(r.value).data["bookingId"] for r in records) if b in bookings]
        return seen

    try:
        async with asyncio.timeout(5):
            while sum(s.leading for s in schedulers) != 1:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # standbys keep trying the lock meanwhile
        assert sum(s.leading for s in schedulers) == 1
        # Holds made "elsewhere": no scheduler is woken for them, the leader finds them in its next pass.
        first = {await hold(pool, event, [seat], timedelta(seconds=0.3)) for seat in ("A1", "A2")}
        assert sorted(await timeouts_of(first, settle=1.0)) == sorted(first)

        leader = next(i for i, s in enumerate(schedulers) if s.leading)
        tasks[leader].cancel()  # its process stops: the lock goes with its connection
        await asyncio.gather(tasks[leader], return_exceptions=True)
        async with asyncio.timeout(5):
            while sum(s.leading for s in schedulers) != 1:
                await asyncio.sleep(0.05)
        second = {await hold(pool, event, ["A3"], timedelta(seconds=0.3))}
        assert await timeouts_of(second, settle=1.0) == list(second)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def lock_holder(pool: asyncpg.Pool) -> int | None:
    """The backend that holds the scheduler's lock, if any."""
    return await pool.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND (classid::bigint << 32 | objid::bigint) = $1", LEADER_LOCK)


async def test_a_leader_whose_connection_is_terminated_notices_within_2_s_and_leads_again(
        pool: asyncpg.Pool, kafka: str, event: EventSpec) -> None:
    async with timeout_topic(kafka) as (consumer, producer):
        await _notices_the_lost_lock(pool, event, consumer, producer)


async def _notices_the_lost_lock(pool: asyncpg.Pool, event: EventSpec, consumer: AIOKafkaConsumer,
                                 producer: AIOKafkaProducer) -> None:
    # Nothing pending: the leader sleeps towards its longest sleep (30 s), when it would notice at the latest.
    scheduler = ExpiryScheduler(pool, Publisher(producer), utc_now, resend_after=30)
    task = asyncio.create_task(scheduler.run())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            while not scheduler.leading or (first := await lock_holder(pool)) is None:
                await asyncio.sleep(0.02)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", first)
        terminated = loop.time()
        # Noticed: standing down, or already leading again on a new connection.
        while scheduler.leading and await lock_holder(pool) in (None, first):
            assert loop.time() - terminated < 2.0, "the scheduler still believes it leads"
            await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while not scheduler.leading or await lock_holder(pool) in (None, first):
                await asyncio.sleep(0.02)
        # And it schedules again: a new hold's timeout is published.
        now = datetime.now(UTC)
        booking = await hold(pool, event, ["A4"], timedelta(seconds=0.3), at=now)
        scheduler.hold_created(now + timedelta(seconds=0.3))
        async with asyncio.timeout(10):
            while booking not in [decode(r.value).data["bookingId"]
                                  for records in (await consumer.getmany(timeout_ms=100)).values()
                                  for r in records]:
                pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_leader_that_stops_gives_the_lock_back_with_its_connection_still_pooled(
        pool: asyncpg.Pool, kafka: str) -> None:
    """The pool hands connections on without asyncpg's session reset, so the leader itself must unlock:
    otherwise the next borrower of that connection would carry the lock and no scheduler could lead."""
    async with timeout_topic(kafka) as (_, producer):
        scheduler = ExpiryScheduler(pool, Publisher(producer), utc_now, resend_after=30)
        task = asyncio.create_task(scheduler.run())
        try:
            async with asyncio.timeout(5):
                while not scheduler.leading or await lock_holder(pool) is None:
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await lock_holder(pool) is None
        assert pool.get_size() - pool.get_idle_size() == 0  # the connection went back to the pool, open
