"""Several booking processes in one consumer group on one box: the partitions are split between them, and
in the middle of a rush one more process joins and another is SIGKILLed. Afterwards no seat is held twice,
every answered request has exactly one outcome, the seat maps match the answers, and each event's requests
were decided in the order Kafka holds them (replayed here from the topic)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import aiohttp
import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from boxoffice.config import EMBEDDED_BROKER_PARTITIONS
from boxoffice.messages import SEAT_RESERVATION_REQUESTED, decode
from boxoffice.service_layer.booking import TOPICS as BOOKING_TOPICS
from tests.platforms import RunningPlatform, start_platform

PARTITIONS = EMBEDDED_BROKER_PARTITIONS  # three booking processes: the default's 4 partitions
GROUP_PARTITIONS = len(BOOKING_TOPICS) * PARTITIONS  # every topic the booking group reads
ROWS, SEATS_PER_ROW = 4, 15
RUSH_SECONDS = 24.0
RATE = 80  # requests per second
JOIN_AT, KILL_AT = 3.0, 8.0  # seconds into the rush
# Once the group has settled on all three processes again, a second wave: on a busy machine the rebalances of
# the rush may outlast it (a member killed mid-rebalance is waited for up to the rebalance timeout).
SECOND_WAVE_SECONDS = 4.0
SETTLE_SECONDS = 90.0


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """Three booking processes; holds last an hour, so nothing is released while the test replays them. The
    gateway waits 1 s for a decision, so requests stalled while partitions move get 202 and are followed up."""
    yield from start_platform(tmp_path_factory.mktemp("scale_out"), BOXOFFICE_BOOKING_PROCESSES="3",
                              BOXOFFICE_HOLD_SECONDS="3600", BOXOFFICE_BOOKING_REPLY_SECONDS="1")


def events_on_every_partition() -> list[str]:
    """One new event per partition of the request topic, so that every process has some to decide."""
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    chosen: dict[int, str] = {}
    while len(chosen) < PARTITIONS:
        event_id = f"scale_{uuid.uuid4().hex[:10]}"
        chosen.setdefault(partitioner(event_id.encode(), partitions, partitions), event_id)
    return [chosen[p] for p in partitions]


def create_events(client: httpx.Client, event_ids: list[str]) -> list[str]:
    for event_id in event_ids:
        created = client.post("/events", json={
            "eventId": event_id, "name": "Scale-out night", "venue": {"name": "Arena", "city": "Leeds"},
            "startsAt": "2027-09-01T19:30:00Z", "currency": "EUR",
            "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 30.0}],
            "rows": [{"row": chr(ord("A") + r), "seats": SEATS_PER_ROW, "categoryId": "std"} for r in range(ROWS)],
        })
        assert created.status_code == 201, created.text
    return [f"{chr(ord('A') + r)}{n}" for r in range(ROWS) for n in range(1, SEATS_PER_ROW + 1)]


async def booking_beats(con: asyncpg.Connection) -> list[asyncpg.Record]:
    return await con.fetch(
        """SELECT pid, info, extract(epoch FROM now() - beat_at) AS age FROM service_heartbeats
           WHERE service = 'booking' ORDER BY pid""")


async def wait_for_group(con: asyncpg.Connection, pids: set[int], timeout: float = 30) -> None:
    """Until exactly these booking processes beat, and their assignments cover the group's partitions."""
    deadline = time.monotonic() + timeout
    while True:
        beats = {r["pid"]: orjson.loads(r["info"]) for r in await booking_beats(con) if r["age"] < 1.5}
        if set(beats) == pids and sum(b.get("partitions", 0) for b in beats.values()) == GROUP_PARTITIONS \
                and all(b.get("partitions") for b in beats.values()):
            return
        assert time.monotonic() < deadline, f"the booking group did not settle on {pids}: {beats}"
        await asyncio.sleep(0.3)


