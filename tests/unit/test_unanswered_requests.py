"""The booking requests a gateway keeps until it reads their answer: what a restarted broker gets again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from boxoffice import messages as topics
from boxoffice.adapters.kafka import BrokerUnavailable
from boxoffice.bootstrap.gateway import resend_at_new_kafka_epochs
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.messages import Message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(n: int) -> Message:
    return Message(topics.SEAT_RESERVATION_REQUESTED, "ev_1", {"userId": f"user_{n}", "seatIds": [f"A{n}"]},
                   f"req-{n}")


def test_answered_requests_are_not_written_again_and_the_rest_keep_their_order() -> None:
    unanswered = UnansweredRequests(60, Clock())
    for n in range(1, 5):
        unanswered.sent(request(n))
    unanswered.answered("req-2")
    unanswered.answered("req-unknown")
    assert [m.request_id for m in unanswered.waiting()] == ["req-1", "req-3", "req-4"]


def test_a_request_sent_again_moves_behind_the_others() -> None:
    unanswered = UnansweredRequests(60, Clock())
    for n in (1, 2, 1):
        unanswered.sent(request(n))
    assert [m.request_id for m in unanswered.waiting()] == ["req-2", "req-1"]


def test_requests_older_than_the_retention_are_forgotten() -> None:
    clock = Clock()
    unanswered = UnansweredRequests(60, clock)
    unanswered.sent(request(1))
    clock.now += 30
    unanswered.sent(request(2))
    clock.now += 31
    assert [m.request_id for m in unanswered.waiting()] == ["req-2"]
    clock.now += 30
    assert unanswered.waiting() == []


def test_at_most_so_many_are_kept_the_oldest_forgotten_first() -> None:
    unanswered = UnansweredRequests(60, Clock())
    unanswered.MOST = 3
    for n in range(1, 6):
        unanswered.sent(request(n))
    assert [m.request_id for m in unanswered.waiting()] == ["req-3", "req-4", "req-5"]


def test_without_a_request_id_nothing_is_kept() -> None:
    unanswered = UnansweredRequests(60, Clock())
    unanswered.sent(Message(topics.SEAT_RESERVATION_REQUESTED, "ev_1", {}, None))
    assert unanswered.waiting() == []


class Epochs:
    """A KafkaEpochWatch: the broker starts are counted at once, the epoch follows once the topics settle."""

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.starts: int | None = None

    def current(self) -> int | None:
        return self.epoch

    def broker_starts(self) -> int | None:
        return self.starts if self.starts is not None else self.epoch


class Broker:
    """Takes what the gateway writes again; `down` refuses it as a broker still starting would."""

    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.down = False
        self.tries = 0

    async def publish_many(self, items: list[tuple[str, bytes, bytes]]) -> None:
        self.tries += 1
        if self.down:
            raise BrokerUnavailable("not yet")
        self.written.append([json.loads(value)["requestId"] for _, _, value in items])


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_unanswered_requests_are_written_again_once_per_new_epoch_and_again_after_a_refusal() -> None:
    unanswered = UnansweredRequests(60, Clock())
    for n in (1, 2, 3):
        unanswered.sent(request(n))
    unanswered.answered("req-2")
    epochs, broker = Epochs(), Broker()
    resending = asyncio.create_task(resend_at_new_kafka_epochs(epochs, unanswered, broker, every=0))  # type: ignore[arg-type]
    try:
        epochs.epoch = 4  # the first epoch seen is where the gateway started: nothing to write again
        for _ in range(20):
            await asyncio.sleep(0)
        assert broker.written == []
        broker.down = True
        epochs.epoch = 5
        await until(lambda: broker.tries >= 2)  # refused, and tried again at the next pass
        assert broker.written == []
        broker.down = False
        await until(lambda: len(broker.written) == 1)
        assert broker.written == [["req-1", "req-3"]]
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(broker.written) == 1  # once per epoch
        epochs.epoch = 6
        await until(lambda: len(broker.written) == 2)
        assert broker.written[1] == ["req-1", "req-3"]
    finally:
        resending.cancel()


async def test_a_broker_that_started_just_before_the_gateway_gets_no_request_again_at_its_epoch() -> None:
    """The gateway first reads the watch after the broker's start was counted (5) and before its epoch (4): the
    epoch that follows is that broker's, which has held every request the gateway wrote."""
    unanswered = UnansweredRequests(60, Clock())
    epochs, broker = Epochs(), Broker()
    epochs.epoch, epochs.starts = 4, 5
    resending = asyncio.create_task(resend_at_new_kafka_epochs(epochs, unanswered, broker, every=0))  # type: ignore[arg-type]
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        unanswered.sent(request(1))
        epochs.epoch = 5
        for _ in range(20):
            await asyncio.sleep(0)
        assert broker.tries == 0
        epochs.starts = 6  # a restart while the gateway runs
        epochs.epoch = 6
        await until(lambda: len(broker.written) == 1)
        assert broker.written == [["req-1"]]
    finally:
        resending.cancel()


def test_requests_unanswered_for_a_while_are_kept_once_and_forgotten_once_answered() -> None:
    now = [0.0]
    unanswered = UnansweredRequests(3600.0, clock=lambda: now[0])
    first, second, third = (Message("seat.reservation.requested", "ev", {}, f"req_{n}") for n in range(3))
    unanswered.sent(first)
    now[0] = 0.6
    unanswered.sent(second)
    now[0] = 1.2
    unanswered.sent(third)
    assert unanswered.overdue(1.0) == [first]
    unanswered.kept([first])
    now[0] = 1.7
    assert unanswered.overdue(1.0) == [second]  # the first is kept already
    assert unanswered.not_kept() == [second, third]

    unanswered.answered("req_0")  # kept: its row is to be deleted
    unanswered.answered("req_1")  # never kept: nothing to delete
    assert unanswered.answered_kept() == ["req_0"] and unanswered.answered_kept() == []

    overdue = unanswered.overdue(0.1)
    assert overdue == [third]
    unanswered.answered("req_2")  # answered while it was being written: deleted at the next pass
    unanswered.kept(overdue)
    assert unanswered.answered_kept() == ["req_2"]
    unanswered.forget_later(["req_2"])  # the delete failed: asked for again
    assert unanswered.answered_kept() == ["req_2"]


def test_a_kept_request_sent_again_stays_kept_and_a_forgotten_one_is_not_overdue() -> None:
    now = [0.0]
    unanswered = UnansweredRequests(10.0, clock=lambda: now[0])
    first, second = (Message("seat.reservation.requested", "ev", {}, f"req_{n}") for n in range(2))
    unanswered.sent(first)
    now[0] = 2.0
    unanswered.kept(unanswered.overdue(1.0))
    unanswered.sent(first)  # written again at a new Kafka epoch: its row is still there
    unanswered.sent(second)
    now[0] = 4.0
    assert unanswered.overdue(1.0) == [second]
    assert unanswered.not_kept() == [second]
    now[0] = 20.0  # both past the retention: forgotten, neither overdue nor to be written again
    assert unanswered.waiting() == [] and unanswered.overdue(1.0) == [] and unanswered.not_kept() == []
