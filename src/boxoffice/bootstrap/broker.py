"""The embedded broker's wiring: its command line, and what each start of it calls for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka.errors import KafkaError

from boxoffice.adapters.embedded import broker_command, wait_for_port
from boxoffice.adapters.kafka import repair_fresh_broker_topics
from boxoffice.adapters.outbox import bump_kafka_epoch, count_broker_start
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.config import Settings

log = logging.getLogger("boxoffice.broker")

# Clients that reconnect just as the broker is up can make a topic before we do (with the broker's default
# partitions): the topics are checked again for this long.
SETTLE_SECONDS = 3.0
EPOCH_ATTEMPTS_SECONDS = 300.0
RETRY_SECONDS = 0.2
# A first `up` provisions the database and migrates it while the broker starts.
_NOT_READY: tuple[type[BaseException], ...] = (asyncpg.InvalidAuthorizationSpecificationError,
                                              asyncpg.InvalidCatalogNameError, asyncpg.UndefinedColumnError)


def command(port: int) -> list[str]:
    return broker_command(port)


async def after_start(settings: Settings, port: int, broker_alive: Callable[[], bool] = lambda: True) -> None:
    """The start counted as soon as the broker listens (consumers read their logs again), the topics with the
    configured partitions, then a new Kafka epoch: every producer publishes again what it kept, since the
    broker has forgotten it. Given up when the broker is gone (stopped meanwhile)."""
    await asyncio.to_thread(wait_for_port, port)
    deadline = time.monotonic() + EPOCH_ATTEMPTS_SECONDS
    counting = (asyncio.create_task(_record(settings.database_url, count_broker_start, deadline, broker_alive))
                if settings.database_url else None)
    bootstrap = f"127.0.0.1:{port}"
    settled_at = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < settled_at:
        try:
            remade = await repair_fresh_broker_topics(bootstrap, settings.partitions)
        except KafkaError as exc:
            log.warning("checking the topics of the new broker: %s", exc)
        else:
            if remade:
                log.warning("made again with %d partitions: %s", settings.partitions, ", ".join(remade))
        await asyncio.sleep(0.2)
    if counting is None or settings.database_url is None or await counting is None:
        return
    epoch = await _record(settings.database_url, bump_kafka_epoch, deadline, broker_alive)
    if epoch is not None:
        log.info("broker started: Kafka epoch %d, producers publish what they kept again", epoch)


async def _record(database_url: str, statement: Callable[[asyncpg.Connection], Awaitable[int]], deadline: float,
                  broker_alive: Callable[[], bool]) -> int | None:
    """The statement's result, tried until the deadline while the database is unavailable or being migrated;
    None when it could not be made, or when the database has no schema yet (it has published nothing)."""
    while True:
        try:
            connection = await asyncpg.connect(database_url, timeout=5)
            try:
                return await statement(connection)
            finally:
                await connection.close()
        except asyncpg.UndefinedTableError:
            return None
        except (*TRANSIENT_ERRORS, *_NOT_READY) as exc:
            if time.monotonic() > deadline or not broker_alive():
                log.error("could not record the broker's start: %s", exc)
                return None
            await asyncio.sleep(RETRY_SECONDS)
