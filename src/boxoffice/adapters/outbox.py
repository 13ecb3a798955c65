"""Publishes committed outbox rows in order and marks them published once Kafka has acknowledged them.

Each process publishes the rows it wrote as soon as they commit. Rows whose process stopped before
Kafka acknowledged them (a crash, or a stop while other processes of the service carry on) are swept up
by any process of the same producer once they are a little old; a sweep locks the rows it takes
(SKIP LOCKED), so two sweeping processes never take the same rows.

Published rows are kept for `retain_seconds`, then deleted a few times per retention time (not every pass:
finding the rows that are due reads the producer's oldest rows, and a producer with few rows reads past
every other producer's). The embedded broker keeps messages in memory only: each of its starts counts a new
epoch (`kafka_epoch`), and a producer that has not replayed that epoch yet marks its rows published within
the retention time unpublished, so the sweep publishes them again in their order; consumers absorb the
repeats.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from boxoffice import metrics
from boxoffice.adapters.kafka import BrokerUnavailable, Publisher
from boxoffice.adapters.postgres import TRANSIENT_ERRORS, Connection
from boxoffice.logs import Outage
from boxoffice.service_layer.ports import OutboxRow

log = logging.getLogger(__name__)

# Failures a publish or a sweep waits out and retries.
_RETRIED: tuple[type[BaseException], ...] = (BrokerUnavailable, *TRANSIENT_ERRORS)

_INSERT_OUTBOX = """
    INSERT INTO outbox (topic, key, payload, producer)
    SELECT t.topic, t.key, t.payload, $4 FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS t(topic, key, payload)
    RETURNING id, topic, key, payload
