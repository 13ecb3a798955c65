"""The embedded broker's supervisor program: `python -m boxoffice.entrypoints.broker PORT`.

The broker keeps its messages in memory, so each start is a broker that has forgotten everything. This
process becomes the broker itself (exec, so the supervisor signals and watches the broker), and a child it
forks first sees to what the start means: the topics made with the configured partitions, and a new Kafka
epoch in PostgreSQL, upon which every producer publishes the outbox rows it kept once more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from boxoffice.config import Settings, get_settings

log = logging.getLogger("boxoffice.broker")

# Clients that reconnect just as the broker is up can make a topic before the child does (with the broker's
# default partitions): the topics are checked again for this long.
SETTLE_SECONDS = 3.0
EPOCH_ATTEMPTS_SECONDS = 600.0


async def after_start(settings: Settings, port: int) -> None:
    import asyncpg
    from aiokafka.errors import KafkaError

    from boxoffice.adapters.embedded import wait_for_port
    from boxoffice.adapters.kafka import repair_fresh_broker_topics
    from boxoffice.adapters.outbox import bump_kafka_epoch
    from boxoffice.adapters.postgres import TRANSIENT_ERRORS

    await asyncio.to_thread(wait_for_port, port)
    if not settings.database_url:
        return
    bootstrap = f"127.0.0.1:{port}"
    settled_at = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < settled_at:
        try:
            remade = await repair_fresh_broker_topics(bootstrap, settings.topic_partitions)
        except KafkaError as exc:
            log.warning("checking the topics of the new broker: %s", exc)
        else:
            if remade:
                log.warning("made again with %d partitions: %s", settings.topic_partitions, ", ".join(remade))
        await asyncio.sleep(0.2)
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
            if time.monotonic() > deadline:
                log.error("could not record the broker's start: %s", exc)
                return
            await asyncio.sleep(1.0)


def main(argv: list[str]) -> None:
    from boxoffice import logs
    from boxoffice.adapters.embedded import broker_command

    port = int(argv[0])
    settings = get_settings()
    command = broker_command(port)
    sys.stdout.flush()
    if os.fork() == 0:
        try:
            logs.configure("broker", settings.log_format, logging.getLevelName(settings.log_level))
            asyncio.run(after_start(settings, port))
        except BaseException:
            log.exception("after the broker's start")
        finally:
            os._exit(0)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
