"""The booking service's parts: its unit of work on PostgreSQL, the outbox relay and the expiry scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from boxoffice.adapters.booking_uow import PostgresBookingUnitOfWork
from boxoffice.adapters.expiry import ExpiryScheduler
from boxoffice.adapters.outbox import OutboxRelay
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.bootstrap import ServiceRuntime
from boxoffice.bootstrap.payment import payment_provider
from boxoffice.config import Settings
from boxoffice.messages import utc_now
from boxoffice.service_layer.booking import BookingService
from boxoffice.service_layer.decisions import BookingRules


def booking_rules(settings: Settings) -> BookingRules:
    return BookingRules(timedelta(seconds=settings.hold_seconds), settings.max_seats_per_booking,
                        settings.seats_per_user_limit)


@dataclass
class BookingProcess:
    service: BookingService
    relay: OutboxRelay
    expiry: ExpiryScheduler


def booking_process(rt: ServiceRuntime, signing_key: str) -> BookingProcess:
    relay = OutboxRelay(rt.pool, rt.publisher, producer="booking", retain_seconds=rt.settings.outbox_retention)
    expiry = ExpiryScheduler(rt.pool, rt.publisher, utc_now, longest_sleep=rt.settings.hold_seconds)
    service = BookingService(lambda: PostgresBookingUnitOfWork(rt.pool), relay, booking_rules(rt.settings), utc_now,
                             holds=expiry, admissions=QueueTokens(signing_key), cards=payment_provider(rt))
    return BookingProcess(service, relay, expiry)
