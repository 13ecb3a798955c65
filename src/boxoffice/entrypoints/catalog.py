"""The catalog service: events, seat maps and live availability counts."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.config import Settings
from boxoffice.service_layer.catalog import CatalogHandler


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "catalog", produces=False, pool_size=3) as rt:
        await bootstrap.run_consumer_service(
            rt, [topics.EVENT_CREATION_REQUESTED, topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED],
            CatalogHandler(rt.pool), latency_path=False)
