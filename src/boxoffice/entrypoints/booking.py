"""The booking service: the only writer of seats and bookings — holds, confirmations, releases, expiry."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.adapters.lifecycle_store import LIFECYCLE_TOPICS
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    # One connection stays with the expiry scheduler while this process is the one that schedules.
    async with bootstrap.runtime(settings, "booking", produces=True, pool_size=5) as rt:
        service = bootstrap.booking_service(rt)
        await bootstrap.run_consumer_service(
            rt, [topics.SEAT_RESERVATION_REQUESTED, *LIFECYCLE_TOPICS], service.handler,
            extra=[service.relay.run(), service.expiry.run()],
            info=lambda: {**service.handler.stats(), "published": service.relay.published,
                          "timeoutsPublished": service.expiry.published, "schedulesExpiry": service.expiry.leading},
        )
