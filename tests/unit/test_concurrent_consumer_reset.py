"""A partition's log made anew under the concurrent loop (a topic deleted and made again: Apache Kafka answers the
old position out of range and the client starts again from the earliest offset). Messages of the old log are
still in flight; once they finish, their offsets must not be committed for the new log, past its messages not yet
handled, which a crash would then skip. The consumer here is a stand-in for aiokafka's that plays that order of
events; the loop is the real one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from boxoffice.adapters.concurrent_consumer import InFlight, consume_concurrently
from boxoffice.messages import Message
from tests.dead_letters import KeptDeadLetters

TOPIC = "probe.reset"
P0 = TopicPartition(TOPIC, 0)
EVENT = "evt-reset"


def _record(log: str, offset: int) -> Any:
    value = Message(TOPIC, EVENT, {"log": log, "n": offset}).encode()
    return SimpleNamespace(topic=TOPIC, partition=0, offset=offset, key=EVENT.encode(), value=value, headers=())


class ResettingConsumer:
    """Fetches the old log's 0–9; then the log is made anew: the position goes back to 0 and the new log's 0–3
    come, then nothing until `more` is set, then its 4–13."""

    def __init__(self) -> None:
        self.fetches = 0
        self.more = asyncio.Event()
        self.committed: list[tuple[int, frozenset[int]]] = []  # each commit, and the new log's offsets handled then
        self.handled_new: set[int] = set()

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    def highwater(self, tp: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if self.fetches == 1:
            return {P0: [_record("old", n) for n in range(10)]}
        if self.fetches == 2:
            return {P0: [_record("new", n) for n in range(4)]}
        if self.more.is_set() and not any(n >= 4 for n in self.handled_new):
            self.more.clear()
            return {P0: [_record("new", n) for n in range(4, 14)]}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append((offsets[P0], frozenset(self.handled_new)))


async def test_offsets_of_a_log_made_anew_are_not_committed_past_its_unhandled_messages() -> None:
    consumer = ResettingConsumer()
    old_done = asyncio.Event()
    release_old = asyncio.Event()

    async def handle(batch: list[Message]) -> None:
        data = batch[0].data
        if data["log"] == "old":
            await release_old.wait()  # slow: a provider or mail server that takes its time
            if data["n"] == 9:
                old_done.set()
        else:
            consumer.handled_new.add(data["n"])

    loop = asyncio.create_task(consume_concurrently(
        consumer, handle, KeptDeadLetters(), limit=64, offsets=InFlight()))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            while consumer.handled_new != set(range(4)):
                await asyncio.sleep(0.01)
            release_old.set()  # the old log's messages finish while the new log's 4–13 are not fetched yet
            await old_done.wait()
            fetched_since = consumer.fetches
            while consumer.fetches < fetched_since + 2:  # each turn of the loop ends with a commit
                await asyncio.sleep(0.01)
            consumer.more.set()
            while not any(offset == 14 for offset, _ in consumer.committed):
                await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    def first_unhandled(handled: frozenset[int]) -> int:
        return next(n for n in range(15) if n not in handled)

    past = [(offset, first_unhandled(handled)) for offset, handled in consumer.committed
            if offset > first_unhandled(handled)]
    assert past == [], f"committed past the new log's messages not yet handled: {past}"
    assert consumer.handled_new == set(range(14))
