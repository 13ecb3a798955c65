"""No card number beyond the gateway: a payment's card is tokenised by the provider at the gateway, and the
number is then found on no topic, in no table and in no WAL file. Each search first finds something it must
(the booking's id), so that an empty search means the number is not there, not that nothing was read."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from boxoffice.messages import BOOKING_CONFIRMATION_REQUESTED, PAYMENT_REQUESTED, Message, decode
from tests.e2e.api_client import wait_for
from tests.platforms import RunningPlatform

DECLINED = "4000000000000002"


def unique_card() -> str:
    """A valid test number no other test uses, so that finding it anywhere means this payment put it there."""
    digits = [4, *(random.randrange(10) for _ in range(14))]
    total = sum(d if i % 2 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


@pytest.fixture
async def client(platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as c:
        yield c


async def every_record(bootstrap: str) -> list[tuple[str, bytes]]:
    """Every message on every topic, from the beginning: (topic, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in await consumer.topics()
                      for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[str, bytes]] = []
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=200, max_records=5000)).items():
                    found += [(tp.topic, r.value) for r in records if r.value is not None]
        return found
    finally:
        await consumer.stop()


async def tables_holding(dsn: str, text: str) -> list[str]:
    """The tables with a row that holds `text`, as text or in a bytea column (shown as hex)."""
    connection = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        hex_text = text.encode().hex()
        return [table for table in tables if await connection.fetchval(
            f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0',
            text, hex_text)]
    finally:
        await connection.close()


def wal_holding(pgdata: Path, text: str) -> list[str]:
    return [f.name for f in sorted((pgdata / "pg_wal").glob("0*")) if text.encode() in f.read_bytes()]


async def test_a_paid_cards_number_is_nowhere_beyond_the_gateway(client: httpx.AsyncClient,
                                                                 platform: RunningPlatform) -> None:
    card = unique_card()
    event_id = f"card_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Card show", "venue": {"name": "Hall"}, "startsAt": "2027-09-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 25.0}],
        "rows": [{"row": "A", "seats": 2, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    held = (await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1"],
                                                  "userId": "card_buyer"})).json()
    booking_id = held["bookingId"]
    paid = await client.put(f"/bookings/{booking_id}/confirm",
                            json={"paymentId": f"pay_{uuid.uuid4().hex[:6]}", "amount": held["amount"], "card": card})
    assert paid.status_code == 200, paid.text
    runtime = platform.runtime

    async def on_every_topic() -> list[tuple[str, bytes]] | None:
        records = await every_record(str(runtime["kafka_bootstrap"]))
        topics = {topic for topic, value in records if booking_id.encode() in value}
        wanted = {"booking.confirmation.requested", "payment.requested", "payment.succeeded", "booking.confirmed"}
        return records if wanted <= topics else None
    records = await wait_for(on_every_topic)
    assert [topic for topic, value in records if card.encode() in value] == []
    assert [topic for topic, value in records if card[-4:].encode() in value and b"cardToken" in value
            and booking_id.encode() in value]  # what travels instead: the token and the last four digits

    dsn = str(runtime["database_url"])
    assert {"bookings", "payments"} <= set(await tables_holding(dsn, booking_id))
    assert await tables_holding(dsn, card) == []
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT card_last4 FROM payments WHERE booking_id = $1::uuid",
                                          booking_id) == card[-4:]
    finally:
        await connection.close()

    # A commit's WAL is on disk before the commit returns: the outbox rows, published and deleted or not, too.
    pgdata = platform.data_dir / "pgdata"
    assert wal_holding(pgdata, booking_id)
    assert wal_holding(pgdata, card) == []


async def test_a_confirmation_sent_before_tokens_is_charged_by_token(client: httpx.AsyncClient,
                                                                     platform: RunningPlatform) -> None:
    """A booking.confirmation.requested naming the number, as the gateway sent them before the upgrade: the
    booking service passes on only a token, and the declined test card is still declined."""
    event_id = f"card_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Old card show", "venue": {"name": "Hall"}, "startsAt": "2027-09-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 25.0}],
        "rows": [{"row": "A", "seats": 2, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    held = (await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A2"],
                                                  "userId": "old_card_buyer"})).json()
    booking_id = held["bookingId"]
    runtime = platform.runtime
    old = Message(BOOKING_CONFIRMATION_REQUESTED, event_id, {"bookingId": booking_id, "paymentId": "pay_old",
                                                             "amount": held["amount"], "card": DECLINED},
                  f"req_{uuid.uuid4().hex[:8]}")
    producer = AIOKafkaProducer(bootstrap_servers=str(runtime["kafka_bootstrap"]), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(BOOKING_CONFIRMATION_REQUESTED, old.encode(), key=old.key)
    finally:
        await producer.stop()

    async def declined() -> bool:
        return (await client.get(f"/bookings/{booking_id}")).json()["status"] == "payment_failed"
    assert await wait_for(declined)
    records = [(topic, value) for topic, value in await every_record(str(runtime["kafka_bootstrap"]))
               if booking_id.encode() in value]
    assert [topic for topic, value in records if DECLINED.encode() in value] == [BOOKING_CONFIRMATION_REQUESTED]
    [asked] = [decode(value) for topic, value in records if topic == PAYMENT_REQUESTED]
    assert "card" not in asked.data and asked.data["cardLast4"] == "0002"
