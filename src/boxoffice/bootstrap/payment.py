"""The payment service's parts: the configured provider, its unit of work on PostgreSQL, the outbox relay."""

from __future__ import annotations

import asyncio
import importlib
import logging

import asyncpg

from boxoffice.adapters.outbox import OutboxRelay
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.adapters.payment_store import PostgresPaymentUnitOfWork
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.bootstrap import ServiceRuntime, run_consumer_service
from boxoffice.config import Settings
from boxoffice.logs import Outage
from boxoffice.service_layer.charging import ChargePolicy
from boxoffice.service_layer.payment_ports import PaymentProvider
from boxoffice.service_layer.payments import TOPICS, PaymentHandler
from boxoffice.service_layer.ports import OutboxSink

log = logging.getLogger(__name__)

RETRY_SWEEP_SECONDS = 1.0


def payment_provider(rt: ServiceRuntime) -> PaymentProvider:
    """The provider named by BOXOFFICE_PAYMENT_PROVIDER: "simulated", or "module:factory" taking the runtime."""
    name = rt.settings.payment_provider
    settings = rt.settings
    if name == "simulated":
        p99 = settings.payment_latency_p99_ms
        return SimulatedProvider(rt.pool, settings.payment_latency_ms / 1000, p99 / 1000 if p99 else None,
                                 settings.payment_failure_rate)
    module, _, factory = name.partition(":")
    return getattr(importlib.import_module(module), factory)(rt)  # type: ignore[no-any-return]


def charge_policy(settings: Settings) -> ChargePolicy:
    return ChargePolicy(attempts=settings.payment_attempts, timeout_seconds=settings.payment_timeout_seconds)


def payment_handler(pool: asyncpg.Pool, provider: PaymentProvider, outbox: OutboxSink,
                    policy: ChargePolicy | None = None) -> PaymentHandler:
    return PaymentHandler(lambda: PostgresPaymentUnitOfWork(pool), provider, outbox, policy)


def payment_service(rt: ServiceRuntime) -> tuple[PaymentHandler, OutboxRelay]:
    relay = OutboxRelay(rt.pool, rt.publisher, producer="payment", retain_seconds=rt.settings.outbox_retention)
    return payment_handler(rt.pool, payment_provider(rt), relay, charge_policy(rt.settings)), relay


async def retry_postponed_forever(handler: PaymentHandler, every: float = RETRY_SWEEP_SECONDS) -> None:
    """Asks again about postponed charges as their time comes; a database outage only delays it."""
    retrying = Outage(log, "retrying postponed charges")
    while True:
        try:
            while await handler.retry_postponed() > 0:
                pass  # more may be due
        except TRANSIENT_ERRORS as exc:
            retrying.failed(exc)
        else:
            retrying.recovered()
        await asyncio.sleep(every)


async def serve(rt: ServiceRuntime) -> None:
    handler, relay = payment_service(rt)
    await run_consumer_service(rt, TOPICS, handler, extra=[relay.run(), retry_postponed_forever(handler)],
                               info=lambda: {"charged": handler.charged, "published": relay.published},
                               concurrency=rt.settings.payment_concurrency)
