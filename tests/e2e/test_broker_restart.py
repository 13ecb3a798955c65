"""The embedded broker keeps messages in memory only: what was published but not yet consumed when it restarts
is published again from the outbox, so the email still goes out and the counts still move."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.faults import Programs
from boxoffice.messages import SEAT_RESERVATION_REQUESTED, Message
from tests.e2e.api_client import book, seat_statuses, wait_for
from tests.platforms import RunningPlatform, start_platform

EVENT = "taylor_swift_concert"


@pytest.fixture(scope="module")
def restart_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("broker_restart"), BOXOFFICE_PAYMENT_LATENCY_MS="20")


@pytest.fixture
async def client(restart_platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=restart_platform.base_url, timeout=30) as c:
        yield c


async def _counts(client: httpx.AsyncClient) -> dict[str, int]:
    event = (await client.get(f"/events/{EVENT}")).json()
    return {k: event[k] for k in ("available", "reserved", "booked")}


async def test_messages_waiting_in_the_broker_survive_its_restart(client: httpx.AsyncClient,
                                                                  restart_platform: RunningPlatform) -> None:
    before = await _counts(client)
    # Nobody reads the confirmation and the seat changes while the broker restarts: they wait in it.
    for service in ("notification", "catalog"):
        assert restart_platform.cli("stop", service).returncode == 0
    held = await book(client, EVENT, ["K1"], "restart_buyer")
    assert held.status_code == 201, held.text
    booking = held.json()
    paid = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                            json={"paymentId": "pay_k1", "amount": booking["amount"], "card": "4242424242424242"})
    assert paid.status_code == 200, paid.text
    database = await asyncpg.connect(str(restart_platform.runtime["database_url"]))
    try:
        async def published() -> bool:
            return await database.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0

        assert await wait_for(published)

        programs = Programs(Supervisor(restart_platform.data_dir))
        await programs.stop("broker")
        health = (await client.get("/health")).json()
        assert (health["status"], health["kafka"]) == ("degraded", "down"), health
        await programs.start("broker")
        for service in ("notification", "catalog"):
            assert restart_platform.cli("start", service).returncode == 0

        async def emailed() -> list[dict]:
            url = f"{restart_platform.runtime['mailbox_url']}/messages"
            async with httpx.AsyncClient(timeout=10) as mailbox:
                return [m for m in (await mailbox.get(url)).json() if booking["bookingId"] in (m.get("text") or "")]

        assert len(await wait_for(emailed, timeout=60)) == 1

        async def counted() -> bool:
            return await _counts(client) == {**before, "available": before["available"] - 1,
                                             "booked": before["booked"] + 1}

        assert await wait_for(counted, timeout=30), (before, await _counts(client))

        # And the platform goes on deciding: a hold asked for now is held.
        after = await book(client, EVENT, ["K2"], "after_restart")
        assert after.status_code in (201, 202), after.text

        async def decided() -> bool:
            return (await seat_statuses(client, EVENT))["K2"] == "RESERVED"

        assert await wait_for(decided, timeout=60)
    finally:
        await database.close()


async def _queue_a_hold_and_a_payment(client: httpx.AsyncClient, platform: RunningPlatform, paid_seat: str,
                                     queued_seat: str) -> tuple[str, str]:
    """A hold of `paid_seat` granted, then the booking service stopped: a hold of `queued_seat` and the payment
    of the first are answered 202 and wait in Kafka. Their booking id and the queued hold's statusUrl."""
    held = await book(client, EVENT, [paid_seat], f"paying_{paid_seat}")
    assert held.status_code == 201, held.text
    booking = held.json()
    assert platform.cli("stop", "booking").returncode == 0

    async def reported_down() -> bool:
        return (await client.get("/health")).json()["services"]["booking"]["status"] == "down"

    assert await wait_for(reported_down, timeout=15)
    queued = await book(client, EVENT, [queued_seat], f"queued_{queued_seat}")
    assert queued.status_code == 202, queued.text
    paid = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                            json={"paymentId": f"pay_{paid_seat}", "amount": booking["amount"],
                                  "card": "4242424242424242"})
    assert paid.status_code == 202, paid.text
    return booking["bookingId"], queued.json()["statusUrl"]


async def _both_carried_out(client: httpx.AsyncClient, booking_id: str, status_url: str, paid_seat: str,
                            queued_seat: str) -> None:
    async def decided() -> dict | None:
        body = (await client.get(status_url)).json()
        return body if body["status"] == "processed" else None

    outcome = await wait_for(decided, timeout=60)
    assert outcome is not None and outcome["httpStatus"] == 201, outcome

    async def confirmed() -> bool:
        return (await client.get(f"/bookings/{booking_id}")).json()["status"] == "confirmed"

    assert await wait_for(confirmed, timeout=60)
    seats = await seat_statuses(client, EVENT)
    assert (seats[paid_seat], seats[queued_seat]) == ("BOOKED", "RESERVED")


async def test_a_queued_booking_request_survives_a_broker_restart(client: httpx.AsyncClient,
                                                                  restart_platform: RunningPlatform) -> None:
    """A request answered 202 exists only in Kafka until it is decided: the gateway writes it again, a hold as
    well as a payment."""
    try:
        booking_id, status_url = await _queue_a_hold_and_a_payment(client, restart_platform, "K6", "K5")
        programs = Programs(Supervisor(restart_platform.data_dir))
        await programs.stop("broker")
        await programs.start("broker")
    finally:
        assert restart_platform.cli("start", "booking").returncode == 0
    await _both_carried_out(client, booking_id, status_url, "K6", "K5")


