"""The consume → handle → commit loop shared by every Kafka-driven service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from boxoffice import metrics
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import MalformedMessage, Message, decode

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], Awaitable[None]]

# Commits that keep failing mean the broker lost the group (the embedded broker forgets everything when it
# restarts): the process exits, the supervisor starts it again, and the new consumer joins afresh.
MAX_FAILED_COMMITS = 30
COMMIT_TIMEOUT_SECONDS = 10.0  # the client retries some commit errors forever on its own


class ConsumerStuck(Exception):
    pass


async def consume_forever(consumer: AIOKafkaConsumer, handle: BatchHandler, max_records: int = 500) -> None:
    """Offsets are committed only after the handler has made the batch's outcome durable."""
    failed_commits = 0
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        if not batches:
            continue
        batch: list[Message] = []
        for tp, records in batches.items():
            metrics.MESSAGES_CONSUMED.inc(tp.topic, by=len(records))
            for record in records:
                try:
                    batch.append(decode(record.value))
                except MalformedMessage as exc:
                    log.error("skipping malformed message at %s offset %d: %s", tp, record.offset, exc)
        # A batch of one is one request: its id goes on what is logged about it (handlers of larger
        # batches set it per message).
        REQUEST_ID.set(batch[0].request_id if len(batch) == 1 else None)
        await handle_with_retry(handle, batch)
        try:
            await asyncio.wait_for(consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()}),
                                   COMMIT_TIMEOUT_SECONDS)
            failed_commits = 0
        except TimeoutError as exc:
            raise ConsumerStuck(f"an offset commit did not finish in {COMMIT_TIMEOUT_SECONDS:.0f} s") from exc
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved or the broker blinked: the batch is redelivered and handled idempotently.
            failed_commits += 1
            log.warning("offset commit failed (%s); the batch will be redelivered", exc)
            if failed_commits >= MAX_FAILED_COMMITS:
                raise ConsumerStuck(f"{failed_commits} offset commits failed in a row") from exc


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
        metrics.HANDLER_RETRIES.inc()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
