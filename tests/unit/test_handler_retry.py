"""The consumer loop's retry of a batch whose handler fails: bounded for every failure that is not an outage,
also for a key that says "decided meanwhile by another process" when it says so at every try."""

from __future__ import annotations

import asyncpg

from boxoffice import messages as topics
from boxoffice.adapters.consumer_loop import RetryWatch, handle_with_retry
from boxoffice.messages import Message
from tests.dead_letters import KeptDeadLetters, deliveries


def request(request_id: str) -> Message:
    return Message(topics.SEAT_RESERVATION_REQUESTED, "ev_1", {"userId": "u", "seatIds": ["A1"]}, request_id)


def decided_elsewhere() -> asyncpg.UniqueViolationError:
    return asyncpg.UniqueViolationError.new({"n": "bookings_request_id_key", "C": "23505",
                                             "M": "duplicate key value violates unique constraint"})


async def test_a_message_refused_by_a_decided_elsewhere_key_at_every_try_is_dead_lettered_and_the_rest_handled(
) -> None:
    # A request that reuses the request id of a booking made otherwise (a waiting list's offer): the key refuses
    # it at every try. Before, this was retried forever as "another process decided it", stalling the consumer.
    handled: list[str] = []
    reusing = "waitlist:0b5e4c1e-5f0a-4e7b-9a55-2d7c1f7a9e01"

    async def handle(batch: list[Message]) -> None:
        if any(m.request_id == reusing for m in batch):
            raise decided_elsewhere()
        handled.extend(str(m.request_id) for m in batch)

    dead, watch = KeptDeadLetters(), RetryWatch()
    await handle_with_retry(handle, deliveries([request("req_1"), request(reusing), request("req_3")]), dead, watch,
                            attempts=2)
    assert handled == ["req_1", "req_3"]
    assert [(record.offset, type(error)) for record, error in dead.letters] == [(1, asyncpg.UniqueViolationError)]


async def test_a_batch_decided_meanwhile_by_another_process_is_retried_and_handled_whole() -> None:
    tries: list[int] = []

    async def handle(batch: list[Message]) -> None:
        tries.append(len(batch))
        if len(tries) == 1:
            raise decided_elsewhere()  # the retry replays the other process's outcomes

    dead, watch = KeptDeadLetters(), RetryWatch()
    await handle_with_retry(handle, deliveries([request("req_1"), request("req_2")]), dead, watch)
    assert tries == [2, 2] and dead.letters == [] and watch.retrying_for == 0.0


async def test_while_a_decided_elsewhere_key_refuses_a_batch_the_heartbeat_shows_the_retry() -> None:
    watch = RetryWatch()
    seen: list[str | None] = []

    async def handle(batch: list[Message]) -> None:
        seen.append(watch.last_error)
        if len(seen) == 1:
            raise decided_elsewhere()

    await handle_with_retry(handle, deliveries([request("req_1")]), KeptDeadLetters(), watch)
    assert seen[0] is None and "bookings_request_id_key" not in str(seen[0])
    assert seen[1] is not None and "UniqueViolationError" in seen[1]