async def running_pid(scaled: RunningPlatform, program: str, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scaled.pid(program)
        except LookupError:
            assert time.monotonic() < deadline, f"{program} is not running"
            await asyncio.sleep(0.2)


def decided_here(info: dict) -> int:
    """Reservation requests this process decided itself (not replayed): its committed-decision counters."""
    counters = info.get("metrics", {})
    return sum(int(sample[-1]) for name in ("boxoffice_holds_granted_total", "boxoffice_holds_refused_total")
               for sample in counters.get(name, {}).get("samples", []))


async def requests_in_kafka_order(bootstrap: str, events: set[str]) -> dict[str, list[tuple[str, list[str]]]]:
    """Every hold request of these events as Kafka holds them: per event, in partition offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(SEAT_RESERVATION_REQUESTED, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ordered: dict[str, list[tuple[str, list[str]]]] = {e: [] for e in events}
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:  # in offset order within the partition
                        message = decode(record.value)
                        if message.event_id in events and message.request_id:
                            ordered[message.event_id].append((message.request_id, message.data["seatIds"]))
        return ordered
    finally:
        await consumer.stop()


def first_come_first_served(ordered: list[tuple[str, list[str]]]) -> set[str]:
    """The winners when requests are decided one by one in this order: all seats still free, or refused."""
    taken: set[str] = set()
    winners: set[str] = set()
    seen: set[str] = set()
    for request_id, seats in ordered:
        if request_id in seen:  # a message delivered twice is answered from its first decision
            continue
        seen.add(request_id)
        if not taken & set(seats):
            taken |= set(seats)
            winners.add(request_id)
    return winners


async def test_partitions_split_and_rebalance_mid_rush_keep_every_guarantee(scaled: RunningPlatform) -> None:
    runtime = scaled.runtime
    con = await asyncpg.connect(str(runtime["database_url"]))
    try:
        await run_rush_and_check(scaled, con, str(runtime["kafka_bootstrap"]))
    finally:
        await con.close()


async def run_rush_and_check(scaled: RunningPlatform, con: asyncpg.Connection, bootstrap: str) -> None:
    # Two processes share the group at first; the third joins during the rush.
    assert scaled.cli("stop", "booking-3").returncode == 0
    await wait_for_group(con, {scaled.pid("booking"), scaled.pid("booking-2")})
    with httpx.Client(base_url=scaled.base_url, timeout=30) as client:
        events = events_on_every_partition()
        seats = create_events(client, events)

    rng = random.Random(20261126)
    rush = int(RUSH_SECONDS * RATE)
    wanted = [(rng.choice(events), rng.sample(seats, rng.randint(1, 3)))
              for _ in range(rush + int(SECOND_WAVE_SECONDS * RATE))]
    answers: list[tuple[int, dict]] = [(0, {})] * len(wanted)
    killed: dict[str, int] = {}

    async def disturb(started: float) -> None:
        await asyncio.sleep(JOIN_AT - (time.monotonic() - started))
        joined = await asyncio.to_thread(scaled.cli, "start", "booking-3")
        assert joined.returncode == 0, joined.stderr
        await asyncio.sleep(KILL_AT - (time.monotonic() - started))
        killed["booking-2"] = scaled.pid("booking-2")
        os.kill(killed["booking-2"], signal.SIGKILL)  # no goodbye to the group: its session has to time out

    async with aiohttp.ClientSession(scaled.base_url, connector=aiohttp.TCPConnector(limit=300)) as session:
        async def one(i: int, started: float, first: int = 0) -> None:
            await asyncio.sleep((i - first) / RATE - (time.monotonic() - started))
            event_id, seat_ids = wanted[i]
            body = {"eventId": event_id, "seatIds": seat_ids, "userId": f"fan_{i}"}
            async with session.post("/bookings", json=body) as response:
                answers[i] = (response.status, await response.json())

        started = time.monotonic()
        await asyncio.gather(disturb(started), *(one(i, started) for i in range(rush)))
        restarted = await running_pid(scaled, "booking-2")
        assert restarted != killed["booking-2"], "the supervisor did not restart the killed process"
        await wait_for_group(con, {scaled.pid("booking"), restarted, scaled.pid("booking-3")}, SETTLE_SECONDS)
        started = time.monotonic()
        await asyncio.gather(*(one(i, started, rush) for i in range(rush, len(wanted))))

        statuses = Counter(status for status, _ in answers)
        assert set(statuses) <= {201, 202, 409}, statuses
        # A 202 (decided late, while partitions changed hands) shows its outcome at its statusUrl.
        outcomes: dict[str, tuple[int, dict]] = {}
        deadline = time.monotonic() + SETTLE_SECONDS
        for status, body in answers:
            while status == 202:
                async with session.get(body["statusUrl"]) as response:
                    polled = await response.json()
                if polled["status"] == "processed":
                    status, body = polled["httpStatus"], polled["result"]
                    break
                assert time.monotonic() < deadline, f"request {body['requestId']} got no outcome"
                await asyncio.sleep(0.2)
            outcomes[body["requestId"]] = (status, body)
        seat_maps = {}
        for event_id in events:
            async with session.get(f"/events/{event_id}/seats") as response:
                seat_maps[event_id] = {s["seatId"]: s["status"] for s in await response.json()}
    print("answers:", dict(statuses))

    # Every answered request has exactly one stored outcome, the one it was answered with.
    assert len(outcomes) == len(wanted)
    stored = {r["request_id"]: decode(r["outcome"]) for r in await con.fetch(
        "SELECT request_id, outcome FROM booking_requests WHERE request_id = ANY($1)", list(outcomes))}
    assert set(stored) == set(outcomes)
    for request_id, (status, body) in outcomes.items():
        held = stored[request_id].type == "seat.reserved"
        assert status in (201, 409) and held == (status == 201), (request_id, status, body)
        if status == 201:
            assert stored[request_id].data["bookingId"] == body["bookingId"]
    winners = {request_id for request_id, (status, _) in outcomes.items() if status == 201}
    bookings = await con.fetch("SELECT request_id, event_id, seat_ids FROM bookings WHERE event_id = ANY($1)", events)
    assert sorted(b["request_id"] for b in bookings) == sorted(winners), "a booking without its 201, or twice"

    # No seat in two live bookings; each seat map shows exactly the seats of the winners as held.
    assert await con.fetch(
        """SELECT event_id, seat_id FROM booking_seats WHERE live AND event_id = ANY($1)
           GROUP BY event_id, seat_id HAVING count(*) > 1""", events) == []
    for event_id in events:
        held = [s for b in bookings if b["event_id"] == event_id for s in b["seat_ids"]]
        assert len(held) == len(set(held)), f"a seat of {event_id} is in two bookings"
        assert {s for s, status in seat_maps[event_id].items() if status == "RESERVED"} == set(held), event_id
        assert {status for s, status in seat_maps[event_id].items() if s not in held} <= {"AVAILABLE"}

    # First come, first served per event: replaying the requests in Kafka's order gives the same winners.
    ordered = await requests_in_kafka_order(bootstrap, set(events))
    assert sum(len(o) for o in ordered.values()) >= len(wanted)
    expected = set().union(*(first_come_first_served(o) for o in ordered.values()))
    assert expected == winners, (f"{len(expected - winners)} should have won, "
                                 f"{len(winners - expected)} won out of turn")

    # The work was really shared: every process decided requests, across rebalances (the heartbeats, written
    # each second, catch up with the last decisions).
    sharing = (scaled.pid("booking"), killed["booking-2"], scaled.pid("booking-3"), restarted)
    deadline = time.monotonic() + 10
    while True:
        beats = {r["pid"]: orjson.loads(r["info"]) for r in await booking_beats(con)}
        decided = {pid: decided_here(info) for pid, info in beats.items()}
        if all(decided.get(pid, 0) > 0 for pid in sharing) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    print("requests decided per booking process:", decided, "rebalances seen by booking:",
          beats[scaled.pid("booking")].get("rebalances"))
    for pid in sharing:
        assert decided.get(pid, 0) > 0, (pid, decided)
    # (the killed process's last heartbeat may miss its last second of decisions)
    assert sum(decided.values()) <= len(outcomes)
    assert beats[scaled.pid("booking")]["rebalances"] >= 3
