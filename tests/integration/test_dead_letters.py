"""On a real broker: a message that cannot be handled becomes a dead letter in `<topic>.dead`, with why and
by whom, and the consumer moves on; the rest of its batch is still handled, in order. Failures that go away
are retried, not dead-lettered. Listed and replayed as `boxoffice dead-letters` does."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from boxoffice import metrics
from boxoffice.adapters.consumer_loop import RetryWatch, consume_forever
from boxoffice.adapters.dead_letters import (
    CUT_TO_BYTES,
    CutDeadLetter,
    KafkaDeadLetters,
    read_dead_letters,
    replay,
)
from boxoffice.adapters.kafka import ensure_topics, make_group_consumer, start_with_retry
from boxoffice.config import Settings
from boxoffice.messages import Message, dead_topic


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def running(kafka: str, topic: str, handle, dead_letters: KafkaDeadLetters, watch: RetryWatch):
    consumer = make_group_consumer(Settings(kafka_bootstrap=kafka), f"dlq-{uuid.uuid4().hex[:6]}", [topic])
    await start_with_retry(consumer, "consumer")

    async def run() -> None:
        try:
            await consume_forever(consumer, handle, dead_letters, watch=watch)
        finally:
            await consumer.stop()

    return consumer, asyncio.create_task(run())


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0) -> None:
    """Polls until the condition holds (a plain or an async check), failing after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            held = condition()
            if await held if inspect.isawaitable(held) else held:
                return
            await asyncio.sleep(0.05)


async def test_bad_messages_become_dead_letters_and_the_rest_is_handled_in_order(
        kafka: str, producer: AIOKafkaProducer) -> None:
    topic = f"dlq.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, 1, [topic, dead_topic(topic)])
    first, poison, last = (Message(topic, "ev_dlq", {"n": n}) for n in (1, 2, 3))
    garbage, other_type = b"\xff not json", Message("some.other.topic", "ev_dlq", {}).encode()
    for value in (first.encode(), garbage, poison.encode(), other_type, last.encode()):
        await producer.send_and_wait(topic, value, key=b"ev_dlq")
    handled: list[str] = []
    before = metrics.DEAD_LETTERS.values.get((topic,), 0)

    async def handle(batch: list[Message]) -> None:
        if any(m.id == poison.id for m in batch):
            raise ValueError("this message always fails")
        handled.extend(m.id for m in batch)

    watch = RetryWatch()
    consumer, task = await running(kafka, topic, handle, KafkaDeadLetters(producer, "tester"), watch)
    try:
        async def all_dead() -> bool:
            return len(await read_dead_letters(kafka, [topic])) == 3

        await until(all_dead)
        await until(lambda: len(handled) == 2)
        await until(lambda: _committed(consumer, TopicPartition(topic, 0), 5))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert handled == [first.id, last.id]
    letters = {letter.value: letter for letter in await read_dead_letters(kafka, [topic])}
    assert set(letters) == {garbage, poison.encode(), other_type}
    failed = letters[poison.encode()]
    assert (failed.topic, failed.consumer, failed.offset) == (topic, "tester", 2)
    assert failed.error == "ValueError: this message always fails" and failed.key == b"ev_dlq"
    assert "some.other.topic" in letters[other_type].error and letters[garbage].offset == 1
    assert len({letter.id for letter in letters.values()}) == 3
    assert metrics.DEAD_LETTERS.values.get((topic,), 0) == before + 3
    assert watch.retrying_for == 0


async def _committed(consumer, tp: TopicPartition, offset: int) -> bool:
    return await consumer.committed(tp) == offset


async def test_a_failure_that_goes_away_is_retried_and_shown_not_dead_lettered(
        kafka: str, producer: AIOKafkaProducer) -> None:
    topic = f"dlq.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, 1, [topic, dead_topic(topic)])
    message = Message(topic, "ev_dlq", {"n": 1})
    await producer.send_and_wait(topic, message.encode(), key=b"ev_dlq")
    outage = asyncio.Event()
    outage.set()
    handled: list[str] = []

    async def handle(batch: list[Message]) -> None:
        if outage.is_set():
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        handled.extend(m.id for m in batch)

    watch = RetryWatch()
    _, task = await running(kafka, topic, handle, KafkaDeadLetters(producer, "tester"), watch)
    try:
        await until(lambda: watch.retrying_for > 1.0)  # many more tries than the bound
        assert watch.info()["lastError"].startswith("CannotConnectNowError")
        outage.clear()
        await until(lambda: handled == [message.id])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watch.info() == {"retryingForSeconds": 0.0}
    assert await read_dead_letters(kafka, [topic]) == []


async def test_a_replayed_dead_letter_is_handled_as_new(kafka: str, producer: AIOKafkaProducer) -> None:
    topic = f"dlq.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, 1, [topic, dead_topic(topic)])
    message = Message(topic, "ev_dlq", {"n": 1})
    await producer.send_and_wait(topic, message.encode(), key=b"ev_dlq")
    broken = asyncio.Event()
    broken.set()
    handled: list[str] = []

    async def handle(batch: list[Message]) -> None:
        if broken.is_set():
            raise KeyError("bookingId")
        handled.extend(m.id for m in batch)

    _, task = await running(kafka, topic, handle, KafkaDeadLetters(producer, "tester"), RetryWatch())
    try:
        async def dead() -> bool:
            return len(await read_dead_letters(kafka, [topic])) == 1

        await until(dead)
        broken.clear()  # the handler is fixed; the operator puts the message back
        [letter] = await read_dead_letters(kafka, [topic])
        await replay(kafka, letter)
        await until(lambda: handled == [message.id])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(await read_dead_letters(kafka, [topic])) == 1  # kept: a dead letter is a record


async def test_a_message_too_big_to_write_again_is_kept_cut_down_and_the_consumer_moves_on(
        kafka: str, producer: AIOKafkaProducer) -> None:
    """Over the dead-letter producer's 1 MiB request limit: written whole it would be refused at every try and
    stall the partition (and with it the consumer)."""
    topic = f"dlq.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, 1, [topic, dead_topic(topic)])
    huge = b'{"id": "' + b"r" * (2 * 1024 * 1024) + b'"'  # not a message: never decodes
    after = Message(topic, "ev_dlq", {"n": 2})
    big_sender = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", max_request_size=8 * 1024 * 1024)
    await big_sender.start()
    try:
        await big_sender.send_and_wait(topic, huge, key=b"ev_dlq")
        await big_sender.send_and_wait(topic, after.encode(), key=b"ev_dlq")
    finally:
        await big_sender.stop()
    handled: list[str] = []

    async def handle(batch: list[Message]) -> None:
        handled.extend(m.id for m in batch)

    watch = RetryWatch()
    consumer, task = await running(kafka, topic, handle, KafkaDeadLetters(producer, "tester"), watch)
    try:
        await until(lambda: handled == [after.id])
        await until(lambda: _committed(consumer, TopicPartition(topic, 0), 2))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [letter] = await read_dead_letters(kafka, [topic])
    assert (letter.cut, letter.original_bytes, letter.offset) == (True, len(huge) + len(b"ev_dlq"), 0)
    assert letter.value == huge[:CUT_TO_BYTES] and letter.key == b"ev_dlq" and letter.consumer == "tester"
    with pytest.raises(CutDeadLetter, match=f"the whole message is at {topic} partition 0 offset 0"):
        await replay(kafka, letter)
