"""One contract, two implementations: the waitingroom service's repositories on PostgreSQL and the in-memory fake
its unit tests run on must behave alike — rooms kept as saved, joins placed once, the opening's places,
the serving position, admissions, and nothing kept that was not committed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.waiting_room_store import PostgresWaitingRoomUnitOfWork
from boxoffice.domain.waiting_room import AUTO, OnSale, WaitingRoom
from boxoffice.service_layer.waiting_room_ports import Place, PlaceTaken, WaitingRoomUnitOfWork
from tests.conftest import small_event
from tests.fake_waiting_room import FakeWaitingRoomUnitOfWork, RoomTables

OPENS = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
Units = Callable[[], WaitingRoomUnitOfWork]
Admitted = Callable[[str], Awaitable[list[tuple[int, int, datetime]]]]


class Setting:
    """An implementation: its units of work, a way to make an event a room can belong to, and its admissions."""

    def __init__(self, units: Units, new_event: Callable[[], Awaitable[str]], admitted: Admitted) -> None:
        self.units, self.new_event, self.admitted = units, new_event, admitted


@pytest.fixture(params=["fake", "postgres"])
async def setting(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> Setting:
    if request.param == "fake":
        tables = RoomTables()

        async def fake_event() -> str:
            return f"ev_{uuid.uuid4().hex[:12]}"

        async def fake_admitted(event_id: str) -> list[tuple[int, int, datetime]]:
            return [(first, last, at) for e, first, last, at in tables.admissions if e == event_id]

        return Setting(lambda: FakeWaitingRoomUnitOfWork(tables), fake_event, fake_admitted)

    async def event() -> str:
        spec = small_event()
        async with pool.acquire() as con:
            await create_event(con, spec)
        return spec.event_id

    async def admitted(event_id: str) -> list[tuple[int, int, datetime]]:
        rows = await pool.fetch("SELECT first_position, last_position, admitted_at FROM queue_admissions "
                                "WHERE event_id = $1 ORDER BY first_position", event_id)
        return [(r["first_position"], r["last_position"], r["admitted_at"]) for r in rows]

    return Setting(lambda: PostgresWaitingRoomUnitOfWork(pool), event, admitted)


async def new_room(s: Setting, rate: int = 600) -> WaitingRoom:
    room = WaitingRoom(await s.new_event(), OPENS, rate, 10)
    async with (uow := s.units()):
        await uow.rooms.create(room)
        await uow.commit()
    return room


async def locked(s: Setting, event_id: str) -> WaitingRoom | None:
    async with (uow := s.units()):
        return (await uow.rooms.lock([event_id])).get(event_id)


def place(visitor: str, seq: int, position: int | None = None) -> Place:
    return Place(visitor, f"token_{visitor}_{uuid.uuid4().hex[:12]}", seq, position)


async def add(s: Setting, event_id: str, *places: Place) -> None:
    async with (uow := s.units()):
        await uow.visitors.add(event_id, list(places))
        await uow.commit()


async def test_a_room_is_created_once_and_locked_as_created(setting: Setting) -> None:
    room = await new_room(setting)
    async with (uow := setting.units()):
        await uow.rooms.create(WaitingRoom(room.event_id, OPENS + timedelta(days=1), 5, 3, False))
        await uow.commit()
    assert await locked(setting, room.event_id) == room
    async with (uow := setting.units()):
        assert await uow.rooms.lock([room.event_id, "ev_no_such_room"]) == {room.event_id: room}


async def test_a_saved_room_is_read_back_exactly_and_only_once_committed(setting: Setting) -> None:
    room = await new_room(setting)
    changed = WaitingRoom(room.event_id, OPENS, 120, 5)
    for at in range(3):
        changed.join(OPENS - timedelta(minutes=at))
    changed.open([1, 2, 3], OPENS, random.Random(4))
    changed.join(OPENS + timedelta(seconds=1))
    changed.admit(OPENS + timedelta(seconds=1))  # two a second: two admitted
    assert changed.serving_position == 2 and changed.last_position == 4
    async with (uow := setting.units()):
        await uow.rooms.save([changed])  # not committed
    assert await locked(setting, room.event_id) == room
    async with (uow := setting.units()):
        await uow.rooms.save([changed])
        await uow.commit()
    assert await locked(setting, room.event_id) == changed


async def test_a_visitor_is_placed_once_and_found_by_id(setting: Setting) -> None:
    room, other = await new_room(setting), await new_room(setting)
    a, b = place("fan_a", 1), place("fan_b", 2)
    await add(setting, room.event_id, a, b)
    await add(setting, other.event_id, place("fan_a", 1))  # another room: another place
    async with (uow := setting.units()):
        assert await uow.visitors.find(room.event_id, ["fan_a", "fan_b", "nobody"]) == {"fan_a": a, "fan_b": b}
    for again in (place("fan_a", 3), place("fan_c", 2)):  # the same visitor, or the same join, twice
        with pytest.raises(PlaceTaken):
            await add(setting, room.event_id, again)
    async with (uow := setting.units()):
        assert set(await uow.visitors.find(room.event_id, ["fan_a", "fan_b", "fan_c"])) == {"fan_a", "fan_b"}


async def test_the_opening_places_the_pre_queue_each_position_once(setting: Setting) -> None:
    room = await new_room(setting)
    await add(setting, room.event_id, place("early_1", 1), place("early_2", 2), place("early_3", 3))
    async with (uow := setting.units()):
        assert await uow.visitors.pre_queue(room.event_id) == [1, 2, 3]
        await uow.visitors.place(room.event_id, {1: 3, 2: 1, 3: 2})
        assert await uow.visitors.pre_queue(room.event_id) == []
        await uow.commit()
    await add(setting, room.event_id, place("late", 4, 4))
    async with (uow := setting.units()):
        found = await uow.visitors.find(room.event_id, ["early_1", "early_2", "early_3", "late"])
    assert {v: p.position for v, p in found.items()} == {"early_1": 3, "early_2": 1, "early_3": 2, "late": 4}
    with pytest.raises(PlaceTaken):
        await add(setting, room.event_id, place("thief", 5, 4))
    async with (uow := setting.units()):
        await uow.visitors.add(room.event_id, [place("latest", 5)])
        with pytest.raises(PlaceTaken):
            await uow.visitors.place(room.event_id, {5: 1})


async def test_a_placing_not_committed_is_not_kept(setting: Setting) -> None:
    room = await new_room(setting)
    await add(setting, room.event_id, place("early", 1))
    async with (uow := setting.units()):
        await uow.visitors.place(room.event_id, {1: 1})
        await uow.visitors.add(room.event_id, [place("uncommitted", 2, 2)])
    async with (uow := setting.units()):
        assert await uow.visitors.pre_queue(room.event_id) == [1]
        assert await uow.visitors.find(room.event_id, ["uncommitted"]) == {}


async def test_rooms_need_work_when_due_to_open_or_with_people_waiting(setting: Setting) -> None:
    due, early, served, waiting, off = [await new_room(setting) for _ in range(5)]
    now = OPENS + timedelta(seconds=5)
    early.opens_at = now + timedelta(seconds=1)
    served.opened_at = waiting.opened_at = OPENS
    waiting.last_position, served.last_position = 3, 3
    waiting.serving_position, served.serving_position = 2, 3
    off.enabled = False
    async with (uow := setting.units()):
        await uow.rooms.save([early, served, waiting, off])
        await uow.commit()
        ours = {r.event_id for r in (due, early, served, waiting, off)}
        assert [e for e in await uow.rooms.needing_work(now) if e in ours] == sorted([due.event_id, waiting.event_id])


async def test_admissions_are_kept_with_their_time(setting: Setting) -> None:
    room = await new_room(setting)
    async with (uow := setting.units()):
        await uow.admissions.add(room.event_id, 1, 10, OPENS)
        await uow.admissions.add(room.event_id, 11, 11, OPENS + timedelta(seconds=1))
        await uow.commit()
    async with (uow := setting.units()):
        await uow.admissions.add(room.event_id, 12, 20, OPENS + timedelta(seconds=2))  # rolled back
    assert await setting.admitted(room.event_id) == [(1, 10, OPENS), (11, 11, OPENS + timedelta(seconds=1))]


async def test_an_auto_room_is_kept_as_auto(setting: Setting) -> None:
    room = WaitingRoom(await setting.new_event(), OPENS, AUTO, 10)
    async with (uow := setting.units()):
        await uow.rooms.create(room)
        await uow.commit()
    assert await locked(setting, room.event_id) == room
    room.change(OnSale(OPENS, True, 90, 10), OPENS)
    async with (uow := setting.units()):
        await uow.rooms.save([room])
        await uow.commit()
    assert (await locked(setting, room.event_id)) == room


async def test_active_visitors_are_those_admitted_in_the_window_who_have_not_finished(setting: Setting) -> None:
    room = await new_room(setting)
    await add(setting, room.event_id, *(place(f"fan_{p}", p, p) for p in range(1, 8)))
    async with (uow := setting.units()):
        await uow.admissions.add(room.event_id, 1, 3, OPENS)
        await uow.admissions.add(room.event_id, 4, 6, OPENS + timedelta(minutes=1))
        await uow.commit()
    async with (uow := setting.units()):
        await uow.visitors.finish(room.event_id, ["fan_2", "fan_5"], OPENS + timedelta(minutes=2))
        await uow.visitors.finish(room.event_id, ["fan_7"], OPENS + timedelta(minutes=2))  # not admitted: not active
        await uow.commit()
    async with (uow := setting.units()):
        await uow.visitors.finish(room.event_id, ["fan_4"], OPENS + timedelta(minutes=2))  # rolled back
    async with (uow := setting.units()):
        assert await uow.admissions.active(room.event_id, OPENS - timedelta(seconds=1)) == 6 - 2
        assert await uow.admissions.active(room.event_id, OPENS) == 3 - 1  # the first admission's window is over
        assert await uow.admissions.active(room.event_id, OPENS + timedelta(minutes=1)) == 0
        assert await uow.admissions.admitted_since(room.event_id, OPENS - timedelta(seconds=1)) == 6
        assert await uow.admissions.admitted_since(room.event_id, OPENS + timedelta(seconds=30)) == 3
        # Finishing again keeps the first moment and counts once.
        await uow.visitors.finish(room.event_id, ["fan_2"], OPENS + timedelta(minutes=3))
        assert await uow.admissions.active(room.event_id, OPENS - timedelta(seconds=1)) == 4
