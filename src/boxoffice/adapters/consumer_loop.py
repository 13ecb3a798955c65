"""The consume → handle → commit loop shared by every Kafka-driven service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.messages import MalformedMessage, Message, decode

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], Awaitable[None]]


async def consume_forever(consumer: AIOKafkaConsumer, handle: BatchHandler, max_records: int = 500) -> None:
    """Offsets are committed only after the handler has made the batch's outcome durable."""
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        if not batches:
            continue
        batch: list[Message] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    batch.append(decode(record.value))
                except MalformedMessage as exc:
                    log.error("skipping malformed message at %s offset %d: %s", tp, record.offset, exc)
        await handle_with_retry(handle, batch)
        try:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved or the broker blinked: the batch is redelivered and handled idempotently.
            log.warning("offset commit failed (%s); the batch will be redelivered", exc)


async def handle_with_retry(handle: BatchHandler, batch: list[Message]) -> None:
    delay = 0.05
    while True:
        try:
            await handle(batch)
            return
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure (%r); retrying in %.2f s", exc, delay)
        except Exception:
            log.exception("handler failed; retrying in %.2f s", delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
