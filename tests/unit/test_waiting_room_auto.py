"""`"admitPerMinute": "auto"` (CONTRACT §8.1): the serving position moves as far as keeps the admitted visitors
who have not finished (paid, or their admission run out) under a ceiling — the rule (domain, no I/O, property
tested) and the waitingroom service over an in-memory unit of work."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from boxoffice import messages as topics
from boxoffice.domain.waiting_room import AUTO, OnSale, Serving, WaitingRoom, auto_admission_target, visitor_status
from boxoffice.messages import Message, iso
from tests.fake_waiting_room import RoomTables
from tests.unit.test_waiting_room import Service

OPENS = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
EVENT = "eras"


def at(seconds: float) -> datetime:
    return OPENS + timedelta(seconds=seconds)


# --- the rule ----------------------------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 60), st.integers(1, 40))
def test_the_target_fills_up_to_the_ceiling_in_order_and_never_past_it(serving: int, more: int, active: int,
                                                                      ceiling: int) -> None:
    last = serving + more
    target = auto_admission_target(serving, last, active, ceiling)
    assert serving <= target <= last  # in order, never back, never past the queue's end
    assert active + (target - serving) <= max(ceiling, active)  # never beyond the ceiling
    # As fast as the booking side takes them: stops only at the ceiling or the queue's end.
    assert target == last or active + (target - serving) >= ceiling


Step = tuple[str, int]
steps = st.lists(st.one_of(st.tuples(st.just("join"), st.integers(1, 5)),
                           st.tuples(st.just("finish"), st.integers(1, 4)),
                           st.tuples(st.just("tick"), st.integers(1, 90))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20), st.integers(1, 8), st.integers(1, 3), steps, st.randoms(use_true_random=False))
def test_an_auto_room_admits_in_order_and_never_more_active_than_the_ceiling(
        early: int, ceiling: int, admission_minutes: int, plan: list[Step], rng: random.Random) -> None:
    room = WaitingRoom(EVENT, OPENS, AUTO, admission_minutes)
    for _ in range(early):
        room.join(at(-10))
    room.open(list(range(1, early + 1)), at(0), random.Random(1))
    now = at(0)
    admitted_at: dict[int, datetime] = {}
    finished: set[int] = set()

    def active() -> set[int]:
        window = timedelta(minutes=admission_minutes)
        return {p for p, when in admitted_at.items() if now < when + window and p not in finished}

    for kind, n in [("tick", 0), *plan]:
        if kind == "join":
            for _ in range(n):
                room.join(now)
        elif kind == "finish":
            finishing = sorted(active())
            finished.update(rng.sample(finishing, min(n, len(finishing))))
        else:
            now += timedelta(seconds=n)
            before, active_before = room.serving_position, len(active())
            admitted = room.admit(now, active_before, ceiling)
            if admitted is not None:
                assert admitted == (before + 1, room.serving_position)  # the next positions, in order
                admitted_at.update(dict.fromkeys(range(admitted[0], admitted[1] + 1), now))
            assert len(active()) <= ceiling
            assert room.serving_position <= room.last_position
            assert len(active()) == ceiling or room.serving_position == room.last_position


def test_a_number_and_auto_can_replace_each_other_during_the_sale() -> None:
    room = WaitingRoom(EVENT, OPENS, 60, 10)
    for _ in range(100):
        room.join(at(-1))
    room.open(list(range(1, 101)), at(0), random.Random(2))
    room.admit(at(10))
    assert room.serving_position == 10
    room.change(OnSale(OPENS, True, AUTO, 10), at(10))
    assert room.admit(at(11), active=10, ceiling=25) == (11, 25)
    room.change(OnSale(OPENS, True, 60, 10), at(11))
    assert room.admit(at(11.5)) is None  # the rate applies from the change, with nothing saved up
    assert room.admit(at(12)) == (26, 26)


def test_an_auto_visitors_wait_is_estimated_from_the_last_minutes_admissions() -> None:
    waiting = visitor_status(131, Serving(100, AUTO, 10, OPENS, True, admitted_last_minute=60), None, at(5))
    assert (waiting.ahead, waiting.estimated_wait_seconds) == (30, 31)
    nobody_left = visitor_status(131, Serving(100, AUTO, 10, OPENS, True), None, at(5))
    assert (nobody_left.status, nobody_left.ahead, nobody_left.estimated_wait_seconds) == ("waiting", 30, None)


# --- the service -------------------------------------------------------------------------------------------

def auto_service(ceiling: int, admission_minutes: int = 10) -> Service:
    return Service(RoomTables(rooms={EVENT: WaitingRoom(EVENT, OPENS, AUTO, admission_minutes)}), ceiling=ceiling)


def paid(*buyers: str, event_id: str = EVENT) -> list[Message]:
    return [Message(topics.BOOKING_CONFIRMED, event_id, {"bookingId": f"b_{b}", "userId": b, "seatIds": ["A1"],
                                                         "paymentId": "p", "amount": 50.0, "currency": "USD"})
            for b in buyers]


async def tick(s: Service, seconds: float) -> list[Message]:
    s.now = at(seconds)
    await s.service.tick()
    return s.relay.take()


async def test_an_auto_room_admits_up_to_the_ceiling_and_the_next_when_one_pays() -> None:
    s = auto_service(ceiling=3)
    await s.join(*(f"fan_{i}" for i in range(8)))
    [opened, first] = await tick(s, 0)
    assert opened.data["admitPerMinute"] == "auto"
    assert (first.data["firstPosition"], first.data["lastPosition"], first.data["admittedLastMinute"]) == (1, 3, 3)
    assert await tick(s, 1) == [] and await tick(s, 30) == []  # full: nobody else, however long

    by_position = {p: v for v, p in s.positions().items()}
    await s.service(paid(by_position[6], "never_joined"))  # not admitted yet, or not in the room: no change
    assert await tick(s, 31) == [] and s.tables.finished == {}

    await s.service(paid(by_position[2], by_position[2]))  # a redelivery counts once
    [next_one] = await tick(s, 32)
    assert (next_one.data["firstPosition"], next_one.data["lastPosition"]) == (4, 4)
    assert list(s.tables.finished) == [(EVENT, by_position[2])]
    assert await tick(s, 33) == []
    assert s.tables.rooms[EVENT].serving_position == 4
    assert [(a[1], a[2]) for a in s.tables.admissions] == [(1, 3), (4, 4)]


async def test_an_auto_admission_that_runs_out_frees_its_place() -> None:
    s = auto_service(ceiling=2, admission_minutes=1)
    await s.join(*(f"fan_{i}" for i in range(5)))
    await tick(s, 0)
    assert s.tables.rooms[EVENT].serving_position == 2
    assert await tick(s, 59) == []
    [later] = await tick(s, 60)  # the first two admissions ran out: two more
    assert (later.data["firstPosition"], later.data["lastPosition"]) == (3, 4)
    assert later.data["admittedLastMinute"] == 2


async def test_a_numeric_room_ignores_the_ceiling_and_payments() -> None:
    s = Service(ceiling=1)  # 600 a minute
    await s.join(*(f"fan_{i}" for i in range(30)))
    await tick(s, 0)
    [admitted] = await tick(s, 2)
    assert (admitted.data["firstPosition"], admitted.data["lastPosition"]) == (1, 20)
    assert "admittedLastMinute" not in admitted.data


async def test_an_on_sale_change_to_auto_is_kept_as_given() -> None:
    s = Service(RoomTables())
    await s.service([Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {
        "opensAt": iso(OPENS), "waitingRoom": True, "admitPerMinute": "auto", "admissionMinutes": 5}, "r1")])
    assert s.tables.rooms[EVENT].admit_per_minute == AUTO
    [figures] = s.relay.take()
    assert figures.data["admitPerMinute"] == "auto" and figures.data["admittedLastMinute"] == 0
