"""The faults `bench chaos` injects besides SIGKILL, and reading dead letters back.

- freeze: SIGSTOP a service process for a few seconds, then SIGCONT (cut off without dying).
- db-restart: stop the embedded PostgreSQL (its supervisor program, whose stop signal is SIGINT to the
  postmaster) and start it again from the same program: same data directory, same port.
- broker-restart: the same for the embedded broker, which comes back empty (memory storage).
- poison: bad messages published straight onto the request topics, keyed by the bench's event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import os
import random
import signal
import socket
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from boxoffice import messages as topics
from boxoffice.adapters.embedded import wait_for_port, wait_for_socket
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.messages import iso, utc_now
from boxoffice.service_layer import booking, catalog, notification_handler, payments

FAULT_KINDS = ("kill", "poison", "db-restart", "broker-restart", "freeze")
VICTIMS = ("booking", "payment", "catalog", "realtime", "gateway", "notification")

# The consumer groups (one per service, named after it) and the topics each consumes.
GROUP_TOPICS: dict[str, list[str]] = {"booking": booking.TOPICS, "payment": payments.TOPICS,
                                      "catalog": catalog.TOPICS, "notification": notification_handler.TOPICS}

DEAD_SUFFIX = ".dead"
DEAD_LETTER_HEADERS = ("boxoffice-error", "boxoffice-consumer", "boxoffice-dead-letter-id", "boxoffice-topic",
                       "boxoffice-partition", "boxoffice-offset", "boxoffice-dead-at")


class ChaosError(Exception):
    pass


def parse_faults(text: str) -> tuple[str, ...]:
    """`kill,poison` → ("kill", "poison"); an unknown or missing name is an error naming the choices."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAULT_KINDS]
    if unknown or not names:
        what = f"unknown fault {', '.join(map(repr, unknown))}" if unknown else "no fault given"
        raise ChaosError(f"{what}; --faults takes a comma-separated subset of: {','.join(FAULT_KINDS)}")
    return tuple(dict.fromkeys(names))


@dataclass
class Fault:
    kind: str
    at: float  # seconds since the crowd started
    ended: float  # when the fault was over: the kill itself, SIGCONT, the server started again, poison sent
    targets: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    detail: str = ""

    def describe(self) -> str:
        what = "+".join(self.targets) if self.targets else ""
        return " ".join(p for p in (f"{self.at:6.1f} s", self.kind, what, self.detail) if p)


@dataclass(frozen=True)
class Poison:
    topic: str
    what: str  # what is wrong with it
    key: bytes
    value: bytes
    at: float
    broker_epoch: int  # broker restarts before it was sent
    acknowledged: bool = True  # False: the send failed, the broker may or may not hold it


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def origin(self) -> str:
        return self.topic.removesuffix(DEAD_SUFFIX)

    @property
    def consumer(self) -> str:
        return self.headers.get("boxoffice-consumer", b"").decode(errors="replace")

    def well_formed(self) -> bool:
        return (all(name in self.headers for name in DEAD_LETTER_HEADERS)
                and self.headers["boxoffice-topic"].decode(errors="replace") == self.origin)


# --- processes ---------------------------------------------------------------------------------------------

# How long a call to supervisord may take (a start waits for the program's startsecs): a supervisord that does
# not answer is an error, not a wait in a thread that nothing can cancel.
SUPERVISOR_CALL_SECONDS = 60.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=SUPERVISOR_CALL_SECONDS)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(SUPERVISOR_CALL_SECONDS)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path)


