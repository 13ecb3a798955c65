"""When a consumer reads its partitions again from their start after a restart of the embedded broker: at a
new Kafka epoch (all of them), not at the first look (the epoch then is only a baseline), and not while the
database that holds the epoch does not answer."""

from __future__ import annotations

import asyncpg
from aiokafka.structs import TopicPartition

from boxoffice.adapters.kafka import RestartedLogs

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
    def __init__(self) -> None:
        self.answers: list[int | Exception] = []

    async def read(self) -> int:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_every_partition_is_read_from_its_start_once_per_new_epoch() -> None:
    consumer, epochs = Consumer(), Epochs()
    restarted = RestartedLogs(consumer, every=0.0, broker_epoch=epochs.read)  # type: ignore[arg-type]
    epochs.answers = [3, 3, asyncpg.CannotConnectNowError("starting up"), 4, 4]

    assert await restarted.rewind() == []  # the epoch at the first look is where this consumer starts
    assert await restarted.rewind() == []
    assert await restarted.rewind() == []  # the database does not answer: nothing is known yet
    assert await restarted.rewind() == sorted(PARTITIONS)
    assert await restarted.rewind() == []
    assert consumer.seeks == [(tp, 0) for tp in sorted(PARTITIONS)]


async def test_without_an_epoch_only_a_log_shorter_than_the_position_is_rewound() -> None:
    consumer = Consumer()
    restarted = RestartedLogs(consumer, every=0.0)  # type: ignore[arg-type]
    assert await restarted.rewind() == []
    consumer.highwater = lambda tp: 5 if tp.topic == "seat.released" else 50  # type: ignore[method-assign]
    assert await restarted.rewind() == [TopicPartition("seat.released", 2)]
