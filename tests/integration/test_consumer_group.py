"""Two processes of one service in one consumer group, on a real broker: when the second joins while the
first holds a batch (or, in the concurrent loop, messages in flight), the first finishes and commits them
before giving partitions up, so nothing is handled by both."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from boxoffice.adapters.concurrent_consumer import consume_concurrently
from boxoffice.adapters.consumer_loop import PartitionGate, consume_forever
from boxoffice.adapters.kafka import GroupProgress, ensure_topics, make_group_consumer, start_with_retry
from boxoffice.config import Settings
from boxoffice.messages import Message
from tests.dead_letters import KeptDeadLetters


@pytest.mark.parametrize("concurrent", [False, True], ids=["batch loop", "concurrent loop"])
async def test_a_joining_process_takes_over_after_the_batch_in_hand(kafka: str, concurrent: bool) -> None:
    topic, group = f"group.{uuid.uuid4().hex[:8]}", f"service-{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka, 4, [topic])
    sent = [Message(topic, f"event_{i % 8}", {"n": i}) for i in range(40)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    for message in sent:
        await producer.send_and_wait(topic, message.encode(), key=message.key)
    await producer.stop()

    # A longer session than the platform's: the broker holds a join for half of it, and the batch in hand
    # must outlast that hold (without the gate, the join would complete while the batch is still handled).
    settings = Settings(kafka_bootstrap=kafka, kafka_session_timeout_ms=6000)
    handled: Counter[str] = Counter()
    dead = KeptDeadLetters()
    in_hand = asyncio.Event()

    def process(slow_first_batch: bool):
        gate = PartitionGate()
        consumer = make_group_consumer(settings, group, [topic], listener=gate)

        async def handle(batch: list[Message]) -> None:
            if slow_first_batch and not in_hand.is_set():
                in_hand.set()
                await asyncio.sleep(4.0)  # the other process joins meanwhile
            handled.update(m.id for m in batch)

        async def run() -> None:
            await start_with_retry(consumer, "consumer")
            try:
                if concurrent:
                    await consume_concurrently(consumer, handle, dead, limit=10, gate=gate)
                else:
                    await consume_forever(consumer, handle, dead, max_records=10, gate=gate)
            finally:
                await consumer.stop()

        return gate, asyncio.create_task(run())

    first_gate, first = process(slow_first_batch=True)
    second: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(60):  # a group that never hands out a batch fails here instead of hanging
            await in_hand.wait()
        second_gate, second = process(slow_first_batch=False)
        async with asyncio.timeout(30):
            while len(handled) < len(sent) or not (first_gate.assigned and second_gate.assigned):
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a message handled twice would show up meanwhile
    finally:
        running = [task for task in (first, second) if task is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    assert set(handled) == {m.id for m in sent}
    assert [m for m, times in handled.items() if times > 1] == [], "handled by both processes"
    assert first_gate.rebalances >= 2 and second_gate.rebalances >= 1
    assert dead.letters == []


async def test_group_progress_tells_whether_every_message_of_a_topic_is_handled(kafka: str) -> None:
    """What the waiting room asks before it opens a room: whether any join waits unread, on any partition."""
    topic, group = f"progress.{uuid.uuid4().hex[:8]}", f"service-{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka, 4, [topic])
    consumer = make_group_consumer(Settings(kafka_bootstrap=kafka), group, [topic])
    await start_with_retry(consumer, "consumer")
    progress = GroupProgress(topic)
    assert await progress.none_unread() is False  # no consumer to ask yet: not known
    progress.follow(consumer)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        async with asyncio.timeout(20):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        assert await progress.none_unread() is True  # an empty topic
        for i in range(6):
            await producer.send_and_wait(topic, b"join", key=f"event_{i}".encode())
        assert await progress.none_unread() is False
        read: dict = {}
        async with asyncio.timeout(20):
            while sum(len(records) for records in read.values()) < 6:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    read.setdefault(tp, []).extend(records)
        assert await progress.none_unread() is False  # read, not yet committed: a crash would read them again
        first = next(iter(read))
        await consumer.commit({first: read[first][-1].offset + 1})
        assert await progress.none_unread() is (len(read) == 1)
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in read.items()})
        assert await progress.none_unread() is True
    finally:
        await producer.stop()
        await consumer.stop()
