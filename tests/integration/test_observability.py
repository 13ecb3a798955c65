"""Against a real PostgreSQL: the stores and handlers count what committed, and their log lines carry the
requestId of the message being handled."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.bootstrap.payment import payment_handler
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.commands import ReserveSeats
from boxoffice.logs import JsonFormatter
from boxoffice.messages import Message, decode
from tests.booking_service import decide, expire, reserve


class Outbox:
    def __init__(self) -> None:
        self.rows: list = []

    def submit(self, rows: list) -> None:
        self.rows += rows


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The project's log lines as the JSON formatter writes them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("boxoffice")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines_of(buffer: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def count(counter: metrics.Counter, *labels: str) -> float:
    return counter.values.get(labels, 0)


async def test_holds_refusals_payments_and_confirmations_are_counted_and_logged_with_their_request_id(
        pool: asyncpg.Pool, event: EventSpec, json_lines: io.StringIO) -> None:
    granted, refused = count(metrics.HOLDS_GRANTED), count(metrics.HOLDS_REFUSED, "seat_unavailable")
    paid, confirmed = count(metrics.PAYMENTS, "succeeded"), count(metrics.BOOKINGS_CONFIRMED)
    rejected = count(metrics.BOOKING_COMMANDS_REJECTED, "confirm", "booking_not_found")
    now = datetime.now(UTC)

    rows = await reserve(
        pool, [ReserveSeats("req_obs_1", event.event_id, "fan_1", ["A1"]),
         ReserveSeats("req_obs_2", event.event_id, "fan_2", ["A1"])], timedelta(minutes=10), now)
    booking_id = str(decode(rows[0].payload).data["bookingId"])
    # A redelivered request replays its stored outcome: not a second decision.
    await reserve(pool, [ReserveSeats("req_obs_1", event.event_id, "fan_1", ["A1"])],
                  timedelta(minutes=10), now)
    assert count(metrics.HOLDS_GRANTED) == granted + 1
    assert count(metrics.HOLDS_REFUSED, "seat_unavailable") == refused + 1

    outbox = Outbox()
    confirm = Message(topics.BOOKING_CONFIRMATION_REQUESTED, event.event_id,
                      {"bookingId": booking_id, "paymentId": "pay_obs", "amount": 150.0}, "req_obs_confirm")
    payment_requested = decode((await decide(pool, [confirm], now))[0].payload)
    provider = SimulatedProvider(pool, latency_seconds=0)
    await payment_handler(pool, provider, outbox)([payment_requested])
    await decide(pool, [decode(outbox.rows[0].payload)], now)
    unknown = str(uuid.uuid4())
    await decide(pool, [
        Message(topics.BOOKING_CONFIRMATION_REQUESTED, event.event_id,
                {"bookingId": unknown, "paymentId": "p", "amount": 1.0}, "req_obs_unknown"),
        Message(topics.PAYMENT_SUCCEEDED, event.event_id, {"bookingId": "not-a-uuid"}, "req_obs_malformed"),
    ], now)

    assert count(metrics.PAYMENTS, "succeeded") == paid + 1
    assert count(metrics.BOOKINGS_CONFIRMED) == confirmed + 1
    assert count(metrics.BOOKING_COMMANDS_REJECTED, "confirm", "booking_not_found") == rejected + 1
    by_message = {line["message"]: line for line in lines_of(json_lines)}
    charged = by_message[f"payment pay_obs for booking {booking_id} succeeded"]
    done = by_message[f"booking {booking_id} confirmed; its seats are booked"]
    assert charged["requestId"] == done["requestId"] == "req_obs_confirm"
    assert charged["logger"] == "boxoffice.service_layer.payments" and done["level"] == "INFO"
    assert by_message[f"confirm of booking {unknown} refused: booking_not_found"]["requestId"] == "req_obs_unknown"
    # Logged while the message was handled: the id comes from the context.
    dropped = next(line for line in by_message.values() if line["message"].startswith("dropping payment.succeeded"))
    assert dropped["requestId"] == "req_obs_malformed" and dropped["level"] == "ERROR"


async def test_expiries_are_counted_once_committed(pool: asyncpg.Pool, event: EventSpec,
                                                   json_lines: io.StringIO) -> None:
    expired = count(metrics.HOLDS_EXPIRED)
    start = datetime.now(UTC)
    rows = await reserve(
        pool, [ReserveSeats(f"req_exp_{n}", event.event_id, "fan", [f"B{n}"]) for n in (1, 2)], timedelta(seconds=1),
        start)
    bookings = [str(decode(r.payload).data["bookingId"]) for r in rows]

    await expire(pool, event.event_id, bookings, start + timedelta(seconds=2))
    await expire(pool, event.event_id, bookings, start + timedelta(seconds=3))  # already expired: nothing

    assert count(metrics.HOLDS_EXPIRED) == expired + 2
    assert [line["message"] for line in lines_of(json_lines)] == ["2 holds expired; their seats are available again"]
