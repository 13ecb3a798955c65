"""Kafka through aiokafka, kept to the plain protocol so that Tansu and Apache Kafka both work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2

from boxoffice import metrics
from boxoffice.config import Settings
from boxoffice.logs import Outage
from boxoffice.message_schemas import decode_record
from boxoffice.messages import ALL_TOPICS, DEAD_LETTER_TOPICS, MalformedMessage, Message

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The message could not be stored in Kafka."""


class DeliveryUnknown(BrokerUnavailable):
    """The message was sent but Kafka did not acknowledge it in time: it may be stored after all (a broker
    that stalls answers the request when it comes back)."""


def client_security(settings: Settings) -> dict[str, Any]:
    """How every Kafka client of the platform connects: plain, or with TLS and/or SASL to an external Kafka."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context()  # the system's certificate authorities
    if protocol.startswith("SASL_"):
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": settings.kafka_sasl_password}
    return options


async def ensure_topics(bootstrap: str, partitions: int, topics: Iterable[str] = (*ALL_TOPICS, *DEAD_LETTER_TOPICS),
                        attempts: int = 30, *, security: Mapping[str, Any] | None = None) -> None:
    """Create missing topics up front: auto-created ones get the broker's default partition count."""
    outage = Outage(log, "creating the topics")
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **(security or {}))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [NewTopic(t, num_partitions=partitions, replication_factor=1)
                       for t in topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            outage.recovered()
            return
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise
            outage.failed(exc)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        finally:
            await admin.close()


async def repair_fresh_broker_topics(bootstrap: str, partitions: int,
                                     topics: Iterable[str] = (*ALL_TOPICS, *DEAD_LETTER_TOPICS)) -> list[str]:
    """On a broker that has just started empty: clients that asked for a topic before it was made had it
    auto-created with the broker's default partition count, so such topics are made again with the
    configured count (what they hold is lost either way: the outbox publishes it again). Never for a broker
    that keeps its data: there, a topic's partitions are the operator's. Returns the topics made again."""
    wanted = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        # Metadata for all topics names none, so it auto-creates none.
        found = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(None)}
        wrong = [t for t in wanted if t in found and found[t] != partitions]
        if wrong:
            await admin.delete_topics(wrong)
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1)
                   for t in wanted if t not in found or t in wrong]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return wrong
    finally:
        await admin.close()


async def accepts_connections(bootstrap: str, within: float) -> bool:
    """Whether any of the bootstrap servers takes a TCP connection within `within` seconds: a broker that is
    down refuses it at once, where a publish waits for its whole deadline."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            async with asyncio.timeout(within):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


class KeyHashes:
    """The default partitioner's choice (murmur2 of the key, as Java's clients make it, so that every client
    puts an event in the same partition), with each key's hash kept: the keys are event ids, few and reused
    by every message of their event, and aiokafka's pure-Python murmur2 was 2 % of the gateway's CPU per hold."""

    MOST = 100_000  # then forgotten all at once: keys come from requests, and a hash is cheap to make again

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            chosen: int = self._default(key, all_partitions, available)
            return chosen
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.MOST:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]

    def __len__(self) -> int:
        """How many hashes are kept."""
        return len(self._hashes)


def make_producer(settings: Settings) -> AIOKafkaProducer:
    # No linger: messages sent in one turn of the event loop, or while a request to the broker is in flight,
    # still share a request, and a 1 ms linger cost 8-12 % more CPU per message (its wake-up timers).
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0,
        request_timeout_ms=10000, max_batch_size=262144, partitioner=KeyHashes(), **client_security(settings),
    )


async def start_with_retry(client: AIOKafkaProducer | AIOKafkaConsumer, what: str, attempts: int = 60) -> None:
    outage = Outage(log, f"starting the {what}")
    for attempt in range(attempts):
        try:
            await client.start()
            outage.recovered()
            return
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise
            outage.failed(exc)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))


# A message one publish waits for at most: the producer's own request timeout, counted from the publish. Behind
# a stalled broker, a message queued after another for the same partition would otherwise wait for that one's
# timeout first, then its own (a hold answered 503 after 20-30 s instead of 10).
ACKNOWLEDGED_WITHIN_SECONDS = 10.0


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Publisher:
    """Keyed by event id, so that one event's messages stay in one partition, in order."""

    def __init__(self, producer: AIOKafkaProducer, within: float = ACKNOWLEDGED_WITHIN_SECONDS) -> None:
        self._producer = producer
        self._within = within

    async def publish(self, topic: str, message: Message) -> None:
        await self.publish_raw(topic, message.key, message.encode())

    async def publish_raw(self, topic: str, key: bytes, value: bytes) -> None:
        deadline = asyncio.get_running_loop().time() + self._within
        try:
            async with asyncio.timeout_at(deadline):
                delivered = await self._producer.send(topic, value=value, key=key)
        except (KafkaError, TimeoutError) as exc:  # never left this process
            raise BrokerUnavailable(str(exc) or "Kafka took no message in time") from exc
        if not delivered.done():
            # Waited for through a future of its own and one timer: the producer settles its own future, which
            # is never cancelled from here (asyncio.timeout and shield cost 4 % of the gateway's CPU per hold).
            loop = asyncio.get_running_loop()
            acknowledged: asyncio.Future[None] = loop.create_future()
            delivered.add_done_callback(lambda _: _settle(acknowledged))
            timer = loop.call_at(deadline, _settle, acknowledged)
            try:
                await acknowledged
            finally:
                timer.cancel()
            if not delivered.done():
                raise DeliveryUnknown(f"not acknowledged within {self._within:.0f} s")
        if delivered.cancelled():
            raise DeliveryUnknown("the producer gave the message up")
        if (error := delivered.exception()) is not None:
            if isinstance(error, KafkaError):
                raise DeliveryUnknown(str(error)) from error
            raise error

    async def publish_many(self, items: list[tuple[str, bytes, bytes]]) -> None:
        """Send all, then wait for all acknowledgements: order per partition is kept by the producer."""
        try:
            futures = [await self._producer.send(topic, value=value, key=key) for topic, key, value in items]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerUnavailable(str(exc)) from exc


