"""The notification service: a confirmation email per confirmed booking, a notice per release."""

from __future__ import annotations

import logging

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.adapters.notification_store import NotificationStore
from boxoffice.adapters.smtp import EMBEDDED_MAILBOX_PORT, SmtpSender
from boxoffice.config import Settings
from boxoffice.service_layer.notification_handler import NotificationHandler

TOPICS = [topics.BOOKING_CONFIRMED, topics.SEAT_RELEASED]


async def main(settings: Settings, service: str = "notification") -> None:
    """`service` names the consumer group and the heartbeat row."""
    url = settings.smtp_url or f"smtp://127.0.0.1:{settings.mailbox_smtp_port or EMBEDDED_MAILBOX_PORT}"
    if not settings.smtp_url:
        logging.getLogger(__name__).warning("BOXOFFICE_SMTP_URL is unset: sending to the embedded mailbox at %s",
                                            url)
    sender = SmtpSender(url)  # a malformed URL stops the service here, with the reason
    async with bootstrap.runtime(settings, service, produces=False, pool_size=2) as rt:
        handler = NotificationHandler(NotificationStore(rt.pool), sender, settings.mail_from)
        await bootstrap.run_consumer_service(rt, TOPICS, handler, info=handler.info, latency_path=False)
