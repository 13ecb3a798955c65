"""The consume → handle → commit loop shared by every Kafka-driven service.

A failure that goes away by itself (the database or the broker unavailable) is retried with back-off for
as long as it lasts, and the consumer says so in its heartbeat. A failure that does not (bytes that do not
decode, data of the wrong shape, a handler's own exception on one message) is narrowed down to its message,
which goes to `<topic>.dead` after a bounded number of tries; the rest of the batch is still decided, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from boxoffice import metrics
from boxoffice.adapters.dead_letters import DeadLetterSink
from boxoffice.adapters.kafka import RestartedLogs
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.logs import REQUEST_ID, Outage
from boxoffice.message_schemas import decode_record
from boxoffice.messages import MalformedMessage, Message

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], Awaitable[None]]

# Commits that keep failing mean the broker lost the group (the embedded broker forgets everything when it
# restarts): the process exits, the supervisor starts it again, and the new consumer joins afresh.
MAX_FAILED_COMMITS = 30
COMMIT_TIMEOUT_SECONDS = 10.0  # the client retries some commit errors forever on its own

# A handler's own exception on the same message this many times in a row makes it a dead letter.
MAX_ATTEMPTS = 3

# Keys that refuse a second decision of one request: hitting one means another process decided it first.
DECIDED_ELSEWHERE = frozenset({"booking_requests_pkey", "bookings_request_id_key"})

# How long a rebalance waits for the batch in hand; a handler stuck longer (say, on a database outage)
# loses its partitions anyway, and what it still decides is refused or replayed by the stores.
REVOKE_WAIT_SECONDS = 10.0
# After an assignment, how long the first batch waits for the partitions not read yet (one fetch, as a rule).
FIRST_READ_SECONDS = 1.0

TRANSIENT = (*TRANSIENT_ERRORS, KafkaError)


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
        # A loop with messages in flight outside `busy` finishes and commits them here (concurrent_consumer.py).
        self.drain: Callable[[set[TopicPartition]], Awaitable[None]] | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            async with asyncio.timeout(self._wait_limit):
                async with self.busy:
                    if self.drain is not None:
                        await self.drain(revoked)
        except TimeoutError:
            log.warning("a batch is still being handled after %.0f s; its partitions are given up anyway",
                        self._wait_limit)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = frozenset(assigned)
        self.rebalances += 1
        log.info("assigned %d partitions (rebalance %d)", len(assigned), self.rebalances)


class RetryWatch:
    """Since when the consumer has retried without getting past its batch: shown in the heartbeat, so that
    a consumer stuck on one offset (a database outage, say) reads as degraded instead of healthy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None
        self.last_error: str | None = None

    def failed(self, error: BaseException) -> None:
        if self._since is None:
            self._since = self._clock()
        self.last_error = repr(error)[:300]

    def moved_on(self) -> None:
        self._since, self.last_error = None, None

    @property
    def retrying_for(self) -> float:
        return 0.0 if self._since is None else self._clock() - self._since

    def info(self) -> dict[str, object]:
        return {"retryingForSeconds": round(self.retrying_for, 1),
                **({"lastError": self.last_error} if self.last_error else {})}


@dataclass
class Delivery:
    """A consumed record and its decoded message."""

    record: ConsumerRecord[bytes, bytes]
    message: Message


async def consume_forever(consumer: AIOKafkaConsumer, handle: BatchHandler, dead_letters: DeadLetterSink,
                          max_records: int = 500, gate: PartitionGate | None = None,
                          watch: RetryWatch | None = None, restarted_logs: RestartedLogs | None = None) -> None:
    """Offsets are committed only after the handler has made the batch's outcome durable (and its dead
    letters are in Kafka); with the gate the consumer was subscribed with, partitions are not given up
    while a batch is in hand."""
    busy = gate.busy if gate is not None else asyncio.Lock()
    watch = watch or RetryWatch()
    commits = OffsetCommits(consumer, watch)
    restarted_logs = restarted_logs or RestartedLogs(consumer)
    read_since_assigned: set[TopicPartition] = set()
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        # A rewound partition is read again from its start: the batch in hand is still handled, but its offset
        # is not committed past messages that the rewind is there to read.
        rewound = set(await restarted_logs.rewind())
        if not batches:
            continue
        assigned = consumer.assignment()
        first = assigned != read_since_assigned
        if first:
            read_since_assigned = assigned
            batches = await first_reads(consumer, batches, max_records)
        # Otherwise no await between getmany and taking the lock: a rebalance that starts now waits for this batch.
        async with busy:
            if first:  # what a rebalance during the first reads gave up is its next owner's
                assigned = consumer.assignment()
                batches = {tp: records for tp, records in batches.items() if tp in assigned}
            deliveries: list[Delivery] = []
            malformed: list[tuple[ConsumerRecord[bytes, bytes], BaseException]] = []
            for tp, records in batches.items():
                metrics.MESSAGES_CONSUMED.inc(tp.topic, by=len(records))
                for record in records:
                    try:
                        deliveries.append(Delivery(record, decode_record(record.value, record.topic, record.key)))
                    except MalformedMessage as exc:
                        malformed.append((record, exc))
            await dead_letters_at_once(dead_letters, malformed, watch)
            # A batch of one is one request: its id goes on what is logged about it (handlers of larger
            # batches set it per message).
            REQUEST_ID.set(deliveries[0].message.request_id if len(deliveries) == 1 else None)
            await handle_with_retry(handle, deliveries, dead_letters, watch)
            if await commits.commit({tp: records[-1].offset + 1 for tp, records in batches.items()
                                     if tp not in rewound}):
                watch.moved_on()


