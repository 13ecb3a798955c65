"""The embedded broker's wiring: its command line, and what each start of it calls for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
from aiokafka.errors import KafkaError

from boxoffice.adapters.embedded import broker_command, wait_for_port
from boxoffice.adapters.kafka import repair_fresh_broker_topics
from boxoffice.adapters.outbox import bump_kafka_epoch
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.config import Settings

log = logging.getLogger("boxoffice.broker")

# Clients that reconnect just as the broker is up can make a topic before we do (with the broker's default
# partitions): the topics are checked again for this long.
SETTLE_SECONDS = 3.0
EPOCH_ATTEMPTS_SECONDS = 300.0


def command(port: int) -> list[str]:
    return broker_command(port)


async def after_start(settings: Settings, port: int, broker_alive: Callable[[], bool] = lambda: True) -> None:
    """The topics with the configured partitions, then a new Kafka epoch: every producer publishes again what
    it kept, since the broker has forgotten it. Given up when the broker is gone (stopped meanwhile)."""
    await asyncio.to_thread(wait_for_port, port)
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
    if not settings.database_url:
        return
    deadline = time.monotonic() + EPOCH_ATTEMPTS_SECONDS
    while True:
        try:
            connection = await asyncpg.connect(settings.database_url, timeout=5)
            try:
                epoch = await bump_kafka_epoch(connection)
            finally:
                await connection.close()
            log.info("broker started: Kafka epoch %d, producers publish what they kept again", epoch)
            return
        except asyncpg.UndefinedTableError:
            return  # a database not yet migrated has published nothing
        except TRANSIENT_ERRORS as exc:
            if time.monotonic() > deadline or not broker_alive():
                log.error("could not record the broker's start: %s", exc)
                return
            await asyncio.sleep(1.0)
