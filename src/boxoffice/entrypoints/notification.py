"""The notification service: a confirmation email per confirmed booking, a notice per release."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap import notification
from boxoffice.config import Settings


async def main(settings: Settings, service: str = "notification") -> None:
    """`service` names the consumer group and the heartbeat row."""
    sender = notification.mail_sender(settings)  # before connecting: a malformed URL stops the service here
    async with bootstrap.runtime(settings, service, produces=False, pool_size=2) as rt:
        await notification.serve(rt, sender)
