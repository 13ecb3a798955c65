"""The gateway's wiring: its pool, Kafka clients, accounts and the tasks that run beside the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

import asyncpg

from boxoffice import messages as topics
from boxoffice import views
from boxoffice.adapters.accounts import AccountStore, TokenSigner
from boxoffice.adapters.door_store import PostgresDoorUnitOfWork
from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import BrokerUnavailable, Publisher, make_tail_consumer
from boxoffice.adapters.outbox import KafkaEpochWatch
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.adapters.unanswered_store import forget_answered, keep_unanswered, take_unanswered
from boxoffice.bootstrap import restarted_logs, runtime, signing_key, ticket_seal
from boxoffice.bootstrap.payment import payment_provider
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch
from boxoffice.entrypoints.gateway.replies import ReplyWaiter, UnansweredRequests
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.entrypoints.gateway.state import Gateway, SeatDirectory, ServiceHealth
from boxoffice.grouping import Grouped
from boxoffice.logs import Outage

log = logging.getLogger("boxoffice.gateway")

# How long a request waits here for its answer before it is no longer written again (at most
# UnansweredRequests.MOST of them): a booking service may be down for a while, with requests waiting in Kafka.
UNANSWERED_KEPT_SECONDS = 3600.0
OVERDUE_SECONDS = 1.0
# A stopping gateway's time to keep them in PostgreSQL, within the supervisor's wait for the stop.
KEEP_WITHIN_SECONDS = 3.0
_SENDING_FAILED: tuple[type[BaseException], ...] = (BrokerUnavailable, *TRANSIENT_ERRORS)
_KEEPING_FAILED: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, TimeoutError)

# The booking service's answers, which the gateway waits for.
REPLY_TOPICS = [topics.SEAT_RESERVED, topics.SEAT_RESERVATION_FAILED, topics.BOOKING_CONFIRMED,
                topics.BOOKING_CANCELLED, topics.BOOKING_COMMAND_REJECTED, topics.WAITLIST_UPDATED,
                topics.EVENT_CANCELLED, topics.QUEUE_PLACED]


async def resend_at_new_kafka_epochs(epochs: KafkaEpochWatch, unanswered: UnansweredRequests, publisher: Publisher,
                                     every: float = 1.0) -> None:
    """When the embedded broker has started again and its topics have settled (a new Kafka epoch), the booking
    requests it may have held are written again. The gateway starts from the broker starts counted when it
    first reads them: a broker that started just before the gateway, and whose epoch follows a few seconds
    later, has held none of its requests."""
    known: int | None = None
    sending = Outage(log, "writing unanswered booking requests again")
    while True:
        epoch = epochs.current()
        try:
            if known is None:
                known = epochs.broker_starts()
            elif epoch is not None and epoch > known:
                waiting = unanswered.waiting()
                if waiting:
                    log.warning("the broker has restarted: writing %d unanswered booking requests again", len(waiting))
                    await publisher.publish_many([(m.type, m.key, m.encode()) for m in waiting])
                sending.recovered()
                known = epoch
        except BrokerUnavailable as exc:  # `known` stays behind: written again at the next pass
            sending.failed(exc)
        await asyncio.sleep(every)


async def send_kept_requests(pool: asyncpg.Pool, unanswered: UnansweredRequests, publisher: Publisher,
                             every: float = 1.0) -> None:
    """The requests that gateways stopped before reading their answers are written to Kafka again, once, and then
    awaited here like the ones this gateway sends."""
    sending = Outage(log, "writing again the requests kept by a stopped gateway")
    while True:
        try:
            async with pool.acquire() as con, con.transaction():
                kept = await take_unanswered(con, UNANSWERED_KEPT_SECONDS)
                if kept:
                    await publisher.publish_many([(m.type, m.key, m.encode()) for m in kept])
        except _SENDING_FAILED as exc:  # still kept: tried again
            sending.failed(exc)
            await asyncio.sleep(every)
            continue
        sending.recovered()
        for message in kept:
            unanswered.sent(message)
        if kept:
            log.warning("writing again %d requests that a stopped gateway had not seen answered", len(kept))
        return


async def keep_overdue_requests(pool: asyncpg.Pool, unanswered: UnansweredRequests, every: float = 0.5,
                                after: float = OVERDUE_SECONDS) -> None:
    """Requests unanswered for a second are kept in PostgreSQL too, and forgotten there once answered: a
    gateway killed while the booking service is down (its 202s accepted) loses none of them when the embedded
    broker, which holds them in memory only, then restarts too (found by an outside probe: 160 of 160 such
    requests were lost). Only the slow ones are written: a sale's answers come well within the second."""
    keeping = Outage(log, "keeping unanswered booking requests in PostgreSQL")
    while True:
        await asyncio.sleep(every)
        overdue, answered = unanswered.overdue(after), unanswered.answered_kept()
        if not overdue and not answered:
            continue
        try:
            async with pool.acquire() as con, con.transaction():
                if overdue:
                    await keep_unanswered(con, overdue)
                if answered:
                    await forget_answered(con, answered)
        except _KEEPING_FAILED as exc:
            keeping.failed(exc)  # tried again at the next pass
            unanswered.forget_later(answered)
            continue
        keeping.recovered()
        unanswered.kept(overdue)


