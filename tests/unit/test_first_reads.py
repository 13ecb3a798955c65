"""After an assignment (a start, a rebalance), the first batch waits for the partitions its fetch left out: a
partition whose position was still being looked up. Found from outside: after an outage of the booking service,
the hold and the event's cancel were read in the first fetch and a buyer's cancel, asked before the event's,
in the next; the event's cancel took the booking first."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from boxoffice.adapters.consumer_loop import consume_forever, first_reads
from boxoffice.adapters.kafka import RestartedLogs
from boxoffice.messages import Message, iso, utc_now
from tests.dead_letters import KeptDeadLetters

HOLDS = TopicPartition("probe.holds", 0)  # topics without a schema: any data is well formed
CANCELS = TopicPartition("probe.cancels", 0)
EVENT_CANCELS = TopicPartition("probe.event-cancels", 0)


def _record(tp: TopicPartition, offset: int, asked: str) -> Any:
    value = Message(tp.topic, "evt", {"asked": asked}, occurred_at=asked).encode()
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, key=b"evt", value=value, headers=())


class Backlog:
    """An outage's backlog on three topics; the first fetch brings two of them, the position of the third being
    looked up still (its highwater unknown until it is fetched)."""

    def __init__(self, first_fetch: set[TopicPartition]) -> None:
        base = utc_now()
        self.waiting = {
            HOLDS: [_record(HOLDS, 0, iso(base.replace(second=1)))],
            CANCELS: [_record(CANCELS, 0, iso(base.replace(second=2)))],
            EVENT_CANCELS: [_record(EVENT_CANCELS, 0, iso(base.replace(second=3)))],
        }
        self.fetched: set[TopicPartition] = set()
        self.first_fetch = first_fetch
        self.commits: list[dict[TopicPartition, int]] = []
        self.asked_for: list[tuple[TopicPartition, ...]] = []

    def assignment(self) -> set[TopicPartition]:
        return {HOLDS, CANCELS, EVENT_CANCELS}

    def highwater(self, tp: TopicPartition) -> int | None:
        return 1 if tp in self.fetched else None

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int,
                      max_records: int) -> dict[TopicPartition, Any]:
        self.asked_for.append(partitions)
        wanted = set(partitions) or self.assignment()
        reached = (self.first_fetch if not self.fetched else self.assignment()) & wanted
        got = {tp: self.waiting.pop(tp) for tp in sorted(reached) if tp in self.waiting}
        self.fetched |= reached
        if not got:
            await asyncio.sleep(timeout_ms / 1000)
        return got

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def test_the_first_batch_after_an_assignment_holds_every_partitions_backlog() -> None:
    consumer = Backlog(first_fetch={HOLDS, EVENT_CANCELS})
    batches: list[list[str]] = []

    async def handle(batch: list[Message]) -> None:
        batches.append([m.type for m in batch])

    running = asyncio.ensure_future(consume_forever(consumer, handle, KeptDeadLetters(),  # type: ignore[arg-type]
                                                    restarted_logs=RestartedLogs(consumer)))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(5):
            while not batches:
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
    assert [sorted(b) for b in batches] == [sorted(tp.topic for tp in (HOLDS, CANCELS, EVENT_CANCELS))]
    assert consumer.asked_for[1] == (CANCELS,)  # only the partition not read yet is asked for again
    assert consumer.commits == [{HOLDS: 1, CANCELS: 1, EVENT_CANCELS: 1}]


async def test_the_wait_for_partitions_not_read_is_bounded() -> None:
    consumer = Backlog(first_fetch={HOLDS})
    consumer.highwater = lambda tp: 1 if tp == HOLDS else None  # type: ignore[method-assign]  # never fetched
    consumer.waiting = {HOLDS: []}
    first = {HOLDS: [_record(HOLDS, 0, iso(utc_now()))]}
    async with asyncio.timeout(2):
        batches = await first_reads(consumer, first, 500, seconds=0.3)  # type: ignore[arg-type]
    assert list(batches) == [HOLDS] and len(batches[HOLDS]) == 1
