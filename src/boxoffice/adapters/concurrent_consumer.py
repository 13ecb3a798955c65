"""A consume loop for handlers that wait on something slow (a payment provider): many messages in flight.

Each message is handled in a task of its own, at most `limit` at once; the loop fetches only as many as it has
room for, so a slow provider holds back the fetching instead of piling up work. Offsets are committed per
partition up to the lowest message not yet finished: a slow message keeps the committed offset before it
while the messages behind it go on, and after a crash everything from it on is delivered again (the handler
replays what was decided). Failures are treated as in `consumer_loop`: transient ones retried for as long
as they last, a message that keeps failing sent to its dead letters, one message at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from boxoffice import metrics
from boxoffice.adapters.consumer_loop import (
    BatchHandler,
    ConsumerStuck,
    Delivery,
    OffsetCommits,
    PartitionGate,
    RetryWatch,
    dead_letters_at_once,
    handle_with_retry,
)
from boxoffice.adapters.dead_letters import DeadLetterSink
from boxoffice.adapters.kafka import RestartedLogs
from boxoffice.logs import REQUEST_ID
from boxoffice.message_schemas import decode_record
from boxoffice.messages import MalformedMessage

log = logging.getLogger(__name__)

# How long the loop waits for a fetch or a finished message before it commits what is finished.
POLL_SECONDS = 0.2


@dataclass(eq=False)
class Ticket:
    """One message taken from a partition; finished once its outcome is durable."""

    tp: TopicPartition
    offset: int
    done: bool = False


class InFlight:
    """The messages taken per partition and which are finished: what may be committed is the position after the
    longest finished run from the oldest one."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, OrderedDict[int, Ticket]] = {}
        self._position: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._last_taken: dict[TopicPartition, int] = {}

    def take(self, tp: TopicPartition, offset: int) -> Ticket:
        """Offsets are taken in order per partition. One not past the last taken means the client reads the
        partition again from further back: it reset its position (a log made anew, as Apache Kafka reports with
        an out-of-range error), so what was taken before no longer counts: those offsets may be another log's."""
        if offset <= self._last_taken.get(tp, -1):
            log.warning("%s is read again from offset %d: the messages taken before are not counted", tp, offset)
            self.forget([tp])
        self._last_taken[tp] = offset
        ticket = Ticket(tp, offset)
        self._open.setdefault(tp, OrderedDict())[offset] = ticket
        return ticket

    def finish(self, ticket: Ticket) -> None:
        ticket.done = True
        tickets = self._open.get(ticket.tp)
        if tickets is None or tickets.get(ticket.offset) is not ticket:
            return  # its partition was given up or rewound meanwhile
        while tickets and next(iter(tickets.values())).done:
            offset, _ = tickets.popitem(last=False)
            self._position[ticket.tp] = offset + 1

    def unfinished(self) -> int:
        """Messages taken and not yet finished: fetched, so the consumer's position is past them, but not done.
        The service's lag counts them, so that it is not 0 while work is still on its way."""
        return sum(1 for tickets in self._open.values() for ticket in tickets.values() if not ticket.done)

    def committable(self) -> dict[TopicPartition, int]:
        """Positions that moved since they were last committed."""
        return {tp: p for tp, p in self._position.items() if self._committed.get(tp) != p}

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        self._committed.update(positions)

    def forget(self, partitions: set[TopicPartition] | list[TopicPartition]) -> None:
        for tp in partitions:
            self._open.pop(tp, None)
            self._position.pop(tp, None)
            self._committed.pop(tp, None)
            self._last_taken.pop(tp, None)


async def consume_concurrently(consumer: AIOKafkaConsumer, handle: BatchHandler, dead_letters: DeadLetterSink,
                               limit: int, gate: PartitionGate | None = None,
                               watch: RetryWatch | None = None, offsets: InFlight | None = None,
                               restarted_logs: RestartedLogs | None = None) -> None:
    """`handle` is called with one message at a time, up to `limit` calls at once; each call must make its
    message's outcome durable before it returns. Handlers that must keep some messages in order (copies of
    one payment) order them themselves."""
    busy = gate.busy if gate is not None else asyncio.Lock()
    watch = watch or RetryWatch()
    commits = OffsetCommits(consumer, watch)
    offsets = offsets or InFlight()
    tasks: set[asyncio.Task[None]] = set()
    broken: list[BaseException] = []
    restarted_logs = restarted_logs or RestartedLogs(consumer)

    async def run(ticket: Ticket, delivery: Delivery) -> None:
        REQUEST_ID.set(delivery.message.request_id)
        await handle_with_retry(handle, [delivery], dead_letters, watch)
        offsets.finish(ticket)  # not on cancellation: then it is delivered again

    def ended(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            broken.append(task.exception())  # type: ignore[arg-type]

    async def commit() -> None:
        assigned = consumer.assignment()
        positions = {tp: p for tp, p in offsets.committable().items() if tp in assigned}
        if positions and await commits.commit(positions):
            offsets.committed(positions)

    async def drain(revoked: set[TopicPartition]) -> None:
        """Partitions are given up once what was taken from them is finished and committed."""
        try:
            if tasks:
                await asyncio.wait(set(tasks))
            await commit()
        finally:
            offsets.forget(revoked)

    if gate is not None:
        gate.drain = drain
    try:
        while True:
            if broken:
                raise ConsumerStuck("a message's handling failed outside the handler") from broken[0]
            offsets.forget(await restarted_logs.rewind())
            room = limit - len(tasks)
            batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            if room > 0:
                batches = await consumer.getmany(timeout_ms=int(POLL_SECONDS * 1000), max_records=room)
            else:  # back-pressure: nothing more is fetched until a message in flight is finished
                await asyncio.wait(set(tasks), timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            # No await between getmany and taking the lock when it is free: a rebalance waits for these records.
            async with busy:
                assigned = consumer.assignment()
                malformed: list[tuple[ConsumerRecord[bytes, bytes], BaseException]] = []
                unreadable: list[Ticket] = []
                for tp, records in batches.items():
                    if tp not in assigned:
                        continue  # given up while this waited for the lock: its next owner handles them
                    metrics.MESSAGES_CONSUMED.inc(tp.topic, by=len(records))
                    for record in records:
                        ticket = offsets.take(tp, record.offset)
                        try:
                            delivery = Delivery(record, decode_record(record.value, record.topic, record.key))
                        except MalformedMessage as exc:
                            malformed.append((record, exc))
                            unreadable.append(ticket)
                            continue
                        task = asyncio.create_task(run(ticket, delivery))
                        tasks.add(task)
                        task.add_done_callback(ended)
                await dead_letters_at_once(dead_letters, malformed, watch)
                for ticket in unreadable:
                    offsets.finish(ticket)
                await commit()
    finally:  # unfinished messages are not committed: they are delivered again
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
