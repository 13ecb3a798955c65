"""A publish answers within its bound, whatever the producer does meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from boxoffice.adapters.kafka import BrokerUnavailable, DeliveryUnknown, Publisher


class StalledProducer:
    """A broker that stops answering: sent messages are never acknowledged; with `full`, none is even taken."""

    def __init__(self, full: bool = False, fail: bool = False) -> None:
        self.full, self.fail = full, fail
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        if self.full:
            await asyncio.Event().wait()
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            delivered.set_exception(KafkaTimeoutError())
        self.pending.append(delivered)
        return delivered


async def test_a_message_not_acknowledged_in_time_is_a_delivery_unknown_and_its_future_left_to_the_producer() -> None:
    producer = StalledProducer()
    publisher = Publisher(producer, within=0.05)  # type: ignore[arg-type]
    with pytest.raises(DeliveryUnknown, match="not acknowledged within"):
        await publisher.publish_raw("t", b"k", b"v")
    assert not producer.pending[0].cancelled()  # the producer settles it when the broker answers


async def test_a_message_the_producer_never_takes_is_unavailable_not_unknown() -> None:
    with pytest.raises(BrokerUnavailable) as raised:
        await Publisher(StalledProducer(full=True), within=0.05).publish_raw("t", b"k", b"v")  # type: ignore[arg-type]
    assert not isinstance(raised.value, DeliveryUnknown)


async def test_the_producers_own_failure_is_a_delivery_unknown() -> None:
    with pytest.raises(DeliveryUnknown):
        await Publisher(StalledProducer(fail=True)).publish_raw("t", b"k", b"v")  # type: ignore[arg-type]


class AnsweringProducer:
    """A broker that acknowledges each message after `after` seconds."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.after, delivered.set_result, "metadata")
        self.sent.append(value)
        return delivered


async def test_a_message_acknowledged_in_time_is_published_and_a_later_one_is_unknown() -> None:
    await Publisher(AnsweringProducer(after=0.01), within=1.0).publish_raw("t", b"k", b"v")  # type: ignore[arg-type]
    with pytest.raises(DeliveryUnknown, match="not acknowledged within"):
        await Publisher(AnsweringProducer(after=0.5), within=0.05).publish_raw("t", b"k", b"v")  # type: ignore[arg-type]


async def test_a_publisher_whose_caller_gives_up_leaves_the_message_to_the_producer() -> None:
    producer = StalledProducer()
    waiting = asyncio.ensure_future(Publisher(producer, within=5.0).publish_raw("t", b"k", b"v"))  # type: ignore[arg-type]
    while not producer.pending:
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not producer.pending[0].cancelled()
