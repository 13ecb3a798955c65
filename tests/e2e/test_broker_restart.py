"""The embedded broker keeps messages in memory only: what was published but not yet consumed when it restarts
is published again from the outbox, so the email still goes out and the counts still move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.faults import Programs
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


async def test_a_queued_booking_request_survives_a_broker_restart(client: httpx.AsyncClient,
                                                                  restart_platform: RunningPlatform) -> None:
    """A request answered 202 exists only in Kafka until it is decided: the gateway writes it again."""
    assert restart_platform.cli("stop", "booking").returncode == 0
    try:
        async def reported_down() -> bool:
            return (await client.get("/health")).json()["services"]["booking"]["status"] == "down"

        assert await wait_for(reported_down, timeout=15)
        queued = await book(client, EVENT, ["K5"], "queued_buyer")
        assert queued.status_code == 202, queued.text
        programs = Programs(Supervisor(restart_platform.data_dir))
        await programs.stop("broker")
        await programs.start("broker")
    finally:
        assert restart_platform.cli("start", "booking").returncode == 0

    async def decided() -> dict | None:
        body = (await client.get(queued.json()["statusUrl"])).json()
        return body if body["status"] == "processed" else None

    outcome = await wait_for(decided, timeout=60)
    assert outcome is not None and outcome["httpStatus"] == 201, outcome
    assert (await seat_statuses(client, EVENT))["K5"] == "RESERVED"