async def keep_for_the_next_gateway(pool: asyncpg.Pool, unanswered: UnansweredRequests,
                                    within: float = KEEP_WITHIN_SECONDS) -> None:
    """At a stop: the requests still unanswered stay in PostgreSQL, since the embedded broker that holds them
    may stop too (`down`)."""
    waiting = unanswered.not_kept()
    if not waiting:
        return
    try:
        async with asyncio.timeout(within), pool.acquire() as con:
            await keep_unanswered(con, waiting)
    except _KEEPING_FAILED as exc:
        log.error("%d unanswered requests could not be kept for the next gateway: %s", len(waiting), exc)
        return
    log.warning("kept %d unanswered requests for the next gateway to write again", len(waiting))


async def access(settings: Settings, pool: asyncpg.Pool) -> Access:
    key = await signing_key(settings, pool)
    accounts = AccountStore(pool)
    if settings.admin_email and settings.admin_password:
        await accounts.ensure_admin(settings.admin_email, settings.admin_password)
    return Access(settings, accounts, TokenSigner(key, settings.token_seconds))


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A started gateway; on exit its tasks are cancelled and its clients and pool closed."""
    async with runtime(settings, "gateway", produces=True, pool_size=settings.db_pool_size) as rt:
        pool = rt.pool
        consumer = await make_tail_consumer(settings, REPLY_TOPICS)
        rooms_consumer = await make_tail_consumer(settings, [topics.QUEUE_ADMITTED])
        try:
            key = await pool.fetchval("SELECT value FROM platform_secrets WHERE name = 'request_id_key'")
            health = ServiceHealth.of(pool, settings.heartbeat_stale_seconds)
            # Only a broker that forgets what it held (the embedded one) needs requests written again.
            unanswered = UnansweredRequests(UNANSWERED_KEPT_SECONDS if settings.outbox_retention else 0.0)
            epochs = KafkaEpochWatch(pool)
            replies = ReplyWaiter(consumer, on_reply=lambda: health.seen_alive("booking"), unanswered=unanswered,
                                  restarted_logs=restarted_logs(consumer, epochs))
            queue = QueueWatch(pool, QueueTokens(await signing_key(settings, pool)), rooms_consumer,
                               restarted_logs(rooms_consumer, epochs))
            gw = Gateway(settings, pool, rt.publisher, replies, RequestIds(key), SeatDirectory(pool), health,
                         await access(settings, pool), queue, await ticket_seal(pool),
                         lambda: PostgresDoorUnitOfWork(pool), payment_provider(rt),
                         Grouped(partial(views.booking_states, pool), most=500))
            log.info("gateway serving on %s:%d (Kafka %s)", settings.http_host, settings.http_port,
                     settings.kafka_bootstrap)
            tasks = [asyncio.create_task(t) for t in (
                replies.run(), queue.run(), epochs.run(), health.refresh_forever(),
                beat_forever(pool, "gateway", settings.heartbeat_seconds),
                *([resend_at_new_kafka_epochs(epochs, unanswered, rt.publisher),
                   send_kept_requests(pool, unanswered, rt.publisher),
                   keep_overdue_requests(pool, unanswered)] if settings.outbox_retention else []))]
            try:
                yield gw
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if settings.outbox_retention:
                    await keep_for_the_next_gateway(pool, unanswered)
        finally:
            await consumer.stop()
            await rooms_consumer.stop()
