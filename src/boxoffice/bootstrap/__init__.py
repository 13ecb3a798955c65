"""The composition root: the one place that picks concrete adapters for each service."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice.adapters.concurrent_consumer import InFlight, consume_concurrently
from boxoffice.adapters.consumer_loop import BatchHandler, PartitionGate, RetryWatch, consume_forever
from boxoffice.adapters.dead_letters import KafkaDeadLetters
from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import (
    Publisher,
    RestartedLogs,
    client_security,
    consumer_lag,
    ensure_topics,
    make_group_consumer,
    make_producer,
    start_with_retry,
)
from boxoffice.adapters.outbox import KafkaEpochWatch
from boxoffice.adapters.postgres import create_pool
from boxoffice.config import Settings
from boxoffice.domain.tickets import TicketSeal

log = logging.getLogger("boxoffice")

# How long a process's clean stop may take before it exits anyway.
STOP_GRACE_SECONDS = 5.0


@contextlib.contextmanager
def exits_if_stuck(what: str, seconds: float = STOP_GRACE_SECONDS) -> Iterator[None]:
    """A stop's clean-up talks to the broker and the database, and may wait for ever on one that died: past
    `seconds` the process exits, where it is stuck written to stderr, so that the supervisor starts it again
    rather than keeping a process that decides nothing. A thread's timer, since the event loop may be what
    waits."""
    timer = threading.Timer(seconds, _exit_stuck, args=(what, seconds))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _exit_stuck(what: str, seconds: float) -> None:
    log.error("%s took longer than %g s; exiting. Where it waited:", what, seconds)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(1)


@dataclass
class ServiceRuntime:
    settings: Settings
    name: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer | None = None

    @property
    def publisher(self) -> Publisher:
        assert self.producer is not None
        return Publisher(self.producer)


def restarted_logs(consumer: AIOKafkaConsumer, epochs: KafkaEpochWatch) -> RestartedLogs:
    """What a consumer reads again when the embedded broker has restarted: told by the broker starts counted in
    PostgreSQL (with Apache Kafka they never change)."""
    return RestartedLogs(consumer, broker_starts=epochs.broker_starts)


async def signing_key(settings: Settings, pool: asyncpg.Pool) -> str:
    """The key accounts' and the waiting room's tokens are signed with: configured, or kept in PostgreSQL."""
    return settings.auth_secret or str(await pool.fetchval(
        "SELECT value FROM platform_secrets WHERE name = 'token_signing_key'"))


async def ticket_seal(pool: asyncpg.Pool) -> TicketSeal:
    """Signs and checks tickets with the install's key, made by the migration that added tickets."""
    return TicketSeal(str(await pool.fetchval(
        "SELECT value FROM platform_secrets WHERE name = 'ticket_signing_key'")).encode())


@contextlib.asynccontextmanager
async def runtime(settings: Settings, name: str, *, produces: bool,
                  pool_size: int = 4) -> AsyncIterator[ServiceRuntime]:
    pool = await create_pool(settings.database_url or "", size=pool_size)
    producer = None
    try:
        if produces:
            producer = make_producer(settings)
            await start_with_retry(producer, f"{name} producer")
        yield ServiceRuntime(settings, name, pool, producer)
    finally:
        with exits_if_stuck(f"stopping {name}'s producer and pool"):
            if producer is not None:
                await producer.stop()
            await pool.close()


async def run_consumer_service(rt: ServiceRuntime, topics: list[str], handler: BatchHandler,
                               extra: list[Awaitable[Any]] | None = None,
                               info: Callable[[], dict[str, Any]] | None = None,
                               latency_path: bool = True, concurrency: int | None = None,
                               started: Callable[[AIOKafkaConsumer], None] | None = None) -> None:
    """Consumes its topics in its own group and beats with its lag, until cancelled. Messages it cannot
    handle go to their topic's dead letters, so every consumer produces (a producer of its own if needed).
    With `concurrency`, up to that many messages are handled at once, one per call of the handler; `started`
    is given the consumer once it has started."""
    # Topics a restarted embedded broker forgot are made again, with the configured partitions.
    await ensure_topics(rt.settings.kafka_bootstrap or "", rt.settings.partitions,
                        security=client_security(rt.settings))
    own_producer = None
    if rt.producer is None:
        own_producer = make_producer(rt.settings)
        await start_with_retry(own_producer, f"{rt.name} dead-letter producer")
    dead_letters = KafkaDeadLetters(rt.producer or own_producer, rt.name)
    watch = RetryWatch()
    # Every process of a service joins the service's group (booking may run several): they split the partitions.
    gate = PartitionGate()
    consumer: AIOKafkaConsumer = make_group_consumer(rt.settings, rt.name, topics, latency_path=latency_path,
                                                     listener=gate)
    await start_with_retry(consumer, f"{rt.name} consumer")
    if started is not None:
        started(consumer)
    log.info("%s consuming %s as group %s from %s", rt.name, ", ".join(topics), rt.name, rt.settings.kafka_bootstrap)

    in_flight = InFlight()  # what the concurrent loop has taken and not finished (the one-batch loop takes none here)

    async def heartbeat_info() -> dict[str, Any]:
        return {"lag": await consumer_lag(consumer) + in_flight.unfinished(), "partitions": len(gate.assigned),
                "rebalances": gate.rebalances, "deadLetters": dead_letters.sent, **watch.info(),
                **(info() if info else {})}

    epochs = KafkaEpochWatch(rt.pool)
    rewinding = restarted_logs(consumer, epochs)
    consuming = (consume_forever(consumer, handler, dead_letters, gate=gate, watch=watch, restarted_logs=rewinding)
                 if concurrency is None
                 else consume_concurrently(consumer, handler, dead_letters, concurrency, gate=gate, watch=watch,
                                           offsets=in_flight, restarted_logs=rewinding))
    tasks = [asyncio.ensure_future(t) for t in (
        consuming,
        epochs.run(),
        beat_forever(rt.pool, rt.name, rt.settings.heartbeat_seconds, heartbeat_info),
        *(extra or []),
    )]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        log.info("%s stopping", rt.name)
        with exits_if_stuck(f"stopping {rt.name}'s consumer"):
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            if own_producer is not None:
                await own_producer.stop()