class Programs:
    """The platform's supervisord through its XML-RPC interface on the Unix socket: a call takes
    milliseconds, where each supervisorctl starts an interpreter (seconds on a busy machine)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._socket = str(supervisor.socket)
        self._logs = supervisor.socket.parent / "logs"

    def log_tail(self, program: str, lines: int = 5) -> str:
        """The last lines of the program's log, one line each, for a report."""
        try:
            text = (self._logs / f"{program}.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])

    def _call(self, method: str, *args: Any) -> Any:
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(self._socket))
        try:
            return getattr(proxy.supervisor, method)(*args)
        except (xmlrpc.client.Fault, OSError) as exc:
            raise ChaosError(f"supervisord {method}{args}: {exc}") from exc

    async def pids(self, programs: list[str] | tuple[str, ...]) -> dict[str, int]:
        """The running ones of these programs, with their pids."""
        processes = await asyncio.to_thread(self._call, "getAllProcessInfo")
        return {p["name"]: int(p["pid"]) for p in processes if p["name"] in programs and p["statename"] == "RUNNING"}

    async def stop(self, program: str) -> None:
        await asyncio.to_thread(self._call, "stopProcess", program, True)

    async def start(self, program: str) -> None:
        await asyncio.to_thread(self._call, "startProcess", program, True)


async def freeze(programs: Programs, rng: random.Random, fault: Fault, started: float) -> None:
    victim = rng.choice(VICTIMS)
    seconds = rng.uniform(2.0, 6.0)
    pids = await programs.pids([victim])
    fault.targets = sorted(pids)
    fault.pids = pids
    if not pids:
        fault.detail = "(not running)"
        return
    pid = pids[victim]
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        fault.detail = "(gone)"
        return
    try:
        await asyncio.sleep(seconds)
    finally:
        # Always resumed, even when the bench itself is interrupted.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    fault.ended = time.monotonic() - started
    fault.detail = f"for {seconds:.1f} s"


async def restart_program(programs: Programs, program: str, address: int | Path, rng: random.Random, fault: Fault,
                          started: float) -> None:
    """Stops the server's supervisor program (with its stop signal: SIGINT for PostgreSQL, a fast shutdown),
    leaves it down 0.5–2 s, and starts the same program again: same command, data directory and port."""
    down = rng.uniform(0.5, 2.0)
    fault.targets = [program]
    await programs.stop(program)
    stopped_at = time.monotonic()
    await asyncio.sleep(down)
    first_start = ""
    try:
        await programs.start(program)
    except ChaosError as exc:
        # supervisord starts a program that exited too quickly again by itself (startretries), as in
        # production: the fault is over once the server listens; why the first start failed is reported.
        first_start = f" (first start failed: {exc}; its log: {programs.log_tail(program)})"
    try:
        if isinstance(address, Path):
            await asyncio.to_thread(wait_for_socket, address, 30.0)
        else:
            await asyncio.to_thread(wait_for_port, address, 30.0)
    except TimeoutError as exc:
        raise ChaosError(f"{program} not back: {exc}{first_start}; its log: {programs.log_tail(program)}") from exc
    fault.ended = time.monotonic() - started
    fault.detail = f"down {time.monotonic() - stopped_at:.1f} s{first_start}"


# --- poison ------------------------------------------------------------------------------------------------

