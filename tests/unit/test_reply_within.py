"""Waiting for the booking service's answer for a bounded time (entrypoints/gateway/replies.within)."""

from __future__ import annotations

import asyncio

import pytest

from boxoffice import messages as topics
from boxoffice.entrypoints.gateway.replies import within
from boxoffice.messages import Message

ANSWER = Message(topics.SEAT_RESERVED, "ev_1", {"bookingId": "b1"}, "req-1")


async def test_an_answer_in_time_is_returned() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[Message] = loop.create_future()
    loop.call_later(0.01, reply.set_result, ANSWER)
    assert await within(reply, 5) is ANSWER


async def test_no_answer_in_time_is_a_timeout_and_a_late_answer_finds_the_future_done() -> None:
    reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await within(reply, 0.05)
    assert asyncio.get_running_loop().time() - started >= 0.05
    assert reply.done()  # the reply waiter skips it (it sets only futures not done)


async def test_a_cancelled_wait_cancels_only_its_own_future() -> None:
    loop = asyncio.get_running_loop()
    mine: asyncio.Future[Message] = loop.create_future()
    theirs: asyncio.Future[Message] = loop.create_future()
    waiting = asyncio.create_task(within(mine, 5))
    other = asyncio.create_task(within(theirs, 5))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    theirs.set_result(ANSWER)
    assert await other is ANSWER
