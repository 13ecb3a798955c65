"""Messages no gateway would send, put straight on every consumed topic keyed by the demo event: each ends in
its topic's dead letters, and the sale goes on — holds answered 201 / 409 at once, payment and email work."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from boxoffice import messages as topics
from boxoffice.adapters.dead_letters import read_dead_letters
from tests.e2e.api_client import book, wait_for
from tests.platforms import RunningPlatform

EVENT = "taylor_swift_concert"


@pytest.fixture
async def client(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as http:
        yield http


def envelope(topic: str, data: object, **fields: object) -> bytes:
    body = {"id": str(uuid.uuid4()), "type": topic, "version": 1, "occurredAt": "2026-12-01T00:00:00.000Z",
            "eventId": EVENT, "requestId": f"req_bad_{uuid.uuid4().hex[:12]}", "data": data, **fields}
    return orjson.dumps(body)


def bad_messages(topic: str) -> list[bytes]:
    """Garbage, the wrong JSON, and envelopes whose data a consumer must refuse before its handler runs."""
    booking = {"bookingId": "not-a-uuid", "paymentId": "p", "amount": 150.0}
    return [
        b"\xff\xfe not json at all",
        b"[1, 2, 3]",
        orjson.dumps("a string"),
        envelope(topic, ["data", "is", "a", "list"]),
        envelope(topic, {"userId": 7, "seatIds": "A1", "bookingId": 12, "paymentId": None, "amount": "lots"}),
        envelope(topic, {**booking, "seatIds": ["A1"], "userId": "u" * 100_000}),
        # JSON has no NaN or Infinity: an amount written so is not a message at all.
        envelope(topic, {**booking, "bookingId": str(uuid.uuid4()), "amount": 1.25}).replace(b"1.25", b"NaN"),
        envelope(topic, {**booking, "bookingId": str(uuid.uuid4()), "amount": 1.25}).replace(b"1.25", b"Infinity"),
        envelope(topic, {"userId": "u", "seatIds": ["A1"]}, id="not-a-uuid"),
        envelope("some.other.topic", {"userId": "u", "seatIds": ["A1"]}),
    ]


# What each group consumer reads (the gateway's and realtime's tail readers only skip bad messages).
CONSUMED = [
    topics.SEAT_RESERVATION_REQUESTED, topics.BOOKING_CONFIRMATION_REQUESTED, topics.PAYMENT_SUCCEEDED,
    topics.PAYMENT_FAILED, topics.BOOKING_CANCELLATION_REQUESTED, topics.SEAT_RESERVATION_TIMEOUT,
    topics.PAYMENT_REQUESTED, topics.EVENT_CREATION_REQUESTED, topics.SEAT_RESERVED, topics.SEAT_RELEASED,
    topics.BOOKING_CONFIRMED,
]


async def test_bad_messages_on_every_topic_are_dead_letters_and_the_sale_goes_on(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    bootstrap = str(platform.runtime["kafka_bootstrap"])
    injected = {topic: bad_messages(topic) for topic in CONSUMED}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, values in injected.items():
            for value in values:
                await producer.send_and_wait(topic, value, key=EVENT.encode())
    finally:
        await producer.stop()

    # The partition of the demo event decides at once, as before: no 202, no retry loop behind it.
    started = time.monotonic()
    held = await book(client, EVENT, ["N1", "N2"], "after_the_poison")
    assert held.status_code == 201, held.text
    assert (await book(client, EVENT, ["N2"], "second_after_the_poison")).status_code == 409
    assert time.monotonic() - started < 3.0
    booking = held.json()
    paid = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                            json={"paymentId": "pay_after_poison", "amount": booking["amount"]})
    assert paid.status_code == 200, paid.text

    async def all_dead() -> bool:
        letters = await read_dead_letters(bootstrap, CONSUMED)
        found = {(letter.topic, letter.value) for letter in letters}
        return all((topic, value) in found for topic, values in injected.items() for value in values)

    assert await wait_for(all_dead, timeout=60)
    letters = await read_dead_letters(bootstrap, CONSUMED)
    assert {(letter.topic, letter.value) for letter in letters} <= {
        (topic, value) for topic, values in injected.items() for value in values}, "a good message was dead-lettered"
    by_consumer = {(letter.topic, letter.consumer) for letter in letters}
    assert (topics.SEAT_RESERVATION_REQUESTED, "booking") in by_consumer
    assert {(topics.BOOKING_CONFIRMED, "catalog"), (topics.BOOKING_CONFIRMED, "notification")} <= by_consumer
    assert all(letter.error and letter.dead_at for letter in letters)

    # Counted where the booking service gave up on them (its heartbeat carries the counter: within a second).
    async def counted() -> bool:
        scrape = (await client.get("/metrics")).text
        series = re.findall(r'^boxoffice_dead_letters_total\{([^}]*)\} ([0-9.e+]+)$', scrape, re.M)
        return sum(float(value) for labels, value in series if 'service="booking"' in labels
                   and f'topic="{topics.SEAT_RESERVATION_REQUESTED}"' in labels) >= len(
            injected[topics.SEAT_RESERVATION_REQUESTED])

    assert await wait_for(counted, timeout=10)

    async def healthy() -> bool:
        return (await client.get("/health")).json()["status"] == "ok"

    assert await wait_for(healthy, timeout=30)


async def test_a_bad_message_too_big_to_keep_whole_stalls_nothing(
        client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """2 MiB, over the services' 1 MiB producer limit: each consumer keeps it cut down as a dead letter and goes on
    (it used to retry writing it whole for ever, and the booking, payment, catalog and notification services
    stopped deciding anything)."""
    event_id = f"huge_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", json={
        "eventId": event_id, "name": "Big messages", "venue": {"name": "Hall"}, "startsAt": "2027-08-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 20.0}],
        "rows": [{"row": "A", "seats": 2, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    bootstrap = str(platform.runtime["kafka_bootstrap"])
    huge = envelope(topics.SEAT_RESERVATION_REQUESTED, {"userId": "u", "seatIds": ["A1"]}, eventId=event_id,
                    requestId="r" * (2 * 1024 * 1024))
    poisoned = [topics.SEAT_RESERVATION_REQUESTED, topics.PAYMENT_REQUESTED, topics.BOOKING_CONFIRMED]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for topic in poisoned:
            await producer.send_and_wait(topic, huge, key=event_id.encode())
    finally:
        await producer.stop()

    held = await book(client, event_id, ["A1"], "after_the_huge_one")
    assert held.status_code == 201, held.text
    paid = await client.put(f"/bookings/{held.json()['bookingId']}/confirm",
                            json={"paymentId": "pay_after_huge", "amount": held.json()["amount"]})
    assert paid.status_code == 200, paid.text

    async def emailed() -> bool:
        mail = (await client.get(f"{platform.runtime['mailbox_url']}/messages")).json()
        return any(held.json()["bookingId"] in (m["text"] or "") for m in mail)

    assert await wait_for(emailed, timeout=60), "the notification service did not get past the big message"

    async def cut_letters() -> set[tuple[str, str]] | None:
        letters = [letter for letter in await read_dead_letters(bootstrap, poisoned) if letter.cut]
        found = {(letter.topic, letter.consumer) for letter in letters}
        return found if len(found) == 5 else None

    assert await wait_for(cut_letters) == {
        (topics.SEAT_RESERVATION_REQUESTED, "booking"), (topics.PAYMENT_REQUESTED, "payment"),
        (topics.BOOKING_CONFIRMED, "catalog"), (topics.BOOKING_CONFIRMED, "notification"),
        (topics.BOOKING_CONFIRMED, "waitingroom")}
    assert all(letter.original_bytes == len(huge) + len(event_id) and letter.value == huge[:64 * 1024]
               for letter in await read_dead_letters(bootstrap, poisoned) if letter.cut)


async def test_dead_letters_are_listed_and_replayed_from_the_command_line(client: httpx.AsyncClient,
                                                                          platform: RunningPlatform) -> None:
    bootstrap = str(platform.runtime["kafka_bootstrap"])
    poison = envelope(topics.SEAT_RESERVATION_REQUESTED, {"userId": ["not", "a", "string"], "seatIds": ["A1"]})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.SEAT_RESERVATION_REQUESTED, poison, key=EVENT.encode())
    finally:
        await producer.stop()

    async def letters_of_poison() -> list[str]:
        return [letter.id for letter in await read_dead_letters(bootstrap, [topics.SEAT_RESERVATION_REQUESTED])
                if letter.value == poison]

    [letter_id] = await wait_for(letters_of_poison, timeout=30)
    listed = await asyncio.to_thread(platform.cli, "dead-letters", topics.SEAT_RESERVATION_REQUESTED)
    assert listed.returncode == 0 and letter_id in listed.stdout and "booking" in listed.stdout, listed.stdout
    unknown = await asyncio.to_thread(platform.cli, "dead-letters", "no.such.topic")
    assert unknown.returncode == 1 and "unknown topic" in unknown.stdout

    replayed = await asyncio.to_thread(platform.cli, "dead-letters", "--replay", letter_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr

    async def dead_again() -> bool:
        return len(await letters_of_poison()) == 2  # still not a valid request: a second dead letter

    assert await wait_for(dead_again, timeout=30)
    missing = await asyncio.to_thread(platform.cli, "dead-letters", "--replay", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no dead letter" in missing.stdout


async def test_a_forged_payment_outcome_sells_nothing(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """Any local producer can write to the embedded broker: a payment.succeeded that the payment service never
    recorded must not confirm a booking paid with a declined card (nor give its buyer a ticket)."""
    held = await book(client, EVENT, ["P7"], "forging_buyer")
    assert held.status_code == 201, held.text
    booking = held.json()
    assert platform.cli("stop", "payment").returncode == 0
    try:
        paying = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                                  json={"paymentId": "pay_forged", "amount": booking["amount"],
                                        "card": "4000000000000002"})
        assert paying.status_code == 202, paying.text
        forged = envelope(topics.PAYMENT_SUCCEEDED, {"bookingId": booking["bookingId"], "paymentId": "pay_forged",
                                                     "amount": booking["amount"], "currency": "USD",
                                                     "providerRef": "sim_forged"})
        producer = AIOKafkaProducer(bootstrap_servers=str(platform.runtime["kafka_bootstrap"]), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics.PAYMENT_SUCCEEDED, forged, key=EVENT.encode())
        finally:
            await producer.stop()
        log = platform.data_dir / "logs" / "booking.log"

        async def ignored() -> bool:
            return f"payment.succeeded for booking {booking['bookingId']} does not match" in log.read_text()

        assert await wait_for(ignored, timeout=30)
        assert (await client.get(f"/bookings/{booking['bookingId']}")).json()["status"] == "pending"
    finally:
        assert platform.cli("start", "payment").returncode == 0

    async def declined() -> bool:  # the real outcome, once the payment service is back
        return (await client.get(f"/bookings/{booking['bookingId']}")).json()["status"] == "payment_failed"

    assert await wait_for(declined, timeout=60)
