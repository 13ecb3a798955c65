"""When a consumer reads its partitions again from their start after a restart of the embedded broker: at a
new broker start counted (all of them), not at the first look (the count then is only a baseline), and not
before the count has been read at all; and the batch in hand at a rewind is handled without its offset
being committed past the messages the rewind is there to read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from boxoffice.adapters.consumer_loop import consume_forever
from boxoffice.adapters.kafka import RestartedLogs
from boxoffice.messages import Message
from tests.dead_letters import KeptDeadLetters

PARTITIONS = {TopicPartition("booking.confirmed", 0), TopicPartition("seat.released", 2)}


class Consumer:
    """Its partitions' logs are longer than its positions: the position check alone finds nothing to rewind."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return PARTITIONS

    def highwater(self, tp: TopicPartition) -> int:
        return 50

    async def position(self, tp: TopicPartition) -> int:
        return 20

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


class Epochs:
    """The broker starts a KafkaEpochWatch would answer at each look: None until it has read the database once."""

    def __init__(self) -> None:
        self.answers: list[int | None] = []

    def current(self) -> int | None:
        return self.answers.pop(0)


async def test_every_partition_is_read_from_its_start_once_per_new_epoch() -> None:
    consumer, epochs = Consumer(), Epochs()
    restarted = RestartedLogs(consumer, every=0.0, broker_starts=epochs.current)  # type: ignore[arg-type]
    epochs.answers = [None, 3, 3, 4, 4]

    assert await restarted.rewind() == []  # not read yet: nothing is known
    assert await restarted.rewind() == []  # the epoch at the first look is where this consumer starts
    assert await restarted.rewind() == []
    assert await restarted.rewind() == sorted(PARTITIONS)
    assert await restarted.rewind() == []
    assert consumer.seeks == [(tp, 0) for tp in sorted(PARTITIONS)]


async def test_without_an_epoch_only_a_log_shorter_than_the_position_is_rewound() -> None:
    consumer = Consumer()
    restarted = RestartedLogs(consumer, every=0.0)  # type: ignore[arg-type]
    assert await restarted.rewind() == []
    consumer.highwater = lambda tp: 5 if tp.topic == "seat.released" else 50  # type: ignore[method-assign]
    assert await restarted.rewind() == [TopicPartition("seat.released", 2)]


class RestartingConsumer(Consumer):
    """Its first fetch brings offsets 20–24 of a log made anew that grew past the old position; the epoch it
    reads next says the broker restarted; then the new log from its start."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if self.fetches == 1:
            return {P0: [_record(n) for n in range(20, 25)]}
        if self.fetches == 2 and self.seeks:
            return {P0: [_record(n) for n in range(25)]}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            raise ValueError(offsets)  # as aiokafka's consumer does
        self.commits.append(dict(offsets))


P0 = TopicPartition("probe.restart", 0)  # a topic without a schema: any data is well formed


def _record(offset: int) -> Any:
    value = Message(P0.topic, "evt", {"n": offset}).encode()
    return SimpleNamespace(topic=P0.topic, partition=0, offset=offset, key=b"evt", value=value, headers=())


async def test_the_batch_in_hand_at_a_rewind_is_handled_but_its_offset_not_committed() -> None:
    """A crash after committing 25 would have the next process start past new messages 0–19."""
    consumer, epochs = RestartingConsumer(), Epochs()
    epochs.answers = [7, 8] + [8] * 100
    restarted = RestartedLogs(consumer, every=0.0, broker_starts=epochs.current)  # type: ignore[arg-type]
    handled: list[int] = []

    async def handle(batch: list[Message]) -> None:
        handled.extend(int(m.data["n"]) for m in batch)

    # The first look only learns the epoch: the consumer starts one fetch earlier, with nothing.
    await restarted.rewind()
    running = asyncio.ensure_future(consume_forever(consumer, handle, KeptDeadLetters(),  # type: ignore[arg-type]
                                                    restarted_logs=restarted))
    try:
        async with asyncio.timeout(5):
            while len(handled) < 30:
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
    assert handled == [*range(20, 25), *range(25)]
    assert consumer.seeks == [(P0, 0)]
    assert consumer.commits == [{P0: 25}]  # nothing for the rewound batch


async def test_a_partition_already_read_from_its_start_is_not_rewound_again_at_the_epoch() -> None:
    """The new log of seat.released was found shorter than the position before the epoch was counted: it is
    being read whole already, and reading it again would handle the broker's replay twice."""
    consumer, epochs = Consumer(), Epochs()
    restarted = RestartedLogs(consumer, every=0.0, broker_starts=epochs.current)  # type: ignore[arg-type]
    epochs.answers = [5, 5, 6, 6, 7]
    assert await restarted.rewind() == []
    consumer.highwater = lambda tp: 5 if tp.topic == "seat.released" else 50  # type: ignore[method-assign]
    assert await restarted.rewind() == [TopicPartition("seat.released", 2)]
    consumer.highwater = lambda tp: 50  # type: ignore[method-assign]
    assert await restarted.rewind() == [TopicPartition("booking.confirmed", 0)]  # epoch 6: only the other one
    assert await restarted.rewind() == []
    assert await restarted.rewind() == sorted(PARTITIONS)  # epoch 7: nothing was rewound since 6