async def test_a_hold_answered_503_while_the_broker_stalls_is_never_made_later(
        client: httpx.AsyncClient, restart_platform: RunningPlatform) -> None:
    """A stalled broker takes the request but does not acknowledge it in time: the gateway answers 503 ("nothing
    was done"), and the hold must not appear when the broker comes back and hands the request on after all."""
    broker = restart_platform.pid("broker")
    os.kill(broker, signal.SIGSTOP)
    try:
        plain, keyed = await asyncio.gather(
            book(client, EVENT, ["L1"], "stalled_buyer"),
            client.post("/bookings", json={"eventId": EVENT, "seatIds": ["L2"], "userId": "stalled_buyer"},
                        headers={"Idempotency-Key": "stalled-l2"}))
        await asyncio.sleep(3)  # the broker stays stalled a while after the gateway gave up on it
    finally:
        os.kill(broker, signal.SIGCONT)
    for answer in (plain, keyed):
        assert answer.status_code == 503 and answer.json()["code"] == "queue_unavailable", answer.text
    # Whether the stalled broker hands the requests on once it runs again depends on the moment; this copy of the
    # first one stands for it arriving late, for certain.
    producer = AIOKafkaProducer(bootstrap_servers=str(restart_platform.runtime["kafka_bootstrap"]), acks="all")
    await producer.start()
    try:
        late = Message(SEAT_RESERVATION_REQUESTED, EVENT, {"userId": "stalled_buyer", "seatIds": ["L1"]},
                       plain.json()["requestId"])
        await producer.send_and_wait(SEAT_RESERVATION_REQUESTED, late.encode(), key=late.key)
    finally:
        await producer.stop()

    # The event's requests are decided in order: once a later hold of the event is answered, the stalled ones
    # have reached the booking service too (or never will).
    async def later_hold_answered() -> bool:
        return (await book(client, EVENT, ["L3"], "after_the_stall")).status_code in (201, 409)

    assert await wait_for(later_hold_answered, timeout=60, every=1.0)
    seats = await seat_statuses(client, EVENT)
    assert (seats["L1"], seats["L2"]) == ("AVAILABLE", "AVAILABLE"), seats
    assert (await client.get("/users/stalled_buyer/bookings")).json()["bookings"] == []
    withdrawn = (await client.get(plain.json()["statusUrl"])).json()
    assert (withdrawn["status"], withdrawn["httpStatus"]) == ("processed", 503), withdrawn

    # Asked again with its Idempotency-Key, the withdrawn request ("nothing was done") is decided afresh, with
    # another body too.
    again = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["L4"], "userId": "stalled_buyer"},
                              headers={"Idempotency-Key": "stalled-l2"})
    assert again.status_code == 201 and again.json()["seatIds"] == ["L4"], again.text
    assert (await seat_statuses(client, EVENT))["L4"] == "RESERVED"


async def test_a_queued_hold_and_payment_survive_down_and_up(client: httpx.AsyncClient,
                                                             restart_platform: RunningPlatform) -> None:
    """Requests answered 202 while the booking service is down wait in the embedded broker, which `down` stops
    too: the stopping gateway keeps them in PostgreSQL, and the one that starts writes them to Kafka again."""
    booking_id, status_url = await _queue_a_hold_and_a_payment(client, restart_platform, "K8", "K9")
    stopped = restart_platform.cli("down")
    assert stopped.returncode == 0, stopped.stderr
    # Every program ended as asked: the gateway too, though uvicorn raises the signal again after its stop.
    stops = [line for line in (restart_platform.data_dir / "logs" / "supervisord.log").read_text().splitlines()
             if " stopped: " in line]
    assert any(" stopped: gateway (exit status 0)" in line for line in stops), stops[-12:]
    assert not any("terminated by" in line for line in stops), stops[-12:]
    started = restart_platform.cli("up", "--detach", timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    async with httpx.AsyncClient(base_url=restart_platform.base_url, timeout=30) as fresh:
        await _both_carried_out(fresh, booking_id, status_url, "K8", "K9")


async def test_queued_requests_survive_a_killed_gateway_and_then_a_broker_restart(
        client: httpx.AsyncClient, restart_platform: RunningPlatform) -> None:
    """A gateway killed cannot keep its unanswered requests at its stop: it keeps each one unanswered for a
    second as it goes. Found by an outside probe: with the booking service down, 80 holds answered 202, the
    gateway killed, then the broker: none was ever decided."""
    programs = Programs(Supervisor(restart_platform.data_dir))
    try:
        booking_id, status_url = await _queue_a_hold_and_a_payment(client, restart_platform, "M1", "M2")
        more = [await book(client, EVENT, [f"N{n}"], f"queued_N{n}") for n in range(1, 6)]
        assert all(answer.status_code == 202 for answer in more), [a.text for a in more]

        async def kept() -> bool:
            con = await asyncpg.connect(str(restart_platform.runtime["database_url"]))
            try:
                return await con.fetchval("SELECT count(*) FROM gateway_unanswered") >= 7
            finally:
                await con.close()

        assert await wait_for(kept, timeout=15)  # what the gateway had kept before it was killed
        os.kill(restart_platform.pid("gateway"), signal.SIGKILL)

        async def serving() -> bool:
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        assert await wait_for(serving, timeout=60)  # the supervisor's new gateway
        await programs.stop("broker")
        await programs.start("broker")
    finally:
        assert restart_platform.cli("start", "booking").returncode == 0
    await _both_carried_out(client, booking_id, status_url, "M1", "M2")
    for answer in more:
        async def decided(url: str = answer.json()["statusUrl"]) -> dict | None:
            body = (await client.get(url)).json()
            return body if body["status"] == "processed" else None

        outcome = await wait_for(decided, timeout=60)
        assert outcome is not None and outcome["httpStatus"] == 201, outcome
