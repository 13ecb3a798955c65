"""Many charges in flight, on a real broker and PostgreSQL: a slow charge keeps the committed offset before it
while the charges behind it are decided. When the process dies with the slow one unanswered, its successor
charges it exactly once and replays the later ones without charging them again. The control run commits past
unfinished charges, as a loop that commits what it fetched would, and loses the slow charge: proof that the
test can fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from boxoffice.adapters import concurrent_consumer
from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.concurrent_consumer import InFlight, Ticket, consume_concurrently
from boxoffice.adapters.kafka import make_group_consumer, start_with_retry
from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.bootstrap.payment import payment_handler
from boxoffice.config import Settings
from boxoffice.messages import PAYMENT_REQUESTED, Message
from boxoffice.service_layer.charging import ChargePolicy
from boxoffice.service_layer.payment_ports import ChargeResult
from tests.booking_service import CollectingOutbox
from tests.conftest import small_event
from tests.dead_letters import KeptDeadLetters

P0, P1 = TopicPartition(PAYMENT_REQUESTED, 0), TopicPartition(PAYMENT_REQUESTED, 1)


class CommitsPastUnfinished(InFlight):
    """The control: the position follows the newest finished message, whatever is still in flight before it."""

    def __init__(self) -> None:
        super().__init__()
        self._newest: dict[TopicPartition, int] = {}

    def finish(self, ticket: Ticket) -> None:
        super().finish(ticket)
        # Kept apart from the in-order position, which an older message finishing last would move back.
        self._newest[ticket.tp] = max(self._newest.get(ticket.tp, 0), ticket.offset + 1)
        self._position[ticket.tp] = self._newest[ticket.tp]


class Provider(SimulatedProvider):
    """The simulated provider, recording the keys it is asked about; a key in `hang` is never answered."""

    def __init__(self, pool: asyncpg.Pool, hang: str | None = None) -> None:
        super().__init__(pool, latency_seconds=0)
        self.keys: list[str] = []
        self._hang = hang
        self.hanging = asyncio.Event()

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card: str) -> ChargeResult:
        self.keys.append(idempotency_key)
        if idempotency_key == self._hang:
            self.hanging.set()
            await asyncio.Event().wait()
        return await super().charge(idempotency_key, amount, currency, card)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("control", [False, True], ids=["in-order commits", "control: commits past unfinished"])
async def test_a_slow_charge_holds_back_the_committed_offset_and_is_charged_once_after_a_crash(
        kafka: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, control: bool) -> None:
    if control:
        monkeypatch.setattr(concurrent_consumer, "InFlight", CommitsPastUnfinished)
    event_id, group = f"ev_{uuid.uuid4().hex[:10]}", f"payment-{uuid.uuid4().hex[:6]}"
    settings = Settings(kafka_bootstrap=kafka)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()

    async with pool.acquire() as con:
        assert await create_event(con, small_event(event_id))

    async def request(partition: int) -> tuple[str, int]:
        """A payment request of a paying booking, on the given partition: its idempotency key and offset."""
        booking_id = str(uuid.uuid4())
        await pool.execute(
            """INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency,
                                     expires_at, payment_id)
               VALUES ($1::uuid, $2, $3, 'fan', 'paying', ARRAY['A1'], 20, 'USD', now(), 'pay')""",
            booking_id, f"req-{booking_id}", event_id)
        message = Message(PAYMENT_REQUESTED, event_id, {"bookingId": booking_id, "paymentId": "pay", "amount": 20.0,
                                                        "currency": "USD", "card": "4242424242424242"},
                          f"req-{uuid.uuid4()}")
        sent = await producer.send_and_wait(PAYMENT_REQUESTED, message.encode(), key=message.key, partition=partition)
        return f"{booking_id}:pay", sent.offset

    async def process(provider: Provider) -> tuple[AIOKafkaConsumer, asyncio.Task[None]]:
        consumer = make_group_consumer(settings, group, [PAYMENT_REQUESTED])
        await start_with_retry(consumer, "payment consumer")
        handler = payment_handler(pool, provider, CollectingOutbox(), ChargePolicy(timeout_seconds=60))

        async def handle(batch: list[Message]) -> None:
            await handler([m for m in batch if m.event_id == event_id])  # other tests' requests are not ours

        async def run() -> None:
            try:
                await consume_concurrently(consumer, handle, KeptDeadLetters(), limit=8)
            finally:
                await consumer.stop()

        return consumer, asyncio.create_task(run())

    async def status(key: str) -> str | None:
        booking_id, payment_id = key.split(":")
        return await pool.fetchval("SELECT status FROM payments WHERE booking_id = $1 AND payment_id = $2",
                                   uuid.UUID(booking_id), payment_id)

    async def committed(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
        return await consumer.committed(tp) == offset

    async def committed_past(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
        return (await consumer.committed(tp) or 0) > offset

    async def ledger(key: str) -> int:
        return int(await pool.fetchval("SELECT count(*) FROM simulated_provider_charges WHERE idempotency_key = $1",
                                        key))

    try:
        first, slow, *later = [await request(0) for _ in range(6)]
        crashing = Provider(pool, hang=slow[0])
        consumer, task = await process(crashing)
        try:
            async def later_decided() -> bool:
                return all([await status(key) == "succeeded" for key, _ in [first, *later]])

            await until(later_decided)
            assert crashing.hanging.is_set() and await status(slow[0]) == "charging"
            # A request on another partition, decided and committed after the later ones: the commit that
            # carries it also carries partition 0's position as it stands with only the slow charge unfinished.
            sentinel = await request(1)
            await until(lambda: committed(consumer, P1, sentinel[1] + 1))
            # The loop commits what is finished on every pass: a later charge's ticket may finish a pass after
            # its row is written, so the position is awaited. In order it stops at the slow charge; the control
            # goes past it (where exactly depends on the order the later tickets finish in).
            if control:
                await until(lambda: committed_past(consumer, P0, slow[1]))
            else:
                await until(lambda: committed(consumer, P0, slow[1]))
                assert await consumer.committed(P0) == slow[1]
        finally:
            task.cancel()  # the process dies with the slow charge unanswered
            await asyncio.gather(task, return_exceptions=True)
        assert await ledger(slow[0]) == 0

        successor = Provider(pool)
        consumer, task = await process(successor)
        try:
            last = await request(0)
            await until(lambda: committed(consumer, P0, last[1] + 1))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()

    if control:
        assert await status(slow[0]) == "charging" and await ledger(slow[0]) == 0, "the control should lose it"
        return
    assert await status(slow[0]) == "succeeded" and await ledger(slow[0]) == 1
    assert all([await ledger(key) == 1 for key, _ in [first, *later, sentinel, last]])
    # The later ones came again after the restart and were replayed from their records, not charged again.
    assert sorted(successor.keys) == sorted([slow[0], last[0]])
