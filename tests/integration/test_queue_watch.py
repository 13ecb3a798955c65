"""The gateway's live waiting-room statuses against PostgreSQL: anyone who can write to the broker can write a
queue.admitted message, so a watcher is pushed an admission (and its access token) only as far as the database
has admitted, never with a time from the future or later than it was first given, and never from a message the
database could not confirm."""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from boxoffice import views
from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.adapters.waiting_room_store import PostgresWaitingRoomUnitOfWork
from boxoffice.domain.waiting_room import WaitingRoom
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch, Watcher
from boxoffice.messages import Message, iso, utc_now
from boxoffice.service_layer.waiting_room import figures
from boxoffice.service_layer.waiting_room_ports import Place
from tests.conftest import small_event

KEY = "k" * 32
VISITORS = 4


async def open_room(pool: asyncpg.Pool, admitted: int) -> WaitingRoom:
    """An open room with visitors at positions 1..4, the first `admitted` of them admitted a minute ago."""
    spec = small_event()
    async with pool.acquire() as con:
        await create_event(con, spec)
    opened = utc_now() - timedelta(minutes=2)
    room = WaitingRoom(spec.event_id, opened, 60, 10)
    room.open([], opened, random.Random(1))
    places = [Place(f"fan_{p}", QueueTokens(KEY).queue_token(room.event_id, f"fan_{p}"), *room.join(opened))
              for p in range(1, VISITORS + 1)]
    room.serving_position = admitted
    async with (uow := PostgresWaitingRoomUnitOfWork(pool)):
        await uow.rooms.create(room)
        await uow.rooms.save([room])
        await uow.visitors.add(room.event_id, places)
        if admitted:
            await uow.admissions.add(room.event_id, 1, admitted, opened + timedelta(minutes=1))
        await uow.commit()
    return room


async def watching(pool: asyncpg.Pool, room: WaitingRoom) -> tuple[QueueWatch, dict[int, Watcher]]:
    """A gateway's watch with a live watcher for each position still waiting, as the stream reads them."""
    watch = QueueWatch(pool, QueueTokens(KEY))
    assert await watch.room(room.event_id) is not None
    watchers = {p: Watcher(room.event_id, QueueTokens(KEY).queue_token(room.event_id, f"fan_{p}"), f"fan_{p}", p,
                           None) for p in range(room.serving_position + 1, VISITORS + 1)}
    for watcher in watchers.values():
        watch.watch(watcher)
    return watch, watchers


def admission(room: WaitingRoom, serving: int, first: int, last: int, at: datetime) -> Message:
    """A queue.admitted message as the waitingroom service writes it, with the given figures."""
    claimed = WaitingRoom(room.event_id, room.opens_at, room.admit_per_minute, room.admission_minutes,
                          opened_at=room.opened_at, joined=room.joined, last_position=room.last_position,
                          serving_position=serving)
    return figures(claimed, at, (first, last))


def pushed(watcher: Watcher) -> dict[str, Any] | None:
    last = None
    while not watcher.updates.empty():
        last = watcher.updates.get_nowait()
    return last


async def test_a_genuine_admission_gives_its_watchers_their_access_token(pool: asyncpg.Pool) -> None:
    room = await open_room(pool, admitted=0)
    watch, watchers = await watching(pool, room)
    at = utc_now()
    async with (uow := PostgresWaitingRoomUnitOfWork(pool)):  # the waitingroom service admits 1..2
        room.serving_position = 2
        await uow.rooms.save([room])
        await uow.admissions.add(room.event_id, 1, 2, at)
        await uow.commit()
    await watch.moved(admission(room, 2, 1, 2, at))

    first, third = pushed(watchers[1]), pushed(watchers[3])
    assert first is not None and first["status"] == "admitted" and first["accessToken"]
    assert first["admittedUntil"] == iso(at + timedelta(minutes=10))
    assert third is not None and (third["status"], third["ahead"], third["accessToken"]) == ("waiting", 0, None)


@pytest.mark.parametrize("admitted", [0, 2])
async def test_a_forged_admission_admits_nobody_past_the_databases_serving_position(
        pool: asyncpg.Pool, admitted: int) -> None:
    room = await open_room(pool, admitted)
    watch, watchers = await watching(pool, room)
    await watch.moved(admission(room, VISITORS, 1, VISITORS, utc_now()))

    for position in range(admitted + 1, VISITORS + 1):
        status = pushed(watchers[position])
        assert status is not None and (status["status"], status["accessToken"]) == ("waiting", None), status
    room_now = await watch.room(room.event_id)
    assert room_now is not None and room_now.serving.serving_position == admitted  # GET reads it too


async def test_an_admission_from_the_future_lasts_no_longer_than_one_from_now(pool: asyncpg.Pool) -> None:
    room = await open_room(pool, admitted=0)
    watch, watchers = await watching(pool, room)
    async with (uow := PostgresWaitingRoomUnitOfWork(pool)):
        room.serving_position = 1
        await uow.rooms.save([room])
        await uow.admissions.add(room.event_id, 1, 1, utc_now())
        await uow.commit()
    await watch.moved(admission(room, 1, 1, 1, utc_now() + timedelta(days=1)))

    status = pushed(watchers[1])
    assert status is not None and status["status"] == "admitted"
    assert datetime.fromisoformat(status["admittedUntil"]) <= utc_now() + timedelta(minutes=10)


async def test_a_later_message_does_not_move_an_admissions_time(pool: asyncpg.Pool) -> None:
    room = await open_room(pool, admitted=2)
    watch = QueueWatch(pool, QueueTokens(KEY))
    token = QueueTokens(KEY).queue_token(room.event_id, "fan_1")
    place = await views.queue_place(pool, room.event_id, token)  # as the stream reads it on connecting
    assert place is not None and place["admitted_at"] is not None
    watcher = Watcher(room.event_id, token, "fan_1", 1, place["admitted_at"])
    watch.watch(watcher)
    await watch.moved(admission(room, 2, 1, 2, utc_now()))  # the same positions, admitted "now"

    status = pushed(watcher)
    assert status is not None and status["status"] == "admitted"
    assert status["admittedUntil"] == iso(place["admitted_at"] + timedelta(minutes=10))


async def test_an_admission_the_database_cannot_confirm_admits_nobody(database: str) -> None:
    own = await create_pool(database, size=2)
    try:
        room = await open_room(own, admitted=0)
        watch, watchers = await watching(own, room)
    finally:
        await own.close()  # the database away from now on
    with contextlib.suppress(asyncpg.InterfaceError):  # as a closed pool says it
        await watch.moved(admission(room, 2, 1, 2, utc_now()))

    assert pushed(watchers[1]) is None and watchers[1].admitted_at is None
    kept = await watch.room(room.event_id)  # the room last read
    assert kept is not None and kept.serving.serving_position == 0
