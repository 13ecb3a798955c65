"""The chaos bench's dead-letter checks against dead letters in the documented format (CONTRACT §8.4: the
original bytes and key in `<topic>.dead`, with boxoffice-* headers), on a broker of its own."""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from boxoffice import messages as topics
from boxoffice.adapters.embedded import broker_command, free_port, wait_for_port
from boxoffice.bench.chaos import Journal, dead_letter_checks
from boxoffice.bench.faults import Poison, poison_messages, read_dead_letters
from boxoffice.messages import Message

EVENT = "bench_deadletters"


@pytest.fixture
def broker() -> Iterator[str]:
    """Its own broker: another test's dead letters would be counted as ours."""
    port = free_port()
    process = subprocess.Popen(broker_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def headers(topic: str, consumer: str, offset: int) -> list[tuple[str, bytes]]:
    return [("boxoffice-error", b"ValueError: bad"), ("boxoffice-consumer", consumer.encode()),
            ("boxoffice-dead-letter-id", str(uuid.uuid4()).encode()), ("boxoffice-topic", topic.encode()),
            ("boxoffice-partition", b"0"), ("boxoffice-offset", str(offset).encode()),
            ("boxoffice-dead-at", b"2026-12-01T00:00:00.000Z")]


def test_every_kind_of_poison_is_unique_and_on_a_request_topic() -> None:
    made = poison_messages(EVENT, ["A1", "A2"], random.Random(1))
    assert len({value for _, _, value in made}) == len(made) == 11
    assert {topic for topic, _, _ in made} == {
        topics.SEAT_RESERVATION_REQUESTED, topics.BOOKING_CONFIRMATION_REQUESTED,
        topics.BOOKING_CANCELLATION_REQUESTED, topics.PAYMENT_REQUESTED}


async def test_dead_letters_are_read_back_and_matched_by_bytes(broker: str) -> None:
    assert await read_dead_letters(broker) is None  # no *.dead topic: the checks are skipped
    journal = Journal()
    journal.poison = [Poison(topic, what, EVENT.encode(), value, 1.0, 0)
                      for topic, what, value in poison_messages(EVENT, ["A1"], random.Random(2))]
    consumer = {topics.PAYMENT_REQUESTED: "payment"}
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        # Every poison but the first is dead-lettered by its consumer; the second lacks its headers (so it is
        # not known to come from its consumer either).
        for n, p in enumerate(journal.poison[1:]):
            found = headers(p.topic, consumer.get(p.topic, "booking"), n)
            await producer.send_and_wait(f"{p.topic}.dead", p.value, key=p.key, headers=[] if n == 0 else found)
        # A good message dead-lettered.
        good = Message(topics.SEAT_RESERVATION_REQUESTED, EVENT, {"seatIds": ["A2"], "userId": "u"}, "r1")
        await producer.send_and_wait(f"{topics.SEAT_RESERVATION_REQUESTED}.dead", good.encode(), key=good.key,
                                     headers=headers(topics.SEAT_RESERVATION_REQUESTED, "booking", 99))
    finally:
        await producer.stop()

    letters = await read_dead_letters(broker)
    assert letters is not None and len(letters) == len(journal.poison)
    journal.dead_letters, journal.dead_topics_seen = letters, True
    results, stats = dead_letter_checks(journal)
    assert list(results.values()) == [1, 2, 1], results
    assert stats["dead letters read"] == len(journal.poison)

    # Poison sent before a broker restart that was not dead-lettered is counted apart, not as missing.
    journal.broker_epoch = 1
    results, stats = dead_letter_checks(journal)
    assert list(results.values()) == [1, 0, 1], results
    assert stats["injected, lost with a broker restart before a dead letter was read"] == 2


def test_without_a_dead_letter_topic_the_checks_are_skipped_with_a_note() -> None:
    journal = Journal()
    results, _ = dead_letter_checks(journal)
    assert set(results.values()) == {-1}
    assert any("no *.dead topic" in note for note in journal.notes)
