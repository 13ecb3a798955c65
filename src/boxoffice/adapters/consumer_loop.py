"""The consume → handle → commit loop shared by every Kafka-driven service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
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


# Keys that refuse a second decision of one request: hitting one means another process decided it first.
DECIDED_ELSEWHERE = frozenset({"booking_requests_pkey", "bookings_request_id_key"})

# How long a rebalance waits for the batch in hand; a handler stuck longer (say, on a database outage)
# loses its partitions anyway, and what it still decides is refused or replayed by the stores.
REVOKE_WAIT_SECONDS = 10.0


class ConsumerStuck(Exception):
    pass


class PartitionGate(ConsumerRebalanceListener):
    """Partitions change hands only between batches. When the group rebalances (a process of the same
    group starts or stops), giving up partitions waits until the batch in hand is handled and its offsets
    committed: the next owner starts right after the last decided message instead of deciding the same
    messages alongside this process (which the stores would refuse, but only by rolling back)."""

    def __init__(self, wait_limit: float = REVOKE_WAIT_SECONDS) -> None:
        self.busy = asyncio.Lock()
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.rebalances = 0
        self._wait_limit = wait_limit

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            async with asyncio.timeout(self._wait_limit):
                async with self.busy:
                    pass
        except TimeoutError:
            log.warning("a batch is still being handled after %.0f s; its partitions are given up anyway",
                        self._wait_limit)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = frozenset(assigned)
        self.rebalances += 1
        log.info("assigned %d partitions (rebalance %d)", len(assigned), self.rebalances)


async def consume_forever(consumer: AIOKafkaConsumer, handle: BatchHandler, max_records: int = 500,
                          gate: PartitionGate | None = None) -> None:
    """Offsets are committed only after the handler has made the batch's outcome durable; with the gate
    the consumer was subscribed with, partitions are not given up while a batch is in hand."""
    busy = gate.busy if gate is not None else asyncio.Lock()
    failed_commits = 0
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        if not batches:
            continue
        # No await between getmany and taking the lock: a rebalance that starts now waits for this batch.
        async with busy:
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
                await asyncio.wait_for(
                    consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()}),
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
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name not in DECIDED_ELSEWHERE:
                log.exception("handler failed; retrying in %.2f s", delay)
            else:  # expected when a partition changed hands under a batch: the retry replays those outcomes
                log.warning("part of the batch was decided meanwhile by another process (%s); retrying",
                            exc.constraint_name)
        except Exception:
            log.exception("handler failed; retrying in %.2f s", delay)
        metrics.HANDLER_RETRIES.inc()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
