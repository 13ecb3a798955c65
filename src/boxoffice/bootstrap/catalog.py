"""The catalog service's parts: its unit of work on PostgreSQL."""

from __future__ import annotations

import asyncpg

from boxoffice.adapters.catalog_store import PostgresCatalogUnitOfWork
from boxoffice.bootstrap import ServiceRuntime, run_consumer_service
from boxoffice.service_layer.catalog import TOPICS, CatalogHandler


def catalog_handler(pool: asyncpg.Pool) -> CatalogHandler:
    return CatalogHandler(lambda: PostgresCatalogUnitOfWork(pool))


async def serve(rt: ServiceRuntime) -> None:
    await run_consumer_service(rt, TOPICS, catalog_handler(rt.pool), latency_path=False)