def poison_messages(event_id: str, seat_ids: list[str], rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(topic, what is wrong, value): each value is unique (a fresh message id or random bytes), so that a
    dead letter is recognised by its bytes."""

    def envelope(topic: str, data: Any, **fields: Any) -> bytes:
        return orjson.dumps({"id": str(uuid.uuid4()), "type": topic, "version": 1, "occurredAt": iso(utc_now()),
                             "eventId": event_id, "requestId": str(uuid.uuid4()), "data": data, **fields})

    seat = rng.choice(seat_ids)
    payment = {"bookingId": str(uuid.uuid4()), "paymentId": f"pay_{uuid.uuid4().hex[:10]}", "currency": "USD"}
    nan = envelope(topics.PAYMENT_REQUESTED, {**payment, "amount": "__NaN__"}).replace(b'"__NaN__"', b"NaN")
    made = [
        (topics.SEAT_RESERVATION_REQUESTED, "garbage bytes", b"\x00\xff\xfepoison " + uuid.uuid4().bytes
         + rng.randbytes(16)),
        (topics.SEAT_RESERVATION_REQUESTED, "a JSON array", orjson.dumps(["poison", str(uuid.uuid4())])),
        (topics.SEAT_RESERVATION_REQUESTED, "seatIds a string",
         envelope(topics.SEAT_RESERVATION_REQUESTED, {"seatIds": seat, "userId": "chaos_poison"})),
        (topics.SEAT_RESERVATION_REQUESTED, "userId a number",
         envelope(topics.SEAT_RESERVATION_REQUESTED, {"seatIds": [seat], "userId": 7})),
        (topics.SEAT_RESERVATION_REQUESTED, "an unknown type in the envelope",
         envelope("seat.reservation.poisoned", {"seatIds": [seat], "userId": "chaos_poison"})),
        (topics.BOOKING_CONFIRMATION_REQUESTED, "bookingId not a UUID",
         envelope(topics.BOOKING_CONFIRMATION_REQUESTED, {**payment, "bookingId": "poison-not-a-uuid",
                                                         "amount": 120.0})),
        (topics.BOOKING_CANCELLATION_REQUESTED, "bookingId not a UUID",
         envelope(topics.BOOKING_CANCELLATION_REQUESTED, {"bookingId": "poison-not-a-uuid"})),
        (topics.PAYMENT_REQUESTED, "bookingId not a UUID",
         envelope(topics.PAYMENT_REQUESTED, {**payment, "bookingId": "poison-not-a-uuid", "amount": 120.0})),
        (topics.PAYMENT_REQUESTED, "amount NaN (not JSON)", nan),
        (topics.PAYMENT_REQUESTED, 'amount "NaN"', envelope(topics.PAYMENT_REQUESTED, {**payment, "amount": "NaN"})),
        (topics.PAYMENT_REQUESTED, "amount 1e308", envelope(topics.PAYMENT_REQUESTED, {**payment, "amount": 1e308})),
    ]
    rng.shuffle(made)
    return made


async def topic_layout(bootstrap: str) -> dict[str, int]:
    """Partitions per topic, from a metadata request for all topics (one naming a topic would make the
    broker auto-create it with its default partition count)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in sorted(await consumer.topics())}
    finally:
        await consumer.stop()


async def publish_poison(bootstrap: str, event_id: str, seat_ids: list[str], rng: random.Random, at: float,
                         broker_epoch: int, into: list[Poison]) -> tuple[list[Poison], list[str]]:
    """Each message goes into `into` as it is sent, so that a failure half-way still knows its bytes. Only
    onto topics that exist: after a broker restart, producing to a missing one would auto-create it with
    the broker's default partition count, which is the platform's to redo. A producer of its own for each
    injection: none outlives a broker restart. Returns what was sent and the topics left out."""
    existing = await topic_layout(bootstrap)
    made = poison_messages(event_id, seat_ids, rng)
    missing = sorted({topic for topic, _, _ in made if topic not in existing})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10000)
    await producer.start()
    sent: list[Poison] = []
    try:
        for topic, what, value in made:
            if topic in missing:
                continue
            poison = Poison(topic, what, event_id.encode(), value, at, broker_epoch)
            try:
                await producer.send_and_wait(topic, value=value, key=poison.key)
            except KafkaError:
                into.append(dataclasses.replace(poison, acknowledged=False))
                raise
            into.append(poison)
            sent.append(poison)
        return sent, missing
    finally:
        await producer.stop()


async def read_dead_letters(bootstrap: str, timeout: float = 15.0) -> list[DeadLetter] | None:
    """Every record of every `*.dead` topic, read without a group from the beginning to the end offsets;
    None when no such topic exists."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    try:
        dead = sorted(t for t in await consumer.topics() if t.endswith(DEAD_SUFFIX))
        if not dead:
            return None
        partitions = [TopicPartition(t, p) for t in dead for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            if time.monotonic() > deadline:
                unread = ", ".join(sorted(map(str, remaining)))
                raise ChaosError(f"dead letters not read to their end in {timeout:.0f} s: {unread}")
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                found += [DeadLetter(tp.topic, tp.partition, r.offset, r.key, r.value,
                                     {name: bytes(value) for name, value in r.headers}) for r in records]
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()
