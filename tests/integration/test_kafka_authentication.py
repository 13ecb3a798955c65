"""A broker that requires authentication takes no command from a client without credentials: a local process
cannot publish a cancellation for someone else's booking, nor read the topics. The bundled broker is started
here with `--authentication` (the embedded platform cannot run it so: no user can be made on it, see
docs/security.md); production's Kafka with SASL is configured through BOXOFFICE_KAFKA_SECURITY_PROTOCOL and
BOXOFFICE_KAFKA_SASL_*, whose reach to every client tests/unit/test_kafka_security.py checks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from boxoffice.adapters.embedded import broker_command, wait_for_port
from boxoffice.adapters.kafka import make_producer
from boxoffice.config import Settings
from boxoffice.messages import BOOKING_CANCELLATION_REQUESTED, Message
from tests.platforms import free_port


def running_broker(*options: str) -> Iterator[str]:
    port = free_port()
    broker = subprocess.Popen([*broker_command(port), *options], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30)
        yield f"127.0.0.1:{port}"
    finally:
        broker.terminate()
        broker.wait(timeout=10)


@pytest.fixture(scope="module")
def guarded_broker() -> Iterator[str]:
    yield from running_broker("--authentication")


@pytest.fixture(scope="module")
def open_broker() -> Iterator[str]:
    yield from running_broker()


FORGED = Message(BOOKING_CANCELLATION_REQUESTED, "taylor_swift_concert",
                 {"bookingId": "6f1c1f7e-6d3a-4c59-9f39-0d3f2b8f1a11"}, "req_forged")


async def test_a_client_without_credentials_can_neither_publish_a_command_nor_read(guarded_broker: str) -> None:
    producer = make_producer(Settings(kafka_bootstrap=guarded_broker))
    with pytest.raises(KafkaConnectionError):
        await producer.start()
        await producer.send_and_wait(FORGED.type, FORGED.encode(), key=FORGED.key)
    await producer.stop()

    reader = AIOKafkaConsumer(BOOKING_CANCELLATION_REQUESTED, bootstrap_servers=guarded_broker,
                              auto_offset_reset="earliest")
    with pytest.raises(KafkaConnectionError):
        await reader.start()
    await reader.stop()


async def test_control_the_same_broker_without_authentication_takes_the_forged_command(open_broker: str) -> None:
    """What the embedded platform's broker does (docs/security.md): the reason production needs SASL."""
    producer = make_producer(Settings(kafka_bootstrap=open_broker))
    await producer.start()
    try:
        sent = await producer.send_and_wait(FORGED.type, FORGED.encode(), key=FORGED.key)
    finally:
        await producer.stop()
    assert sent.topic == BOOKING_CANCELLATION_REQUESTED and sent.offset >= 0
