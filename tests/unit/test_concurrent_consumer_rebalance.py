"""A rebalance that comes between a fetch and the loop taking its records: the group resets the positions to the
last commit, which may be behind those records. Taken anyway, they finish first and their offsets are committed
past messages still being handled, which a crash then loses. The consumer here is a stand-in for aiokafka's that
plays that order of events; the loop is the real one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from boxoffice.adapters.concurrent_consumer import InFlight, consume_concurrently
from boxoffice.adapters.consumer_loop import PartitionGate
from boxoffice.messages import Message
from tests.dead_letters import KeptDeadLetters

TOPIC = "probe.rebalance"
P0 = TopicPartition(TOPIC, 0)
EVENT = "evt-rebalance"


def _record(offset: int) -> Any:
    value = Message(TOPIC, EVENT, {"n": offset}).encode()
    return SimpleNamespace(topic=TOPIC, partition=0, offset=offset, key=EVENT.encode(), value=value, headers=())


class RebalancingConsumer:
    """Offsets 0–9 come first; the next fetch returns 10–13 while a rebalance starts behind it. The rebalance's
    commit fails (the group is rejoining), so the positions go back to the last commit: 0, and the first fetch
    after it returns nothing, as aiokafka's does while it asks for the committed offsets."""

    def __init__(self, gate: PartitionGate) -> None:
        self.gate = gate
        self.position = 0
        self.committed: list[tuple[int, frozenset[int]]] = []  # each commit, and what was unfinished then
        self.unfinished: set[int] = set()
        self.rebalanced = asyncio.Event()
        self.rebalancing: asyncio.Task[None] | None = None
        self._rejoining = False
        self._finding_positions = False
        self.fetches = 0

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    def highwater(self, tp: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if self.fetches == 2:
            self.rebalancing = asyncio.create_task(self._rebalance())
            await asyncio.sleep(0)  # the rebalance takes the loop's lock first, to wait for what is in flight
        if self.position >= 14 or self._finding_positions:
            self._finding_positions = False  # the first fetch after a rebalance waits for the committed offsets
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        end = min(14 if self.fetches > 1 else 10, self.position + max_records)
        records = [_record(n) for n in range(self.position, end)]
        self.unfinished |= {r.offset for r in records}
        self.position = end
        return {P0: records}

    async def _rebalance(self) -> None:
        self._rejoining = True
        await self.gate.on_partitions_revoked({P0})  # gives up waiting for 0–9 after the gate's limit
        self.position = 0  # the new assignment starts from the last commit
        self._finding_positions = True
        self._rejoining = False
        await self.gate.on_partitions_assigned({P0})
        self.rebalanced.set()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self._rejoining:
            raise CommitFailedError("the group is rebalancing")
        self.committed.append((offsets[P0], frozenset(self.unfinished)))


async def test_records_fetched_before_a_rebalance_are_not_committed_past_unfinished_messages() -> None:
    gate = PartitionGate(wait_limit=0.2)
    consumer = RebalancingConsumer(gate)
    release = asyncio.Event()

    async def handle(batch: list[Message]) -> None:
        offset = batch[0].data["n"]
        if offset < 10:
            await release.wait()  # slow: a provider or mail server that takes its time
        consumer.unfinished.discard(offset)

    loop = asyncio.create_task(consume_concurrently(
        consumer, handle, KeptDeadLetters(), limit=64, gate=gate, offsets=InFlight()))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            await consumer.rebalanced.wait()
            after_rebalance = consumer.fetches
            while consumer.fetches < after_rebalance + 3:  # each turn of the loop ends with a commit
                await asyncio.sleep(0.01)
            release.set()
            while not any(offset == 14 for offset, _ in consumer.committed):
                await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    past = [(offset, sorted(unfinished)) for offset, unfinished in consumer.committed
            if unfinished and offset > min(unfinished)]
    assert past == [], f"committed past messages not yet handled: {past}"
    assert not consumer.unfinished
