"""Publishes committed outbox rows in order and deletes them once Kafka has acknowledged them."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from boxoffice import metrics
from boxoffice.adapters.kafka import BrokerUnavailable, Publisher
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.service_layer.ports import OutboxRow

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, producer: str = "booking") -> None:
        self._pool = pool
        self._producer = producer
        self._publisher = publisher
        self._queue: asyncio.Queue[list[OutboxRow]] = asyncio.Queue()
        self.published = 0

    def submit(self, rows: list[OutboxRow]) -> None:
        """Rows of a transaction that has committed: published next, without a table scan."""
        if rows:
            self._queue.put_nowait(rows)

    async def run(self) -> None:
        await self._drain_table()
        while True:
            rows = await self._queue.get()
            while not self._queue.empty():
                rows += self._queue.get_nowait()
            await self._publish(rows)

    async def _drain_table(self) -> None:
        """Rows left by an earlier run that stopped between commit and acknowledgement."""
        while True:
            async with self._pool.acquire() as con:
                records = await con.fetch(
                    "SELECT id, topic, key, payload FROM outbox WHERE producer = $1 ORDER BY id LIMIT 2000",
                    self._producer)
            if not records:
                return
            log.info("re-publishing %d outbox rows", len(records))
            await self._publish([OutboxRow(r["id"], r["topic"], r["key"], r["payload"]) for r in records])

    async def _publish(self, rows: list[OutboxRow]) -> None:
        delay = 0.05
        while True:
            try:
                await self._publisher.publish_many([(r.topic, r.key, r.payload) for r in rows])
                async with self._pool.acquire() as con:
                    await con.execute("DELETE FROM outbox WHERE id = ANY($1)", [r.id for r in rows])
                self.published += len(rows)
                metrics.OUTBOX_PUBLISHED.inc(by=len(rows))
                return
            except (BrokerUnavailable, *TRANSIENT_ERRORS) as exc:
                log.warning("outbox publish failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