"""


async def insert_outbox(con: Connection, items: list[tuple[str, bytes, bytes]],
                        producer: str = "booking") -> list[OutboxRow]:
    if not items:
        return []
    topics, keys, payloads = (list(column) for column in zip(*items, strict=True))
    rows = await con.fetch(_INSERT_OUTBOX, topics, keys, payloads, producer)
    return sorted((OutboxRow(r["id"], r["topic"], r["key"], r["payload"]) for r in rows), key=lambda r: r.id)


# A row older than this is no longer on its way out through the process that wrote it (which publishes
# within milliseconds); a process that is merely slow gets its rows published twice, which consumers absorb.
ABANDONED_AFTER_SECONDS = 2.0
SWEEP_EVERY_SECONDS = 1.0
SWEEP_BATCH = 2000
PRUNE_BATCH = 5000
PRUNE_BATCHES_AT_MOST = 60  # in one pass; the next pass goes on where it stopped

_MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1)"
_DELETE_PUBLISHED = "DELETE FROM outbox WHERE id = ANY($1)"


async def replay_if_broker_restarted(con: Connection, producer: str, retain_seconds: float | None = None) -> int:
    """Marks the producer's kept rows (published within `retain_seconds`, if given) unpublished once per broker
    epoch it has not replayed; how many."""
    async with con.transaction():
        epoch = await con.fetchval("SELECT epoch FROM kafka_epoch")
        replayed = await con.fetchval("SELECT epoch FROM outbox_replays WHERE producer = $1 FOR UPDATE", producer)
        if replayed is None:  # a producer new to this database has nothing to replay
            await con.execute("INSERT INTO outbox_replays (producer, epoch) VALUES ($1, $2) "
                              "ON CONFLICT (producer) DO NOTHING", producer, epoch)
            return 0
        if replayed >= epoch:
            return 0
        marked = await con.fetchval(
            "WITH marked AS (UPDATE outbox SET published_at = NULL WHERE producer = $1 AND published_at IS NOT NULL "
            "AND ($2::float8 IS NULL OR published_at >= now() - make_interval(secs => $2)) "
            "RETURNING 1) SELECT count(*) FROM marked", producer, retain_seconds)
        await con.execute("UPDATE outbox_replays SET epoch = $2 WHERE producer = $1", producer, epoch)
    return int(marked)


async def read_kafka_epoch(pool: asyncpg.Pool) -> tuple[int, int]:
    """The Kafka epoch and the broker starts counted."""
    row = await pool.fetchrow("SELECT epoch, broker_starts FROM kafka_epoch")
    if row is None:
        raise LookupError("kafka_epoch has no row")
    return int(row["epoch"]), int(row["broker_starts"])


_EPOCH_UNREAD: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, TimeoutError)


class KafkaEpochWatch:
    """The Kafka epoch and the embedded broker's starts as PostgreSQL holds them, read once a second by `run`:
    services compare them to what they saw before without waiting on the database. A start is counted as soon
    as the broker listens (consumers then read their logs again); the epoch follows once its topics have
    settled (producers then publish what they kept again)."""

    def __init__(self, pool: asyncpg.Pool, every: float = 1.0) -> None:
        self._pool, self._every = pool, every
        self._epoch: int | None = None
        self._starts: int | None = None
        self._reading = Outage(log, "reading the Kafka epoch")

    def current(self) -> int | None:
        return self._epoch

    def broker_starts(self) -> int | None:
        return self._starts

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(self._every, 1.0)):
                    self._epoch, self._starts = await read_kafka_epoch(self._pool)
                self._reading.recovered()
            except _EPOCH_UNREAD as exc:
                self._reading.failed(exc)
            await asyncio.sleep(self._every)


async def count_broker_start(con: Connection) -> int:
    """A broker whose storage does not outlive it listens: consumers read their partitions from the start."""
    return int(await con.fetchval(
        "UPDATE kafka_epoch SET broker_starts = greatest(broker_starts, epoch) + 1 RETURNING broker_starts"))


async def bump_kafka_epoch(con: Connection) -> int:
    """The topics of that broker have settled: every producer replays what it kept. The epoch catches up with
    the starts counted, or counts this start if it was not."""
    return int(await con.fetchval(
        "UPDATE kafka_epoch SET epoch = greatest(broker_starts, epoch + 1), "
        "broker_starts = greatest(broker_starts, epoch + 1), changed_at = now() RETURNING epoch"))


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, producer: str = "booking",
                 abandoned_after: float = ABANDONED_AFTER_SECONDS, retain_seconds: float = 0.0,
                 prune_every: float | None = None) -> None:
        self._pool = pool
        self._producer = producer
        self._publisher = publisher
        self._abandoned_after = abandoned_after
        self._retain_seconds = retain_seconds
        self._prune_every = prune_every if prune_every is not None else max(SWEEP_EVERY_SECONDS, retain_seconds / 4)
        self._next_prune = 0.0
        # Nothing kept (a broker that keeps what it acknowledged): published rows go at once.
        self._published = _MARK_PUBLISHED if retain_seconds > 0 else _DELETE_PUBLISHED
        self._queue: asyncio.Queue[list[OutboxRow]] = asyncio.Queue()
        self.published = 0
        self._sweeping = Outage(log, f"sweeping the {producer} outbox")
        self._publishing = Outage(log, f"publishing {producer} outbox rows")

    def submit(self, rows: list[OutboxRow]) -> None:
        """Rows of a transaction that has committed: published next, without a table scan."""
        if rows:
            self._queue.put_nowait(rows)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._sweep_forever())
            while True:
                rows = await self._queue.get()
                while not self._queue.empty():
                    rows += self._queue.get_nowait()
                await self._publish(rows)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if self._retain_seconds > 0:
                    await self._replay_if_broker_restarted()
                while await self._sweep() == SWEEP_BATCH:
                    pass
            except _RETRIED as exc:
                self._sweeping.failed(exc)
            else:
                self._sweeping.recovered()
            await asyncio.sleep(SWEEP_EVERY_SECONDS)

    async def _sweep(self) -> int:
        """Publishes a batch of rows left behind, holding their row locks until they are deleted."""
        async with self._pool.acquire() as con, con.transaction():
            records = await con.fetch(
                "SELECT id, topic, key, payload FROM outbox WHERE producer = $1 AND published_at IS NULL "
                "AND created_at < now() - make_interval(secs => $2) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                self._producer, self._abandoned_after, SWEEP_BATCH)
            if not records:
                return 0
            log.info("re-publishing %d outbox rows left behind", len(records))
            await self._publisher.publish_many([(r["topic"], r["key"], r["payload"]) for r in records])
            await con.execute(self._published, [r["id"] for r in records])
        self.published += len(records)
        metrics.OUTBOX_PUBLISHED.inc(by=len(records))
        return len(records)

    async def _replay_if_broker_restarted(self) -> None:
        async with self._pool.acquire() as con:
            if time.monotonic() >= self._next_prune:
                await self._prune(con)
                self._next_prune = time.monotonic() + self._prune_every
            replayed = await replay_if_broker_restarted(con, self._producer, self._retain_seconds)
        if replayed:
            log.warning("the broker has restarted: publishing %d %s outbox rows of the last %.0f s again",
                        replayed, self._producer, self._retain_seconds)

    async def _prune(self, con: Connection) -> None:
        """Deletes rows published longer ago than they are kept, oldest first, in bounded batches."""
        # Only the oldest rows are looked at, not the young ones behind them.
        for _ in range(PRUNE_BATCHES_AT_MOST):
            status = await con.execute(
                "DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM (SELECT id, published_at FROM outbox "
                "WHERE producer = $1 ORDER BY id LIMIT $3) AS oldest "
                "WHERE published_at < now() - make_interval(secs => $2)))",
                self._producer, self._retain_seconds, PRUNE_BATCH)
            if int(status.split()[-1]) == 0:  # rows not yet due (or unpublished) may hold a batch back: go on
                return

    async def _publish(self, rows: list[OutboxRow]) -> None:
        delay = 0.05
        while True:
            try:
                await self._publisher.publish_many([(r.topic, r.key, r.payload) for r in rows])
                async with self._pool.acquire() as con:
                    await con.execute(self._published, [r.id for r in rows])
                self.published += len(rows)
                metrics.OUTBOX_PUBLISHED.inc(by=len(rows))
                self._publishing.recovered()
                return
            except _RETRIED as exc:
                self._publishing.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
