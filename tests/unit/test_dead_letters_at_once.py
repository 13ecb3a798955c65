"""A batch's dead letters are written together, not one round trip after another (a flood of bad messages held
up the good ones behind it); one the broker refuses is written again until it is taken."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from boxoffice.adapters.consumer_loop import RetryWatch, dead_letters_at_once
from boxoffice.messages import MalformedMessage
from tests.dead_letters import record


class SlowBroker:
    """Takes a dead letter after a round trip; refuses the first try of the offsets in `refuse_once`."""

    def __init__(self, refuse_once: frozenset[int] = frozenset()) -> None:
        self.in_flight = self.most_in_flight = 0
        self.taken: list[int] = []
        self._refuse = set(refuse_once)

    async def send(self, letter: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if letter.offset in self._refuse:
                self._refuse.discard(letter.offset)
                raise KafkaConnectionError("broker away")
            self.taken.append(letter.offset)
        finally:
            self.in_flight -= 1


def garbage(count: int) -> list[tuple[ConsumerRecord[bytes, bytes], BaseException]]:
    return [(record("seat.reservation.requested", b"garbage", offset=n), MalformedMessage("not JSON"))
            for n in range(count)]


async def test_a_batchs_dead_letters_are_written_together() -> None:
    broker = SlowBroker()
    await dead_letters_at_once(broker, garbage(200), RetryWatch())
    assert sorted(broker.taken) == list(range(200))
    assert broker.most_in_flight == 200


async def test_a_dead_letter_the_broker_refuses_is_written_again_and_the_others_once() -> None:
    broker = SlowBroker(refuse_once=frozenset({3, 7}))
    await dead_letters_at_once(broker, garbage(10), RetryWatch())
    assert sorted(broker.taken) == list(range(10))
    assert broker.taken[-2:] == [3, 7]  # written again after the rest, in order
