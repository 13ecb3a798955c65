"""The notification service's parts: the mail server it sends through and its records in PostgreSQL."""

from __future__ import annotations

import logging

import asyncpg

from boxoffice.adapters.notification_store import NotificationStore
from boxoffice.adapters.smtp import EMBEDDED_MAILBOX_PORT, SmtpSender
from boxoffice.bootstrap import ServiceRuntime, run_consumer_service, ticket_seal
from boxoffice.config import Settings
from boxoffice.domain.tickets import TicketSeal
from boxoffice.service_layer.mail import MailSender
from boxoffice.service_layer.notification_handler import TOPICS, NotificationHandler
from boxoffice.service_layer.notifications import confirmation_link_prefix

log = logging.getLogger(__name__)


def mail_sender(settings: Settings) -> SmtpSender:
    """BOXOFFICE_SMTP_URL, or the embedded mailbox. A malformed URL raises here, with the reason."""
    url = settings.smtp_url or f"smtp://127.0.0.1:{settings.mailbox_smtp_port or EMBEDDED_MAILBOX_PORT}"
    if not settings.smtp_url:
        log.warning("BOXOFFICE_SMTP_URL is unset: sending to the embedded mailbox at %s", url)
    return SmtpSender(url, lines=settings.smtp_connections)


def notification_handler(pool: asyncpg.Pool, sender: MailSender, mail_from: str, seal: TicketSeal,
                         public_base_url: str) -> NotificationHandler:
    return NotificationHandler(NotificationStore(pool), sender, mail_from, seal,
                               confirmation_links=confirmation_link_prefix(public_base_url))


async def serve(rt: ServiceRuntime, sender: MailSender) -> None:
    handler = notification_handler(rt.pool, sender, rt.settings.mail_from, await ticket_seal(rt.pool),
                                   rt.settings.public_base_url)
    concurrency = rt.settings.notification_concurrency
    await run_consumer_service(rt, TOPICS, handler, info=handler.info, latency_path=False,
                               concurrency=concurrency if concurrency > 1 else None)
