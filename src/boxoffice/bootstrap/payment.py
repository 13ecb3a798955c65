"""The payment service's parts: the configured provider, its unit of work on PostgreSQL, the outbox relay."""

from __future__ import annotations

import importlib

import asyncpg

from boxoffice.adapters.outbox import OutboxRelay
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.adapters.payment_store import PostgresPaymentUnitOfWork
from boxoffice.bootstrap import ServiceRuntime, run_consumer_service
from boxoffice.service_layer.payment_ports import PaymentProvider
from boxoffice.service_layer.payments import TOPICS, PaymentHandler
from boxoffice.service_layer.ports import OutboxSink


def payment_provider(rt: ServiceRuntime) -> PaymentProvider:
    """The provider named by BOXOFFICE_PAYMENT_PROVIDER: "simulated", or "module:factory" taking the runtime."""
    name = rt.settings.payment_provider
    if name == "simulated":
        return SimulatedProvider(rt.pool, rt.settings.payment_latency_ms / 1000)
    module, _, factory = name.partition(":")
    return getattr(importlib.import_module(module), factory)(rt)  # type: ignore[no-any-return]


def payment_handler(pool: asyncpg.Pool, provider: PaymentProvider, outbox: OutboxSink) -> PaymentHandler:
    return PaymentHandler(lambda: PostgresPaymentUnitOfWork(pool), provider, outbox)


def payment_service(rt: ServiceRuntime) -> tuple[PaymentHandler, OutboxRelay]:
    relay = OutboxRelay(rt.pool, rt.publisher, producer="payment", retain_seconds=rt.settings.outbox_retention)
    return payment_handler(rt.pool, payment_provider(rt), relay), relay


async def serve(rt: ServiceRuntime) -> None:
    handler, relay = payment_service(rt)
    await run_consumer_service(rt, TOPICS, handler, extra=[relay.run()],
                               info=lambda: {"charged": handler.charged, "published": relay.published})
