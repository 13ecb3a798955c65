"""Notification emails end to end: PostgreSQL for the event and the sent log, the embedded mailbox as the
real SMTP server, and the Kafka broker for the service as a whole."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.notification_store import NotificationStore
from boxoffice.adapters.smtp import SmtpSender
from boxoffice.bootstrap import ticket_seal
from boxoffice.config import Settings
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.tickets import Ticket, TicketSeal
from boxoffice.entrypoints import notification
from boxoffice.messages import BOOKING_CONFIRMED, SEAT_RELEASED, Message
from boxoffice.service_layer.notification_handler import NotificationHandler
from boxoffice.service_layer.notification_ports import StoredBooking
from boxoffice.service_layer.notifications import qr_png
from tests.conftest import small_event
from tests.mailboxes import mail_to, running_mailbox, wait_for_mail

SENDER = "boxoffice <tickets@boxoffice.test>"
TEST_SEAL = TicketSeal(b"k" * 32)


async def new_event(pool: asyncpg.Pool) -> EventSpec:
    spec = small_event()
    async with pool.acquire() as con:
        assert await create_event(con, spec)
    return spec


def handler_for(pool: asyncpg.Pool, smtp_port: int, first_backoff: float = 0.5,
                seal: TicketSeal = TEST_SEAL) -> NotificationHandler:
    sender = SmtpSender(f"smtp://127.0.0.1:{smtp_port}", timeout=2, total_timeout=5)
    return NotificationHandler(NotificationStore(pool), sender, SENDER, seal,
                               confirmation_links="http://127.0.0.1:8000/#verify=", first_backoff=first_backoff,
                               max_backoff=4 * first_backoff)


async def store_booking(pool: asyncpg.Pool, event: EventSpec, booking_id: str, user: str, email: str = "",
                        status: str = "confirmed", seat_ids: tuple[str, ...] = ("A2", "A1"),
                        end_reason: str | None = None) -> None:
    """The booking as the booking service leaves it (the notification service only reads it)."""
    await pool.execute(
        """INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency,
                                 expires_at, email, payment_id, end_reason)
           VALUES ($1::uuid, $2, $3, $4, $5, $6, 300, 'USD', '2029-06-01T12:10:00Z', $7, 'payment_789', $8)""",
        booking_id, f"req-{booking_id}", event.event_id, user, status, list(seat_ids), email, end_reason)


def confirmed(event: EventSpec, booking_id: str, user: str, email: str = "") -> Message:
    return Message(BOOKING_CONFIRMED, event.event_id, {
        "bookingId": booking_id, "userId": user, "email": email, "seatIds": ["A2", "A1"],
        "amount": 300.0, "currency": "USD", "paymentId": "payment_789"})


async def sent_rows(pool: asyncpg.Pool, booking_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT kind, recipient FROM notifications_sent WHERE booking_id = $1::uuid",
                            booking_id)
    return [(r["kind"], r["recipient"]) for r in rows]


async def test_a_confirmed_booking_gets_one_email_with_a_qr_code_per_seat(pool: asyncpg.Pool,
                                                                         tmp_path: Path) -> None:
    event = await new_event(pool)
    booking_id, user = str(uuid.uuid4()), f"user_{uuid.uuid4().hex[:8]}"
    address = f"{user}@boxoffice.test"
    await store_booking(pool, event, booking_id, user)
    async with running_mailbox(tmp_path) as mailbox:
        seal = await ticket_seal(pool)  # the install's key, as the notification service reads it
        handler = handler_for(pool, mailbox.smtp_port, seal=seal)
        message = confirmed(event, booking_id, user)
        await handler([message])

        [mail] = await wait_for_mail(mailbox.store, address)
        assert mail["subject"] == "Your tickets for Test event"
        assert mail["messageId"] == f"<confirmation.{booking_id}@boxoffice>"
        assert mail["from"] == SENDER
        for expected in (booking_id, "payment_789", "300.00 USD", "Main, row A, seat 1 (A1)",
                         "Main, row A, seat 2 (A2)", "Test hall, Testville", "Tuesday 1 January 2030"):
            assert expected in mail["text"]
        assert mail["html"] is not None and booking_id in mail["html"]

        # One inline PNG per seat, referenced from the HTML, encoding that seat's ticket, signed.
        images = [a for a in mail["attachments"] if a["contentType"] == "image/png"]
        assert len(images) == 2 and all(a["inline"] for a in images)
        assert all(f"cid:{a['contentId']}" in mail["html"] for a in images)
        pngs = {mailbox.store.part(mail["id"], a["contentId"])[0] for a in images}  # type: ignore[index]
        assert pngs == {qr_png(seal.issue(Ticket(event.event_id, booking_id, seat))) for seat in ("A1", "A2")}

        # Handled again, and redelivered under a new message id: still the one email.
        await handler([message])
        await handler([Message(message.type, message.event_id, message.data, message.request_id)])
        assert len(mail_to(mailbox.store, address)) == 1
        assert handler.counts == {"confirmation": 1, "duplicate": 2}
    assert await sent_rows(pool, booking_id) == [("confirmation", address)]


async def test_an_expired_hold_gets_one_expiry_notice(pool: asyncpg.Pool, tmp_path: Path) -> None:
    event = await new_event(pool)
    booking_id = str(uuid.uuid4())
    address = f"fan.{uuid.uuid4().hex[:8]}@example.com"
    released = Message(SEAT_RELEASED, event.event_id, {
        "bookingId": booking_id, "userId": "user_1", "email": address, "seatIds": ["A3"], "reason": "timeout"})
    await store_booking(pool, event, booking_id, "user_1", address, "expired", ("A3",), "timeout")
    async with running_mailbox(tmp_path) as mailbox:
        handler = handler_for(pool, mailbox.smtp_port)
        await handler([released, released])

        [mail] = await wait_for_mail(mailbox.store, address)
        assert mail["subject"] == "Your hold on Test event expired"
        assert "your hold expired" in mail["text"] and "A3" in mail["text"] and booking_id in mail["text"]
        assert mail["html"] is not None
        assert mail["messageId"] == f"<hold-expired.{booking_id}@boxoffice>"
    assert await sent_rows(pool, booking_id) == [("hold-expired", address)]


async def test_an_email_waits_for_the_mail_server_to_come_up(pool: asyncpg.Pool, tmp_path: Path) -> None:
    event = await new_event(pool)
    booking_id, user = str(uuid.uuid4()), f"user_{uuid.uuid4().hex[:8]}"
    await store_booking(pool, event, booking_id, user)
    port = free_port()
    handler = handler_for(pool, port, first_backoff=0.05)
    sending = asyncio.create_task(handler([confirmed(event, booking_id, user)]))
    try:
        async with asyncio.timeout(10):
            while handler.counts["retries"] < 2:
                await asyncio.sleep(0.01)
        assert not sending.done() and handler.last_error is not None
        assert await sent_rows(pool, booking_id) == []

        async with running_mailbox(tmp_path, smtp_port=port) as mailbox:
            async with asyncio.timeout(10):
                await sending
            assert len(mail_to(mailbox.store, f"{user}@boxoffice.test")) == 1
        assert await sent_rows(pool, booking_id) == [("confirmation", f"{user}@boxoffice.test")]
        assert handler.last_error is None
    finally:
        sending.cancel()


async def test_the_service_emails_what_it_consumes_from_kafka(pool: asyncpg.Pool, database: str, kafka: str,
                                                             tmp_path: Path) -> None:
    event = await new_event(pool)
    booking_id, user = str(uuid.uuid4()), f"user_{uuid.uuid4().hex[:8]}"
    await store_booking(pool, event, booking_id, user)
    async with running_mailbox(tmp_path) as mailbox:
        settings = Settings(kafka_bootstrap=kafka, database_url=database,
                            smtp_url=f"smtp://127.0.0.1:{mailbox.smtp_port}")
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        name = f"notification-test-{uuid.uuid4().hex[:8]}"
        service = asyncio.create_task(notification.main(settings, name))
        try:
            for message in (confirmed(event, booking_id, user), confirmed(event, booking_id, user)):
                await producer.send_and_wait(message.type, message.encode(), key=message.key)
            await wait_for_mail(mailbox.store, f"{user}@boxoffice.test", timeout=60)
            # The service's heartbeat shows it has handled the second copy too: skipped, not sent again.
            async with asyncio.timeout(30):
                while await pool.fetchval("SELECT (info->'emails'->>'duplicate')::int FROM service_heartbeats "
                                          "WHERE service = $1", name) != 1:
                    await asyncio.sleep(0.1)
            assert len(mail_to(mailbox.store, f"{user}@boxoffice.test")) == 1
        finally:
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)
            await producer.stop()


async def test_the_store_reads_a_booking_as_postgresql_has_it(pool: asyncpg.Pool) -> None:
    event = await new_event(pool)
    booking_id = str(uuid.uuid4())
    await store_booking(pool, event, booking_id, "user_1", "fan@example.com", "refunded", ("A2", "A1"), "refunded")
    store = NotificationStore(pool)
    assert await store.booking(booking_id) == StoredBooking(
        booking_id, event.event_id, "user_1", "fan@example.com", "refunded", ("A2", "A1"), Decimal("300.00"), "USD",
        datetime(2029, 6, 1, 12, 10, tzinfo=UTC), "payment_789", "refunded")
    assert await store.booking(str(uuid.uuid4())) is None


async def test_a_forged_confirmation_of_a_pending_booking_is_not_emailed(pool: asyncpg.Pool, tmp_path: Path) -> None:
    event = await new_event(pool)
    booking_id = str(uuid.uuid4())
    await store_booking(pool, event, booking_id, "user_1", "fan@example.com", "pending")
    async with running_mailbox(tmp_path) as mailbox:
        handler = handler_for(pool, mailbox.smtp_port)
        await handler([confirmed(event, booking_id, "attacker", "attacker@evil.co")])
        assert handler.counts == {"unfounded": 1} and mailbox.store.ids() == []
    assert await sent_rows(pool, booking_id) == []
