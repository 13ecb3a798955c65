"""The booking service: the only writer of seats and bookings."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "booking", produces=True, pool_size=4) as rt:
        handler, relay = bootstrap.booking_handler(rt)
        await bootstrap.run_consumer_service(
            rt, [topics.SEAT_RESERVATION_REQUESTED], handler, extra=[relay.run()],
            info=lambda: {**handler.stats(), "published": relay.published},
        )
