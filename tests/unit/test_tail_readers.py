"""The tail readers without a consumer group (the gateway's replies, the realtime service's seat changes) skip a
malformed message, count and log it, and go on with the good ones."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.adapters.kafka import RestartedLogs
from boxoffice.bootstrap.realtime import _tail
from boxoffice.entrypoints.gateway.replies import ReplyWaiter
from boxoffice.messages import Message

BOOKING = "0b5e4c1e-5f0a-4e7b-9a55-2d7c1f7a9e01"
RESERVED = {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1"], "amount": 150.0, "currency": "USD",
            "expiresAt": "2030-01-01T12:10:00.000Z", "status": "pending", "seq": 1}


def record(topic: str, value: bytes, offset: int, partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"ev_1", value, None, 4, len(value), ())


def wrong(message: Message, **data: Any) -> bytes:
    return Message(message.type, message.event_id, {**message.data, **data}, message.request_id).encode()


class TailConsumer:
    """Hands out the given batches, then waits like a consumer with nothing new."""

    def __init__(self, *batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        self._batches = list(batches)

    def assignment(self) -> set[TopicPartition]:
        return set()  # no partition to check for a restarted log

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, Any]:
        if self._batches:
            return self._batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}


def skipped(topic: str) -> float:
    return metrics.INVALID_SKIPPED.values.get((topic,), 0)


async def test_a_malformed_reply_is_skipped_and_the_good_ones_still_answer(caplog: pytest.LogCaptureFixture) -> None:
    held = Message(topics.SEAT_RESERVED, "ev_1", RESERVED, "req_held")
    refused = Message(topics.SEAT_RESERVATION_FAILED, "ev_1",
                      {"userId": "user_2", "seatIds": ["A1"], "code": "seat_unavailable", "reason": "Seat A1 is taken"},
                      "req_refused")
    confirmed = Message(topics.BOOKING_CONFIRMED, "ev_1", {"bookingId": BOOKING, "seatIds": ["A1"], "amount": 150.0,
                                                           "currency": "USD", "paymentId": "pay_1"}, "req_pay")
    reserved_tp, confirmed_tp = TopicPartition(topics.SEAT_RESERVED, 0), TopicPartition(topics.BOOKING_CONFIRMED, 3)
    consumer = TailConsumer({
        reserved_tp: [
            record(topics.SEAT_RESERVED, b"\x00 not json", 10),
            # Carries a waiting request's id: answering with it would fail in the route.
            record(topics.SEAT_RESERVED, wrong(held, amount="lots"), 11),
            record(topics.SEAT_RESERVED, held.encode(), 12),
        ],
        TopicPartition(topics.SEAT_RESERVATION_FAILED, 0): [
            record(topics.SEAT_RESERVATION_FAILED, refused.encode(), 5)],
        confirmed_tp: [
            record(topics.BOOKING_CONFIRMED, wrong(confirmed, seatIds="A1"), 7, partition=3),
            record(topics.BOOKING_CONFIRMED, orjson.dumps([1, 2]), 8, partition=3),
            record(topics.BOOKING_CONFIRMED, confirmed.encode(), 9, partition=3),
        ],
    })
    replies_seen: list[bool] = []
    waiter = ReplyWaiter(consumer, on_reply=lambda: replies_seen.append(True))  # type: ignore[arg-type]
    before = skipped(topics.SEAT_RESERVED), skipped(topics.BOOKING_CONFIRMED)
    reply_to_hold, reply_to_refusal = waiter.expect("req_held"), waiter.expect("req_refused")
    by_booking = waiter.expect_booking(BOOKING, lambda m: m.type == topics.BOOKING_CONFIRMED)

    running = asyncio.ensure_future(waiter.run())
    try:
        with caplog.at_level(logging.WARNING):
            async with asyncio.timeout(5):
                answers = await asyncio.gather(reply_to_hold, reply_to_refusal, by_booking)
    finally:
        running.cancel()

    assert [(m.type, m.id) for m in answers] == [(held.type, held.id), (refused.type, refused.id),
                                                 (confirmed.type, confirmed.id)]
    assert replies_seen
    assert (skipped(topics.SEAT_RESERVED), skipped(topics.BOOKING_CONFIRMED)) == (before[0] + 2, before[1] + 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # orjson's own words follow "not JSON: ".
    assert warnings[0].startswith("skipping malformed message on seat.reserved partition 0 offset 10: not JSON: ")
    assert warnings[1:] == [
        "skipping malformed message on seat.reserved partition 0 offset 11: data.amount: "
        "Input should be a valid number",
        "skipping malformed message on booking.confirmed partition 3 offset 7: data.seatIds: "
        "Input should be a valid list",
        "skipping malformed message on booking.confirmed partition 3 offset 8: not a JSON object",
    ]


class Hub:
    def __init__(self) -> None:
        self.batches: list[list[Message]] = []
        self.received = asyncio.Event()

    def on_messages(self, messages: list[Message]) -> None:
        self.batches.append(messages)
        self.received.set()


async def test_the_realtime_tail_hands_the_hub_only_well_formed_seat_changes() -> None:
    held = Message(topics.SEAT_RESERVED, "ev_1", RESERVED)
    released = Message(topics.SEAT_RELEASED, "ev_1", {"bookingId": BOOKING, "seatIds": ["A1"], "reason": "timeout",
                                                      "seq": 2})
    consumer = TailConsumer({
        TopicPartition(topics.SEAT_RESERVED, 1): [
            record(topics.SEAT_RESERVED, wrong(held, seq="1"), 0, partition=1),
            record(topics.SEAT_RESERVED, held.encode(), 1, partition=1)],
        TopicPartition(topics.SEAT_RELEASED, 1): [
            record(topics.SEAT_RELEASED, wrong(released, seatIds=[{"seat": "A1"}]), 0, partition=1),
            record(topics.SEAT_RELEASED, released.encode(), 1, partition=1),
            # Read from the topic it does not belong to.
            record(topics.SEAT_RELEASED, held.encode(), 2, partition=1)],
    })
    hub = Hub()
    before = skipped(topics.SEAT_RESERVED), skipped(topics.SEAT_RELEASED)

    running = asyncio.ensure_future(_tail(consumer, hub, RestartedLogs(consumer)))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(5):
            await hub.received.wait()
    finally:
        running.cancel()

    assert [[m.id for m in batch] for batch in hub.batches] == [[held.id, released.id]]
    assert (skipped(topics.SEAT_RESERVED), skipped(topics.SEAT_RELEASED)) == (before[0] + 1, before[1] + 2)
