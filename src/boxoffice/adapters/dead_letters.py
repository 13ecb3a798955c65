"""Dead letters: messages a consumer could not handle, kept in `<topic>.dead` with why and by whom.

The original bytes and key are kept as they came; headers say which consumer gave up, on what error,
where the message was (topic, partition, offset) and when. `boxoffice dead-letters` lists them and
`--replay ID` puts one back on its topic (CONTRACT §8.4).

A message too big to be written again (over the producer's or the broker's limit) is kept cut down to its
first `CUT_TO_BYTES` (and its key to `CUT_KEY_TO_BYTES`), with its size in a header: retrying the whole of it
would never succeed and would stall the consumer. The whole message stays where the headers say, for as long
as the broker keeps it; a cut dead letter is not replayed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.structs import ConsumerRecord

from boxoffice import metrics
from boxoffice.messages import ALL_TOPICS, DEAD_LETTER_SUFFIX, dead_topic, iso, utc_now

log = logging.getLogger(__name__)

ERROR, CONSUMER, ID = "boxoffice-error", "boxoffice-consumer", "boxoffice-dead-letter-id"
TOPIC, PARTITION, OFFSET, DEAD_AT = "boxoffice-topic", "boxoffice-partition", "boxoffice-offset", "boxoffice-dead-at"
REPLAYED_FROM = "boxoffice-replayed-from"
ORIGINAL_BYTES = "boxoffice-original-bytes"  # only on a cut dead letter: the message's size (value and key)
MAX_ERROR_LENGTH = 1000
CUT_TO_BYTES = 64 * 1024
CUT_KEY_TO_BYTES = 1024
# Refusals of a message for its size, by the producer before sending or by the broker.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


class CutDeadLetter(Exception):
    """A dead letter kept cut down: its whole message cannot be put back."""


class DeadLetterSink(Protocol):
    async def send(self, record: ConsumerRecord[bytes, bytes], error: BaseException) -> None: ...


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_LENGTH else text[:MAX_ERROR_LENGTH - 1] + "…"


class KafkaDeadLetters:
    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self._producer, self._consumer = producer, consumer
        self.sent = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        letter_id = str(uuid.uuid4())
        headers = [(ERROR, describe(error).encode()), (CONSUMER, self._consumer.encode()), (ID, letter_id.encode()),
                   (TOPIC, record.topic.encode()), (PARTITION, str(record.partition).encode()),
                   (OFFSET, str(record.offset).encode()), (DEAD_AT, iso(utc_now()).encode())]
        value, key = record.value or b"", record.key
        try:
            await self._producer.send_and_wait(dead_topic(record.topic), value, key=key, headers=headers)
        except TOO_LARGE:
            size = len(value) + len(key or b"")
            log.warning("%s[%d] offset %d is too big to keep whole as a dead letter (%d bytes): kept cut to its "
                        "first %d", record.topic, record.partition, record.offset, size, CUT_TO_BYTES)
            await self._producer.send_and_wait(
                dead_topic(record.topic), value[:CUT_TO_BYTES], key=None if key is None else key[:CUT_KEY_TO_BYTES],
                headers=[*headers, (ORIGINAL_BYTES, str(size).encode())])
        self.sent += 1
        metrics.DEAD_LETTERS.inc(record.topic)
        log.error("%s[%d] offset %d is a dead letter (%s): %s", record.topic, record.partition, record.offset,
                  letter_id, describe(error))


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as listed: where its message was (topic, partition, offset), who gave up and why."""

    id: str
    topic: str
    consumer: str
    error: str
    dead_at: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    original_bytes: int | None = None  # a cut dead letter's whole size; None: kept whole

    @property
    def cut(self) -> bool:
        return self.original_bytes is not None


async def read_dead_letters(bootstrap: str, topics: list[str] | None = None, *,
                            security: Mapping[str, Any] | None = None) -> list[DeadLetter]:
    """Every dead letter of the given original topics (all by default), oldest first per topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                **(security or {}))
    try:
        await consumer.start()
        existing = await consumer.topics()
        wanted = [dead_topic(t) for t in (topics or ALL_TOPICS) if dead_topic(t) in existing]
        partitions = [TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                letters += [_letter(r) for r in records]
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return sorted(letters, key=lambda letter: (letter.dead_at, letter.topic, letter.offset))
    finally:
        await consumer.stop()


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = {name: value.decode(errors="replace") for name, value in record.headers}
    return DeadLetter(headers.get(ID, f"{record.topic}:{record.partition}:{record.offset}"),
                      headers.get(TOPIC, record.topic.removesuffix(DEAD_LETTER_SUFFIX)), headers.get(CONSUMER, "?"),
                      headers.get(ERROR, ""), headers.get(DEAD_AT, ""), _number(headers.get(PARTITION)),
                      _number(headers.get(OFFSET)), record.key, record.value or b"",
                      _number(headers[ORIGINAL_BYTES]) if ORIGINAL_BYTES in headers else None)


def _number(text: str | None) -> int:
    return int(text) if text and text.isdigit() else -1


async def replay(bootstrap: str, letter: DeadLetter, *, security: Mapping[str, Any] | None = None) -> None:
    """Puts the original message back on its topic, with its key: the consumer takes it as new."""
    if letter.cut:
        raise CutDeadLetter(f"dead letter {letter.id} was kept cut to {len(letter.value)} of its "
                            f"{letter.original_bytes} bytes; the whole message is at {letter.topic} partition "
                            f"{letter.partition} offset {letter.offset} while the broker keeps it")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(security or {}))
    try:  # stopped also when it never started: an unreachable broker leaves no client unclosed
        await producer.start()
        await producer.send_and_wait(letter.topic, letter.value, key=letter.key,
                                     headers=[(REPLAYED_FROM, letter.id.encode())])
    finally:
        await producer.stop()
