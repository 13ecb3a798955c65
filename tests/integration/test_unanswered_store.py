"""A stopping gateway keeps its unanswered requests in PostgreSQL; the next one to start writes them to Kafka
again, once, and waits for their answers."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from boxoffice import messages as topics
from boxoffice.adapters.kafka import BrokerUnavailable
from boxoffice.adapters.unanswered_store import keep_unanswered, take_unanswered
from boxoffice.bootstrap.gateway import keep_for_the_next_gateway, send_kept_requests
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.messages import Message


def request(n: int, topic: str = topics.SEAT_RESERVATION_REQUESTED) -> Message:
    return Message(topic, "ev_kept", {"userId": f"user_{n}", "seatIds": [f"A{n}"]}, f"kept-{n}")


@pytest.fixture
async def empty(pool: asyncpg.Pool) -> asyncpg.Pool:
    await pool.execute("DELETE FROM gateway_unanswered")
    return pool


async def test_kept_requests_are_taken_once_in_their_order_and_whole(empty: asyncpg.Pool) -> None:
    sent = [request(1), request(2, topics.BOOKING_CONFIRMATION_REQUESTED), request(3), request(4)]
    async with empty.acquire() as con:
        await keep_unanswered(con, sent[:3])
        await keep_unanswered(con, sent[3:])
        with pytest.raises(RuntimeError):
            async with con.transaction():
                assert len(await take_unanswered(con, 3600)) == 4
                raise RuntimeError("writing them again failed")  # they stay kept
        async with con.transaction():
            taken = await take_unanswered(con, 3600)
        assert await take_unanswered(con, 3600) == []
    assert taken == sent  # in their order, every field (the message id and its time) as it was


async def test_answered_ones_are_forgotten_and_ones_kept_too_long_ago_are_not_written_again(
        empty: asyncpg.Pool) -> None:
    from boxoffice.adapters.unanswered_store import forget_answered

    async with empty.acquire() as con:
        await keep_unanswered(con, [request(1), request(2), request(3), request(4)])
        await forget_answered(con, ["kept-2"])
        await con.execute("UPDATE gateway_unanswered SET kept_at = now() - interval '2 hours' "
                          "WHERE request_id = 'kept-4'")
        async with con.transaction():
            taken = await take_unanswered(con, 3600)
        assert [m.request_id for m in taken] == ["kept-1", "kept-3"]
        assert await con.fetchval("SELECT count(*) FROM gateway_unanswered") == 0  # the old one dropped


class Publisher:
    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.written: list[list[str]] = []

    async def publish_many(self, items: list[tuple[str, bytes, bytes]]) -> None:
        if self.refusals:
            self.refusals -= 1
            raise BrokerUnavailable("still starting")
        self.written.append([json.loads(value)["requestId"] for _, _, value in items])


async def test_a_starting_gateway_writes_the_kept_requests_again_once_kafka_takes_them(empty: asyncpg.Pool) -> None:
    stopping = UnansweredRequests(60)
    for n in (1, 2, 3):
        stopping.sent(request(n))
    stopping.answered("kept-2")
    await keep_for_the_next_gateway(empty, stopping)

    starting, publisher = UnansweredRequests(60), Publisher(refusals=2)
    async with asyncio.timeout(10):
        await send_kept_requests(empty, starting, publisher, every=0.01)  # type: ignore[arg-type]
    assert publisher.written == [["kept-1", "kept-3"]]
    assert [m.request_id for m in starting.waiting()] == ["kept-1", "kept-3"]  # awaited here from now on
    assert await empty.fetchval("SELECT count(*) FROM gateway_unanswered") == 0


async def test_a_gateway_with_nothing_unanswered_keeps_nothing(empty: asyncpg.Pool) -> None:
    await keep_for_the_next_gateway(empty, UnansweredRequests(60))
    assert await empty.fetchval("SELECT count(*) FROM gateway_unanswered") == 0