async def first_reads(consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
                      max_records: int, seconds: float = FIRST_READ_SECONDS,
                      ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """The first batch after an assignment, with what the partitions not read yet hold (a partition whose position
    is still being looked up is left out of the first fetch): what waited in several topics during an outage is
    then handled as one batch, in the order it was asked for, not a topic's backlog ahead of another's."""
    deadline = time.monotonic() + seconds
    count = sum(len(records) for records in batches.values())
    while count < max_records and (left := deadline - time.monotonic()) > 0:
        unread = [tp for tp in consumer.assignment() if consumer.highwater(tp) is None]
        if not unread:
            break
        more = await consumer.getmany(*unread, timeout_ms=max(1, int(min(left, 0.1) * 1000)),
                                      max_records=max_records - count)
        for tp, records in more.items():
            batches.setdefault(tp, []).extend(records)
            count += len(records)
    return batches


class OffsetCommits:
    """Commits offsets with a bound on time, and gives up on a group that keeps refusing them."""

    def __init__(self, consumer: AIOKafkaConsumer, watch: RetryWatch) -> None:
        self._consumer, self._watch = consumer, watch
        self._failed = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """True once committed; False when the commit failed and what it covered will be redelivered."""
        if not offsets:  # every partition of the batch was rewound (the client refuses an empty commit)
            return True
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_SECONDS):
                await self._consumer.commit(offsets)
        except TimeoutError as exc:
            raise ConsumerStuck(f"an offset commit did not finish in {COMMIT_TIMEOUT_SECONDS:.0f} s") from exc
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved or the broker blinked: the messages are redelivered and handled idempotently.
            self._failed += 1
            self._watch.failed(exc)
            log.warning("offset commit failed (%s); the messages will be redelivered", exc)
            if self._failed >= MAX_FAILED_COMMITS:
                raise ConsumerStuck(f"{self._failed} offset commits failed in a row") from exc
            return False
        self._failed = 0
        return True


async def handle_with_retry(handle: BatchHandler, deliveries: list[Delivery], dead_letters: DeadLetterSink,
                            watch: RetryWatch | None = None, attempts: int = MAX_ATTEMPTS) -> None:
    """Handles the batch, retrying transient failures for as long as they last. When the handler itself
    keeps failing, the messages are handled one at a time, in order, so that only the one that fails goes
    to the dead letters."""
    watch = watch or RetryWatch()
    if not deliveries:
        return
    error = await _attempt(handle, deliveries, watch, attempts)
    if error is None:
        return
    if len(deliveries) > 1:
        log.warning("a batch of %d messages keeps failing; handling them one at a time", len(deliveries))
        for delivery in deliveries:
            await handle_with_retry(handle, [delivery], dead_letters, watch, attempts)
        return
    await dead_letter(dead_letters, deliveries[0].record, error, watch)


async def _attempt(handle: BatchHandler, deliveries: list[Delivery], watch: RetryWatch,
                   attempts: int) -> Exception | None:
    """None once handled; the last error after `attempts` failures that were not transient."""
    delay, failures = 0.05, 0
    error: Exception | None = None
    outage = Outage(log, "handling a batch")  # one line when it starts, one when it ends
    messages = [d.message for d in deliveries]
    while True:
        try:
            await handle(messages)
            outage.recovered()
            watch.moved_on()
            return None
        except TRANSIENT as exc:
            outage.failed(exc)
            watch.failed(exc)
        except Exception as exc:
            failures, error = failures + 1, exc
            watch.failed(exc)
            if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name in DECIDED_ELSEWHERE:
                # Expected when a partition changed hands under a batch: the retry replays those outcomes. A key
                # that refuses the batch at every try is not another process's doing but a message's (say, one
                # that reuses the request id of a booking made otherwise), so these count as failures too.
                log.warning("part of the batch was decided meanwhile by another process (%s); retrying",
                            exc.constraint_name)
            elif failures == 1:
                log.exception("handler failed on a batch of %d (attempt 1 of %d)", len(messages), attempts)
        if failures >= attempts:
            return error
        metrics.HANDLER_RETRIES.inc()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def dead_letters_at_once(dead_letters: DeadLetterSink,
                               malformed: list[tuple[ConsumerRecord[bytes, bytes], BaseException]],
                               watch: RetryWatch) -> None:
    """The dead letters of a batch, written together: one after another, a flood of bad messages cost a round trip
    to the broker each (2-5 ms) and held up the good ones behind them. Any the broker refuses are then written
    one at a time, retried while it is away."""
    sent = await asyncio.gather(*(dead_letters.send(record, error) for record, error in malformed),
                                return_exceptions=True)
    for (record, error), outcome in zip(malformed, sent, strict=True):
        if isinstance(outcome, KafkaError):
            await dead_letter(dead_letters, record, error, watch)
        elif isinstance(outcome, BaseException):
            raise outcome
    if malformed:
        watch.moved_on()


async def dead_letter(dead_letters: DeadLetterSink, record: ConsumerRecord[bytes, bytes], error: BaseException,
                       watch: RetryWatch) -> None:
    """A dead letter must be in Kafka before the offset moves past its message: retried while the broker is away."""
    delay = 0.05
    outage = Outage(log, f"writing a dead letter of {record.topic}[{record.partition}] offset {record.offset}")
    while True:
        try:
            await dead_letters.send(record, error)
            outage.recovered()
            watch.moved_on()
            return
        except KafkaError as exc:
            outage.failed(exc)
            watch.failed(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
