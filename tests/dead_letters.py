"""Consumed records for driving the consumer loop's retry directly, and a dead-letter sink that keeps them."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from boxoffice.adapters.consumer_loop import Delivery
from boxoffice.messages import Message


def record(topic: str, value: bytes, key: bytes = b"event", offset: int = 0,
           partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key), len(value), [])


def deliveries(messages: list[Message]) -> list[Delivery]:
    return [Delivery(record(m.type, m.encode(), m.key, offset), m) for offset, m in enumerate(messages)]


class KeptDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[ConsumerRecord[bytes, bytes], BaseException]] = []

    async def send(self, record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        self.letters.append((record, error))
