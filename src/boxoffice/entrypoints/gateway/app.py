"""The gateway process: FastAPI app, its start-up wiring, and the uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from boxoffice import messages as topics
from boxoffice.adapters.accounts import AccountStore, TokenSigner
from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import (
    Publisher,
    make_producer,
    make_tail_consumer,
    start_with_retry,
)
from boxoffice.adapters.postgres import create_pool
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway import (
    accounts,
    bookings,
    catalog,
    events,
    lifecycle,
    live,
    operations,
    telemetry,
)
from boxoffice.entrypoints.gateway.access import Access, document_bearer
from boxoffice.entrypoints.gateway.middleware import BodySizeLimit, SecurityHeaders
from boxoffice.entrypoints.gateway.replies import ReplyWaiter
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.entrypoints.gateway.responses import install_error_handlers
from boxoffice.entrypoints.gateway.state import Gateway, SeatDirectory, ServiceHealth


async def _access(settings: Settings, pool: asyncpg.Pool) -> Access:
    signing_key = settings.auth_secret or await pool.fetchval(
        "SELECT value FROM platform_secrets WHERE name = 'token_signing_key'")
    accounts = AccountStore(pool)
    if settings.admin_email and settings.admin_password:
        await accounts.ensure_admin(settings.admin_email, settings.admin_password)
    return Access(settings, accounts, TokenSigner(signing_key, settings.token_seconds))


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url or "", size=settings.db_pool_size)
        producer = make_producer(settings)
        await start_with_retry(producer, "gateway producer")
        consumer = await make_tail_consumer(settings, [
            topics.SEAT_RESERVED, topics.SEAT_RESERVATION_FAILED, topics.BOOKING_CONFIRMED, topics.BOOKING_CANCELLED,
            topics.BOOKING_COMMAND_REJECTED])
        key = await pool.fetchval("SELECT value FROM platform_secrets WHERE name = 'request_id_key'")
        health = ServiceHealth(pool, settings.heartbeat_stale_seconds)
        replies = ReplyWaiter(consumer, on_reply=lambda: health.seen_alive("booking"))
        app.state.gateway = Gateway(settings, pool, Publisher(producer), replies, RequestIds(key),
                                    SeatDirectory(pool), health, await _access(settings, pool))
        logging.getLogger("boxoffice.gateway").info(
            "gateway serving on %s:%d (Kafka %s)", settings.http_host, settings.http_port, settings.kafka_bootstrap)
        tasks = [asyncio.create_task(t) for t in (
            replies.run(), health.refresh_forever(), beat_forever(pool, "gateway", settings.heartbeat_seconds))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="boxoffice", version="0.1.0", lifespan=lifespan,
        description="Event-driven ticket booking: seats are held through Kafka and never sold twice.",
    )
    install_error_handlers(app)
    document_bearer(app, settings)
    app.include_router(accounts.router)
    app.include_router(bookings.router)
    app.include_router(lifecycle.router)
    app.include_router(catalog.router)
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(telemetry.router)
    app.include_router(live.router)
    app.mount("/static", StaticFiles(directory=live.WEB_DIR), name="static")
    app.add_middleware(BodySizeLimit)
    if origins := [o.strip() for o in settings.cors_origins.split(",") if o.strip()]:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
                           expose_headers=["Retry-After", "Server-Timing", "X-Request-ID"], max_age=600)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(telemetry.RequestTelemetry)
    return app


def app_from_environment() -> FastAPI:
    from boxoffice.config import get_settings
    from boxoffice.logs import configure

    settings = get_settings()
    # Worker processes are spawned without the parent's logging.
    configure("gateway", settings.log_format, logging.getLevelName(settings.log_level))
    return create_app(settings)


def serve(settings: Settings) -> None:
    """Several worker processes share the port when configured; each has its own Kafka clients."""
    import uvicorn

    from boxoffice.entrypoints.gateway.live_splice import LiveSplicingProtocol

    uvicorn.run(
        "boxoffice.entrypoints.gateway.app:app_from_environment", factory=True,
        host=settings.http_host, port=settings.http_port, workers=settings.gateway_workers,
        loop="uvloop", http=LiveSplicingProtocol, access_log=False, log_level="warning", lifespan="on",
        log_config=None,  # uvicorn's lines go through our handler: the same format (text or JSON)
        backlog=4096, timeout_keep_alive=75,
    )
