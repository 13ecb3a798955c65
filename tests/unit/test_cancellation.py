"""A stop that arrives as a bounded wait finishes is not lost.

Python 3.11's `asyncio.wait_for` returns the result and swallows the cancellation when both land in the same
turn of the loop: a consumer loop that was told to stop just as an offset commit came back went on for ever
(seen as a test that never ended). The platform's bounded waits use `asyncio.timeout`, which re-raises it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from boxoffice.adapters.consumer_loop import OffsetCommits, RetryWatch


class CommitAnsweredLater:
    def __init__(self) -> None:
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.answer


async def test_a_stop_that_meets_a_finished_offset_commit_stops_the_loop() -> None:
    consumer = CommitAnsweredLater()
    commits = OffsetCommits(consumer, RetryWatch())  # type: ignore[arg-type]
    committing = asyncio.create_task(commits.commit({TopicPartition("t", 0): 1}))
    for _ in range(3):
        await asyncio.sleep(0)  # the commit is sent and waits for its answer
    consumer.answer.set_result(None)
    committing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committing


async def test_the_same_race_with_wait_for_loses_the_stop_on_this_python() -> None:
    """The control: what the code did before, so the test above is known to be able to fail."""
    consumer = CommitAnsweredLater()

    async def old_commit() -> Any:
        return await asyncio.wait_for(consumer.commit({}), 30)

    committing = asyncio.create_task(old_commit())
    for _ in range(3):
        await asyncio.sleep(0)
    consumer.answer.set_result(None)
    committing.cancel()
    try:
        await committing
    except asyncio.CancelledError:
        pytest.skip("this Python's wait_for keeps the cancellation (3.12 and later)")
    assert not committing.cancelled()
