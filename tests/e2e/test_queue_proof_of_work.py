"""A waiting room that asks each join for a proof of work (BOXOFFICE_QUEUE_PROOF_OF_WORK_BITS=12): no join
without one, a solution serves its own visitor of its own event only, and a solved one joins."""

from __future__ import annotations

import httpx
import pytest

from boxoffice.domain.proof_of_work import solve, solves
from tests.e2e.api_client import wait_for
from tests.e2e.test_waiting_room import create, onsale_event
from tests.platforms import RunningPlatform

BITS = 12


@pytest.fixture
async def client(proof_platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=proof_platform.base_url, timeout=30) as c:
        yield c


async def challenge(client: httpx.AsyncClient, event_id: str, visitor: str) -> str:
    answer = await client.post(f"/events/{event_id}/queue/challenge", json={"visitorId": visitor})
    assert answer.status_code == 200, answer.text
    assert answer.json()["bits"] == BITS
    return str(answer.json()["challenge"])


async def test_a_join_needs_a_solved_challenge_of_its_own(client: httpx.AsyncClient) -> None:
    event_id = await create(client, onsale_event())
    other_event = await create(client, onsale_event())
    queue = f"/events/{event_id}/queue"

    bare = await client.post(queue, json={"visitorId": "fan_a"})
    assert bare.status_code == 403 and bare.json()["code"] == "proof_of_work_required", bare.text

    mine = await challenge(client, event_id, "fan_a")
    wrong = next(str(n) for n in range(10_000) if not solves(mine, str(n), BITS))
    unsolved = await client.post(queue, json={"visitorId": "fan_a", "proof": {"challenge": mine, "solution": wrong}})
    assert unsolved.status_code == 403 and unsolved.json()["code"] == "proof_of_work_invalid", unsolved.text

    proof = {"challenge": mine, "solution": solve(mine, BITS)}
    for visitor, where in (("fan_b", queue), ("fan_a", f"/events/{other_event}/queue")):
        moved = await client.post(where, json={"visitorId": visitor, "proof": proof})
        assert moved.status_code == 403 and moved.json()["code"] == "proof_of_work_invalid", (visitor, moved.text)
    malformed = await client.post(queue, json={"visitorId": "fan_a", "proof": {"challenge": mine, "solution": "x"}})
    assert malformed.status_code == 422

    joined = await client.post(queue, json={"visitorId": "fan_a", "proof": proof})
    assert joined.status_code in (201, 202), joined.text
    again = await client.post(queue, json={"visitorId": "fan_a", "proof": proof})
    assert again.status_code in (200, 202) and again.json()["queueToken"] == joined.json()["queueToken"]
    # Only fan_a holds a place (once placed, if the join was answered 202): none of the refused joins made one.
    async def size() -> int | None:
        placed = (await client.get(f"/events/{event_id}")).json()["queue"]["size"]
        return placed if placed >= 1 else None

    assert await wait_for(size) == 1


async def test_no_challenge_for_an_event_without_a_waiting_room(client: httpx.AsyncClient) -> None:
    answer = await client.post("/events/taylor_swift_concert/queue/challenge", json={"visitorId": "fan_a"})
    assert answer.status_code == 409 and answer.json()["code"] == "no_waiting_room"
    missing = await client.post("/events/no_such_event/queue/challenge", json={"visitorId": "fan_a"})
    assert missing.status_code == 404
