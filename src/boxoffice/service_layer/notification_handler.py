"""Sends each email once per (booking, kind): a row in `notifications_sent` is written after the send,
and a message whose row exists is skipped, also when Kafka redelivers it. An email about a booking goes out
only when the booking in PostgreSQL bears the message out, and says what the booking says, to the booking's
address; a message it does not bear out is logged and skipped, and records nothing. An email that can never
be sent (refused for good, or an address mail cannot go to) does not hold up the others: the rest of the
batch is handled, then `UndeliverableEmails` names it, for the consumer loop to make a dead letter of."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from boxoffice import metrics
from boxoffice.domain.tickets import TicketSeal
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message, in_asked_order, utc_now
from boxoffice.service_layer import notifications
from boxoffice.service_layer.mail import (
    MailSender,
    PermanentMailError,
    TransientMailError,
    UndeliverableEmails,
)
from boxoffice.service_layer.notification_ports import NotificationRecords

log = logging.getLogger(__name__)

# The topics whose messages call for an email.
TOPICS = list(notifications.KIND_BY_TOPIC)

# The canonical form only: uuid.UUID() also takes braces, "urn:uuid:" and a line break at either end, and
# the id goes into headers.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class NotificationHandler:
    """A batch handler for the consumer loop. A mail server that fails is retried with exponential back-off
    until it takes the email: this holds up only this consumer, and the offsets wait with it."""

    def __init__(self, records: NotificationRecords, sender: MailSender, mail_from: str, seal: TicketSeal, *,
                 confirmation_links: str, first_backoff: float = 0.5, max_backoff: float = 30.0,
                 clock: Callable[[], datetime] = utc_now,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._records, self._sender, self._from, self._seal = records, sender, mail_from, seal
        self._confirmation_links = confirmation_links  # how the links that confirm an address begin
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._clock, self._sleep = clock, sleep
        self.counts: Counter[str] = Counter()
        self.last_error: str | None = None
        self._handling: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # per subject: its lock, and who holds or waits

    def info(self) -> dict[str, Any]:
        return {"emails": dict(self.counts), **({"lastMailError": self.last_error} if self.last_error else {})}

    async def __call__(self, batch: list[Message]) -> None:
        undeliverable: dict[str, PermanentMailError] = {}
        for message in in_asked_order(batch):  # a booking's emails come on several topics
            token = REQUEST_ID.set(message.request_id)
            try:
                await self.handle(message)
            except PermanentMailError as exc:
                undeliverable[message.id] = exc
            finally:
                REQUEST_ID.reset(token)
        if undeliverable:
            raise UndeliverableEmails(undeliverable) from next(iter(undeliverable.values()))

    async def handle(self, message: Message) -> None:
        """Raises PermanentMailError for an email that can never be sent; retries a failing server itself.
        Messages about one booking (or one address check) are handled one after the other, in the order they
        came, also when several are handled at once: two copies of one message make one email."""
        kind = notifications.kind_of(message)
        if kind is None:
            return
        about = notifications.subject_id(kind, message.data)
        if not _UUID.fullmatch(about):
            log.error("%s %s has no valid id (%r); no email", message.type, message.id, about)
            self.counts["malformed"] += 1
            return
        async with self._one_at_a_time(about):
            await self._handle(message, kind, about)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, about: str) -> AsyncIterator[None]:
        lock, users = self._handling.setdefault(about, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:  # asyncio's locks are taken in the order they were asked for
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._handling[about]

    async def _handle(self, message: Message, kind: str, about: str) -> None:
        if await self._records.was_sent(about, kind):
            self.counts["duplicate"] += 1
            return
        what = f"{kind} {about}" if kind == notifications.EMAIL_CHECK else f"{kind} for booking {about}"
        try:
            if kind == notifications.EMAIL_CHECK:
                if foreign := notifications.foreign_link(message, self._confirmation_links):
                    log.warning("%s %s: %s; no %s email", message.type, message.id, foreign, kind)
                    self.counts["unfounded"] += 1
                    return
                email = notifications.email_check_email(message, self._from, self._clock())
            else:
                booking = await self._records.booking(about)
                unfounded = notifications.unfounded(kind, booking)
                if booking is None or unfounded:
                    # Not an error to retry or dead-letter: the message may be forged, and is no use either way.
                    log.warning("%s %s: %s; no %s email", message.type, message.id, unfounded, kind)
                    self.counts["unfounded"] += 1
                    return
                if notifications.needless(kind, booking):
                    self.counts["needless"] += 1
                    return
                event = await self._records.event_info(booking.event_id, list(booking.seat_ids))
                email = notifications.render(kind, booking, event, self._from, self._clock(), self._seal)
        except PermanentMailError as exc:
            self._refused(what, exc)
            raise
        await self._deliver(email, what)
        await self._records.record_sent(about, kind, str(email["To"]), str(email["Message-ID"]))
        self.counts[kind] += 1
        metrics.EMAILS_SENT.inc(kind)

    async def _deliver(self, email: EmailMessage, what: str) -> None:
        """Returns once sent; a PermanentMailError is not retried here (it would fail again)."""
        delay = self._first_backoff
        attempt = 1
        while True:
            try:
                await self._sender.send(email)
                if attempt > 1:
                    log.info("%s sent after %d attempts", what, attempt)
                self.last_error = None
                return
            except PermanentMailError as exc:
                self._refused(f"{what} to {email['To']}", exc)
                raise
            except TransientMailError as exc:
                self.last_error = str(exc)
                self.counts["retries"] += 1
                log.warning("%s not sent (attempt %d): %s; retrying in %.1f s", what, attempt, exc, delay)
            await self._sleep(delay)
            delay = min(delay * 2, self._max_backoff)
            attempt += 1

    def _refused(self, what: str, exc: PermanentMailError) -> None:
        log.error("%s cannot be sent, not retried: %s", what, exc)
        self.counts["refused"] += 1