def make_group_consumer(settings: Settings, group: str, topics: Iterable[str], *,
                        latency_path: bool = True,
                        listener: ConsumerRebalanceListener | None = None) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_wait_ms if latency_path else settings.kafka_background_fetch_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=60000, max_partition_fetch_bytes=4 * 1048576, **client_security(settings),
    )
    consumer.subscribe(list(topics), listener=listener)
    return consumer


async def make_tail_consumer(settings: Settings, topics: Iterable[str]) -> AIOKafkaConsumer:
    """Reads every partition from its end, without a group: no join delay, every instance sees all."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_wait_ms, auto_offset_reset="latest", **client_security(settings),
    )
    await start_with_retry(consumer, "tail consumer")
    partitions = []
    for topic in topics:
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                break
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh call
            await asyncio.sleep(0.1)
        partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    return consumer


class RestartedLogs:
    """Rewinds the partitions that a broker restart made anew, for a consumer that reads on from its position.

    The embedded broker forgets its logs when it restarts, and the new logs start at offset 0 again. Apache
    Kafka answers a fetch past a partition's end with an out-of-range error (the consumer then resets its
    position); the embedded broker answers with nothing, so a consumer would wait at its old offset until the
    new log grew that long, and then read on from there, past the new messages before it. Two signs, each
    checked at most once in `every` seconds:
    - a new broker start (`broker_starts`: the latest known, counted in PostgreSQL as soon as the embedded
      broker listens, and read by a task of its own, so the loop never waits on the database): every partition
      is read again from its start, also one whose new log has already grown past the position, except those
      the next sign already sent back to their start since the previous start (they are being read whole);
    - until the start is counted, a partition whose end is before the consumer's position: it has been made
      anew, and is read from its start.
    Consumers absorb repeats."""

    def __init__(self, consumer: AIOKafkaConsumer, every: float = 1.0,
                 broker_starts: Callable[[], int | None] | None = None) -> None:
        self._consumer = consumer
        self._every = every
        self._broker_starts = broker_starts
        self._starts_seen: int | None = None
        self._rewound_since_start: set[TopicPartition] = set()
        self._checked = -1e9

    async def rewind(self) -> list[TopicPartition]:
        """At most once in `every` seconds; the partitions rewound."""
        if time.monotonic() - self._checked < self._every:
            return []
        self._checked = time.monotonic()
        if self._broker_restarted():
            rewound = sorted(self._consumer.assignment() - self._rewound_since_start)
            self._rewound_since_start = set()
            reason = "the broker has restarted"
        else:
            rewound = [tp for tp in self._consumer.assignment() if await self._ends_before_position(tp)]
            self._rewound_since_start.update(rewound)
            reason = "they end before this consumer's position: made anew by a broker restart"
        for tp in rewound:
            self._consumer.seek(tp, 0)
        if rewound:
            log.warning("%d partitions (%s, ...) are read from their start: %s", len(rewound), rewound[0].topic,
                        reason)
        return rewound

    def _broker_restarted(self) -> bool:
        starts = self._broker_starts() if self._broker_starts is not None else None
        if starts is None:  # not read yet (the database unavailable since the start)
            return False
        seen, self._starts_seen = self._starts_seen, starts
        return seen is not None and starts != seen

    async def _ends_before_position(self, tp: TopicPartition) -> bool:
        end = self._consumer.highwater(tp)
        if end is None:
            return False
        try:
            async with asyncio.timeout(0.5):
                position = await self._consumer.position(tp)
        except Exception:  # noqa: BLE001 - no position yet, or the partition moved: nothing to rewind
            return False
        return bool(position > end)


def tail_messages(batches: dict[TopicPartition, list[Any]]) -> list[Message]:
    """The messages of a tail consumer's `getmany`, in order. Malformed ones are skipped, counted and logged:
    tail readers have no group and every process reads everything, so the group consumers of the same topics
    dead-letter them, not these."""
    messages = []
    for records in batches.values():
        for record in records:
            try:
                messages.append(decode_record(record.value, record.topic, record.key))
            except MalformedMessage as exc:
                metrics.INVALID_SKIPPED.inc(record.topic)
                log.warning("skipping malformed message on %s partition %d offset %d: %s",
                            record.topic, record.partition, record.offset, exc)
    return messages


class GroupProgress:
    """Whether a consumer group has handled everything in a topic: its committed offsets reach the topic's end
    on every partition (whichever process of the group holds them)."""

    def __init__(self, topic: str, timeout: float = 2.0) -> None:
        self._topic, self._timeout = topic, timeout
        self._consumer: AIOKafkaConsumer | None = None

    def follow(self, consumer: AIOKafkaConsumer) -> None:
        """The group's consumer, once started: it asks the broker on the group's behalf."""
        self._consumer = consumer

    async def none_unread(self) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                partitions = consumer.partitions_for_topic(self._topic)
                if not partitions:
                    return False
                tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    if (await consumer.committed(tp) or 0) < ends[tp]:
                        return False
        except (KafkaError, TimeoutError, OSError):
            return False  # not known: as if some were unread
        return True


async def consumer_lag(consumer: AIOKafkaConsumer) -> int:
    """Messages not yet consumed, over the partitions this consumer holds."""
    total = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # noqa: BLE001 - position is unknown during a rebalance
            continue
        total += max(0, highwater - position)
    return total
