"""A restarted embedded broker starts with empty logs and answers a fetch past a partition's end with nothing:
a consumer reading on from its old position is rewound to the new log's start, and the broker's supervisor
program makes the topics again with the configured partitions."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from boxoffice.adapters.embedded import broker_command, free_port, wait_for_port
from boxoffice.adapters.kafka import RestartedLogs, repair_fresh_broker_topics
from boxoffice.bootstrap import broker as broker_program
from boxoffice.config import Settings
from tests.conftest import new_database
from tests.servers import Servers

TOPIC = "restart.probe"


class Broker:
    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(broker_command(self.port), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _create(bootstrap: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
    finally:
        await admin.close()


async def _send(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(TOPIC, value, key=b"k")
    finally:
        await producer.stop()


async def _read(consumer: AIOKafkaConsumer, restarted_logs: RestartedLogs | None, want: int) -> list[bytes]:
    """What a tail reader gets in at most 5 s, or as soon as it has `want` messages."""
    received: list[bytes] = []
    async with asyncio.timeout(5):
        while len(received) < want:
            batches = await consumer.getmany(timeout_ms=200)
            if restarted_logs is not None:
                await restarted_logs.rewind()
            received += [r.value for records in batches.values() for r in records]
    return received


@pytest.mark.parametrize("rewinding", [True, False], ids=["rewound", "as-the-client-alone-does"])
async def test_a_reader_gets_the_new_log_of_a_restarted_broker(broker: Broker, rewinding: bool) -> None:
    await _create(broker.bootstrap)
    await _send(broker.bootstrap, [b"old-%d" % i for i in range(20)])
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, 0)])
        restarted_logs = RestartedLogs(consumer, every=0.0)
        assert len(await _read(consumer, restarted_logs, 20)) == 20

        broker.stop()
        broker.start()
        await _create(broker.bootstrap)
        await _send(broker.bootstrap, [b"new-%d" % i for i in range(3)])

        if rewinding:
            assert await _read(consumer, restarted_logs, 3) == [b"new-0", b"new-1", b"new-2"]
        else:  # what RestartedLogs is for: the client waits at offset 20 of a log that holds 3
            with pytest.raises(TimeoutError):
                await _read(consumer, None, 1)
    finally:
        await consumer.stop()


class Epochs:
    """The broker starts as PostgreSQL holds them: counted by the broker's supervisor program at each start."""

    def __init__(self) -> None:
        self.epoch = 1

    def current(self) -> int:
        return self.epoch


@pytest.mark.parametrize("epoch_known", [True, False], ids=["epoch-counted", "position-only"])
async def test_a_reader_gets_a_new_log_that_grew_past_its_position_before_it_looked(broker: Broker,
                                                                                  epoch_known: bool) -> None:
    """The new broker takes 25 messages before the reader (at offset 20 of the old log) fetches again: a
    partition that is not shorter than the position is read from its start only once the epoch says so."""
    await _create(broker.bootstrap)
    await _send(broker.bootstrap, [b"old-%d" % i for i in range(20)])
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50)
    await consumer.start()
    epochs = Epochs()
    try:
        consumer.assign([TopicPartition(TOPIC, 0)])
        restarted_logs = RestartedLogs(consumer, every=0.0, broker_starts=epochs.current if epoch_known else None)
        assert len(await _read(consumer, restarted_logs, 20)) == 20

        broker.stop()
        broker.start()
        await _create(broker.bootstrap)
        await _send(broker.bootstrap, [b"new-%d" % i for i in range(25)])
        epochs.epoch += 1

        if epoch_known:  # the first fetch may bring new-20..new-24 before the epoch is read: then all once more
            wanted = {b"new-%d" % i for i in range(25)}
            received: list[bytes] = []
            async with asyncio.timeout(5):
                while not wanted <= set(received):
                    received += await _read(consumer, restarted_logs, 1)
            assert received[-25:] == [b"new-%d" % i for i in range(25)]
        else:  # the position check alone sees a log as long as the position, and reads on past new-0..new-19
            with pytest.raises(TimeoutError):
                await _read(consumer, restarted_logs, 6)
    finally:
        await consumer.stop()


async def test_topics_auto_created_with_other_partitions_are_made_again(broker: Broker) -> None:
    await _create(broker.bootstrap, partitions=4)  # as a client's metadata request does on a fresh broker
    remade = await repair_fresh_broker_topics(broker.bootstrap, 12, [TOPIC, "restart.missing"])
    assert remade == [TOPIC]
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        found = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([TOPIC, "restart.missing"])}
    finally:
        await admin.close()
    assert found == {TOPIC: 12, "restart.missing": 12}
    assert await repair_fresh_broker_topics(broker.bootstrap, 12, [TOPIC, "restart.missing"]) == []


async def test_a_broker_start_is_counted_as_soon_as_it_listens_and_its_epoch_once_its_topics_settled(
        broker: Broker, servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Services that start while the new broker's topics settle read the start already counted, so the epoch
    that follows does not send them back to the start of every partition (nor the gateway's requests out
    again); producers still replay at the epoch."""
    dsn = await new_database(servers, "broker_starts")
    monkeypatch.setattr(broker_program, "SETTLE_SECONDS", 5.0)
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("UPDATE kafka_epoch SET epoch = 7, broker_starts = 7")
        starting = asyncio.create_task(broker_program.after_start(Settings(database_url=dsn), broker.port))
        async with asyncio.timeout(4):
            while await con.fetchval("SELECT broker_starts FROM kafka_epoch") == 7:
                await asyncio.sleep(0.02)
        assert tuple(await con.fetchrow("SELECT epoch, broker_starts FROM kafka_epoch")) == (7, 8)
        async with asyncio.timeout(20):
            await starting
        assert tuple(await con.fetchrow("SELECT epoch, broker_starts FROM kafka_epoch")) == (8, 8)
    finally:
        await con.close()
