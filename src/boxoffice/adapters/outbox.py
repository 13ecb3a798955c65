"""Publishes committed outbox rows in order and deletes them once Kafka has acknowledged them.

Each process publishes the rows it wrote as soon as they commit. Rows whose process stopped before
Kafka acknowledged them (a crash, or a stop while other processes of the service carry on) are swept up
by any process of the same producer once they are a little old; a sweep locks the rows it takes
(SKIP LOCKED), so two sweeping processes never take the same rows.
"""

from __future__ import annotations

import asyncio
import logging

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


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, producer: str = "booking",
                 abandoned_after: float = ABANDONED_AFTER_SECONDS) -> None:
        self._pool = pool
        self._producer = producer
        self._publisher = publisher
        self._abandoned_after = abandoned_after
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
                "SELECT id, topic, key, payload FROM outbox WHERE producer = $1 "
                "AND created_at < now() - make_interval(secs => $2) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                self._producer, self._abandoned_after, SWEEP_BATCH)
            if not records:
                return 0
            log.info("re-publishing %d outbox rows left behind", len(records))
            await self._publisher.publish_many([(r["topic"], r["key"], r["payload"]) for r in records])
            await con.execute("DELETE FROM outbox WHERE id = ANY($1)", [r["id"] for r in records])
        self.published += len(records)
        metrics.OUTBOX_PUBLISHED.inc(by=len(records))
        return len(records)

    async def _publish(self, rows: list[OutboxRow]) -> None:
        delay = 0.05
        while True:
            try:
                await self._publisher.publish_many([(r.topic, r.key, r.payload) for r in rows])
                async with self._pool.acquire() as con:
                    await con.execute("DELETE FROM outbox WHERE id = ANY($1)", [r.id for r in rows])
                self.published += len(rows)
                metrics.OUTBOX_PUBLISHED.inc(by=len(rows))
                self._publishing.recovered()
                return
            except _RETRIED as exc:
                self._publishing.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
