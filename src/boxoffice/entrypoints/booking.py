"""The booking service: the only writer of seats and bookings — holds, confirmations, releases, expiry."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap.booking import booking_process
from boxoffice.config import Settings
from boxoffice.service_layer.booking import TOPICS


async def main(settings: Settings) -> None:
    # One connection stays with the expiry scheduler while this process is the one that schedules.
    async with bootstrap.runtime(settings, "booking", produces=True, pool_size=5) as rt:
        # The waiting room's access tokens are checked again here, with the key the gateway signs them with.
        process = booking_process(rt, await bootstrap.signing_key(rt.settings, rt.pool))
        await bootstrap.run_consumer_service(
            rt, TOPICS, process.service, extra=[process.relay.run(), process.expiry.run()],
            info=lambda: {**process.service.stats(), "published": process.relay.published,
                          "timeoutsPublished": process.expiry.published, "schedulesExpiry": process.expiry.leading},
        )
