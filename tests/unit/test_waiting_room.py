"""The waiting room's rules (domain, no I/O) and the waitingroom service over an in-memory unit of work:
places in Kafka order, the opening's draw, metered admission, restarts and redeliveries."""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from boxoffice import messages as topics
from boxoffice.adapters.queue_tokens import ADMISSION_EXPIRED, NOT_ADMITTED, QueueTokens
from boxoffice.bootstrap.waitingroom import RoomTicker
from boxoffice.demo import ONSALE_EVENT_ID, demo_events
from boxoffice.domain import moments
from boxoffice.domain.waiting_room import AUTO, OnSale, Serving, WaitingRoom, permutation_digest, visitor_status
from boxoffice.messages import Message, decode, iso
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.waiting_room import MINUTE, WaitingRoomService
from tests.fake_waiting_room import FakeWaitingRoomUnitOfWork, RoomTables

OPENS = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
EVENT = "eras"


def room(rate: int = 600, **changes: object) -> WaitingRoom:
    return WaitingRoom(EVENT, OPENS, rate, 10, **changes)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return OPENS + timedelta(seconds=seconds)


# --- the rules ---------------------------------------------------------------------------------------------

def test_joins_before_the_opening_wait_without_a_place_and_later_ones_queue_behind_the_draw() -> None:
    r = room()
    assert [r.join(at(-60)) for _ in range(3)] == [(1, None), (2, None), (3, None)]
    places = r.open([1, 2, 3], at(0), random.Random(7))
    assert sorted(places.values()) == [1, 2, 3] and r.pre_queue_size == 3
    assert r.shuffle_digest == permutation_digest(sorted(places, key=places.__getitem__))
    assert r.join(at(1)) == (4, 4) and r.join(at(2)) == (5, 5)
    with pytest.raises(ValueError):
        r.open([], at(3), random.Random(1))


def test_the_draw_is_uniform_over_every_order() -> None:
    rng = random.Random(20301)
    orders: Counter[tuple[int, ...]] = Counter()
    for _ in range(6000):
        r = room()
        places = r.open([1, 2, 3], OPENS, rng)
        orders[tuple(places[s] for s in (1, 2, 3))] += 1
    assert len(orders) == 6  # all 3! orders drawn
    expected = 1000
    chi_square = sum((n - expected) ** 2 / expected for n in orders.values())
    assert chi_square < 20.5  # p < 0.001 with 5 degrees of freedom: a biased draw fails this


def test_admission_never_runs_ahead_of_the_rate_and_keeps_it_while_people_wait() -> None:
    r = room(rate=600)  # 10 a second
    r.open(list(range(1, 5001)), at(0), random.Random(3))
    for second in range(1, 61):
        r.admit(at(second))
        assert r.serving_position <= 10 * second
    assert r.serving_position == 600  # exactly the rate over the minute
    assert r.admit(at(60.05)) is None  # not even one early
    assert r.admit(at(60.1)) == (601, 601)


def test_a_lull_is_not_saved_up_for_a_burst() -> None:
    r = room(rate=60)
    r.open([1], at(0), random.Random(1))
    assert r.admit(at(1)) == (1, 1)
    r.admit(at(600))  # ten minutes with nobody waiting
    for _ in range(100):
        r.join(at(600.5))
    assert r.admit(at(601)) is None or r.serving_position <= 2
    r.admit(at(610.5))
    assert r.serving_position <= 1 + 11


def test_a_new_rate_applies_from_the_change_on() -> None:
    r = room(rate=60)
    r.open(list(range(1, 1000)), at(0), random.Random(1))
    r.admit(at(30))
    assert r.serving_position == 30
    r.change(OnSale(OPENS, True, 600, 10), at(30))
    r.admit(at(31))
    assert r.serving_position == 40
    r.change(OnSale(at(999), True, 600, 10), at(31))
    assert r.opens_at == OPENS  # an open room's opening does not move


def test_a_sale_without_a_waiting_room_is_open_from_its_opening_time_which_then_no_longer_moves() -> None:
    r = room(enabled=False)
    assert not r.sale_opened(at(-1)) and r.sale_opened(at(0))
    r.change(OnSale(at(60), False), at(-1))
    assert r.opens_at == at(60)  # not yet open: the opening moves
    r.change(OnSale(at(999), False, 120), at(61))
    assert r.opens_at == at(60) and r.admit_per_minute == 120  # open: the rest changes, the opening does not
    # A room that is on is open once it has opened, whatever the time.
    on = room()
    assert not on.sale_opened(at(5))
    on.open([], at(5), random.Random(1))
    assert on.sale_opened(at(5))


def test_an_opening_is_kept_at_the_precision_the_api_shows_so_it_can_be_sent_back() -> None:
    fine = OPENS.replace(microsecond=123456)
    on_sale = OnSale(fine)
    assert on_sale.opens_at == OPENS.replace(microsecond=123000)
    assert moments.parse(iso(on_sale.opens_at)) == on_sale.opens_at
    # An open room's opening, as read back, is not a move; another one is, but only once the room has opened.
    assert not on_sale.moves_opening(fine, opened=True)  # a row stored finer by an older release
    assert not on_sale.moves_opening(on_sale.opens_at, opened=True)
    assert OnSale(OPENS).moves_opening(fine, opened=True) and not OnSale(OPENS).moves_opening(fine, opened=False)
    # The demo's opening (a minute after `up`, which has microseconds) too.
    [demo] = [e.on_sale for e in demo_events(fine) if e.event_id == ONSALE_EVENT_ID]
    assert demo is not None and moments.parse(iso(demo.opens_at)) == demo.opens_at == on_sale.opens_at + MINUTE


def test_a_visitors_status_follows_from_their_position_and_the_serving_one() -> None:
    serving = Serving(100, 600, 10, OPENS, True)
    waiting = visitor_status(131, serving, None, at(5))
    assert (waiting.status, waiting.ahead, waiting.estimated_wait_seconds) == ("waiting", 30, 4)
    admitted = visitor_status(90, serving, at(1), at(5))
    assert (admitted.status, admitted.admitted_until) == ("admitted", at(601))
    assert visitor_status(90, serving, at(1), at(601)).status == "expired"
    pre = visitor_status(None, Serving(0, 600, 10, OPENS, False), None, at(-30))
    assert (pre.status, pre.position, pre.estimated_wait_seconds) == ("waiting", None, 30)


def test_access_tokens_are_bound_to_the_event_the_visitor_and_the_time() -> None:
    tokens = QueueTokens("key")
    token = tokens.access_token(EVENT, "fan", 3, at(0), 10)
    assert tokens.refusal(token, EVENT, "fan", at(10)) is None
    assert tokens.refusal(token, EVENT, "someone_else", at(10)) == NOT_ADMITTED
    assert tokens.refusal(token, "other_event", "fan", at(10)) == NOT_ADMITTED
    assert tokens.refusal(token, EVENT, "fan", at(600)) == ADMISSION_EXPIRED
    assert tokens.refusal(None, EVENT, "fan", at(10)) == NOT_ADMITTED
    assert QueueTokens("another key").refusal(token, EVENT, "fan", at(10)) == NOT_ADMITTED
    assert tokens.queue_token(EVENT, "fan") == tokens.queue_token(EVENT, "fan") != tokens.queue_token(EVENT, "fan2")


# --- the service -------------------------------------------------------------------------------------------

class Relay:
    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        self.rows += rows

    def take(self) -> list[Message]:
        taken = [decode(r.payload) for r in self.rows]
        self.rows.clear()
        return taken


class Service:
    def __init__(self, tables: RoomTables | None = None, seed: int = 1, ceiling: int = 500) -> None:
        self.tables = tables or RoomTables(rooms={EVENT: room(rate=600)})
        self.relay = Relay()
        self.now = at(-600)
        self.service = WaitingRoomService(lambda: FakeWaitingRoomUnitOfWork(self.tables), self.relay,
                                          lambda: self.now, random.Random(seed), ceiling)

    async def join(self, *visitors: str, sent: datetime | None = None) -> list[Message]:
        await self.service([Message(topics.QUEUE_JOINED, EVENT, {"visitorId": v, "queueToken": f"token_{v}_xxxxxxxx"},
                                    f"req-{v}", occurred_at=iso(sent or self.now)) for v in visitors])
        return self.relay.take()

    def positions(self) -> dict[str, int | None]:
        return {v: p.position for (_, v), p in self.tables.visitors.items()}


async def test_the_service_places_joins_in_kafka_order_and_answers_each_once_per_join() -> None:
    s = Service()
    placed = await s.join("a", "b", "c", "a")
    assert [(m.type, m.data["visitorId"], m.data["new"]) for m in placed] == [
        (topics.QUEUE_PLACED, "a", True), (topics.QUEUE_PLACED, "b", True), (topics.QUEUE_PLACED, "c", True),
        (topics.QUEUE_PLACED, "a", False)]
    assert all(m.data["position"] is None for m in placed) and placed[0].request_id == "req-a"

    s.now = at(0.5)
    await s.service.tick()
    [opened] = s.relay.take()
    assert opened.type == topics.QUEUE_ADMITTED and opened.data["opened"] is True
    assert sorted(p for p in s.positions().values() if p is not None) == [1, 2, 3]

    [late] = await s.join("d")
    assert late.data["position"] == 4
    [again] = await s.join("d")  # a redelivery or a second join: the same place, nothing new
    assert again.data == {**late.data, "new": False} and len(s.tables.visitors) == 4


async def test_a_join_sent_after_the_opening_time_closes_the_pre_queue_first() -> None:
    s = Service()
    await s.join("early_1", "early_2")
    s.now = at(1)
    placed = await s.join("late", sent=at(0.5))  # before any tick opened the room
    assert placed[-1].data["position"] == 3
    assert {s.positions()["early_1"], s.positions()["early_2"]} == {1, 2}


class Unread:
    def __init__(self) -> None:
        self.unread = True

    async def none_unread(self) -> bool:
        return not self.unread


async def test_a_room_opens_only_once_the_joins_sent_before_its_opening_are_read() -> None:
    """This service restarted after the opening time with the pre-queue's last joins still in Kafka: opening
    at the first tick would put them behind the draw."""
    unread = Unread()
    s = Service()
    s.service = WaitingRoomService(lambda: FakeWaitingRoomUnitOfWork(s.tables), s.relay, lambda: s.now,
                                   random.Random(1), 500, unread)
    await s.join("early_1", "early_2")
    s.now = at(5)
    await s.service.tick()
    assert s.relay.take() == [] and not s.tables.rooms[EVENT].opened  # joins still wait unread
    await s.join("early_3", "early_4", sent=at(-20))  # read at last: sent before the opening
    unread.unread = False
    await s.service.tick()
    assert s.tables.rooms[EVENT].opened
    assert sorted(p for p in s.positions().values() if p is not None) == [1, 2, 3, 4]  # all four in the draw


async def test_admissions_go_in_order_at_the_rate_across_restarts() -> None:
    tables = RoomTables(rooms={EVENT: room(rate=60)})
    s = Service(tables)
    await s.join(*(f"v{i}" for i in range(10)))
    s.now = at(0)
    await s.service.tick()
    s.relay.take()
    admitted: list[tuple[int, int]] = []
    for second in (1, 2, 3):
        s.now = at(second)
        await s.service.tick()
        admitted += [(m.data["firstPosition"], m.data["lastPosition"]) for m in s.relay.take()]
    restarted = Service(tables, seed=99)  # a new process over the same tables
    for second in (4, 5):
        restarted.now = at(second)
        await restarted.service.tick()
        admitted += [(m.data["firstPosition"], m.data["lastPosition"]) for m in restarted.relay.take()]
    assert admitted == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    assert tables.rooms[EVENT].serving_position == 5
    assert [(a[1], a[2]) for a in tables.admissions] == admitted


async def test_an_on_sale_change_creates_or_changes_the_room() -> None:
    s = Service(RoomTables())
    change = Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {"opensAt": iso(OPENS), "waitingRoom": True,
                                                             "admitPerMinute": 120, "admissionMinutes": 5}, "r1")
    await s.service([change])
    assert s.tables.rooms[EVENT].admit_per_minute == 120
    [figures] = s.relay.take()
    assert figures.data["admitPerMinute"] == 120 and figures.data["opened"] is False
    refused = await Service(RoomTables()).join("x")
    assert refused[0].data["code"] == "no_waiting_room"


@pytest.mark.parametrize("seats_held", [True, False])
async def test_a_first_on_sale_opening_later_opens_now_once_buyers_hold_seats_in_the_event(seats_held: bool) -> None:
    """Found from outside: without an on-sale an event sells from its creation; a first on-sale opening an hour
    later closed that sale for everyone, buyers holding seats in it."""
    s = Service(RoomTables(events_with_holds={EVENT} if seats_held else set()))
    s.now = datetime(2029, 12, 31, 9, 0, 0, 123456, tzinfo=UTC)
    later = s.now + timedelta(hours=1)
    await s.service([Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {"opensAt": iso(later), "waitingRoom": False},
                             "r1")])
    opening = s.tables.rooms[EVENT].opens_at
    assert opening == (moments.to_milliseconds(s.now) if seats_held else moments.to_milliseconds(later))


async def test_a_room_turned_off_before_a_join_was_asked_takes_no_join_read_ahead_of_the_change() -> None:
    """A join and an on-sale change come on two topics, which Kafka does not order between them: each is
    decided in the order it was asked for."""
    s = Service()
    s.now = at(-10)
    turned_off = Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {"opensAt": iso(OPENS), "waitingRoom": False},
                         "req-off", occurred_at=iso(at(-30)))
    asked_before = Message(topics.QUEUE_JOINED, EVENT, {"visitorId": "early", "queueToken": "token_early_xxxxxxxx"},
                           "req-early", occurred_at=iso(at(-40)))
    asked_after = Message(topics.QUEUE_JOINED, EVENT, {"visitorId": "late", "queueToken": "token_late_xxxxxxxx"},
                          "req-late", occurred_at=iso(at(-20)))
    await s.service([asked_before, asked_after, turned_off])  # as Kafka reads them: topic by topic
    answers = {m.request_id: m for m in s.relay.take() if m.type == topics.QUEUE_PLACED}
    assert answers["req-early"].data["new"] is True and "code" not in answers["req-early"].data
    assert (answers["req-late"].data["new"], answers["req-late"].data["code"]) == (False, "no_waiting_room")
    assert list(s.positions()) == ["early"] and s.tables.rooms[EVENT].enabled is False


async def test_a_called_off_event_places_no_more_joins_and_those_placed_before_keep_their_place() -> None:
    s = Service()
    [before] = await s.join("early")
    s.tables.cancelled_events.add(EVENT)  # the booking service called the event off
    refused, again = await s.join("late", "early")
    assert (refused.type, refused.request_id, refused.data["position"], refused.data["new"],
            refused.data["code"]) == (topics.QUEUE_PLACED, "req-late", None, False, "event_cancelled")
    assert again.data == {**before.data, "new": False}  # joined before the cancel: the same place
    assert list(s.positions()) == ["early"] and s.tables.rooms[EVENT].joined == 1


async def test_an_open_rooms_rate_changes_with_the_opening_as_read_back() -> None:
    s = Service(RoomTables())
    await s.service([Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {  # microseconds, as a request may give them
        "opensAt": "2030-01-01T09:00:00.123456+00:00", "admitPerMinute": 60, "admissionMinutes": 10}, "r1")])
    shown = iso(s.tables.rooms[EVENT].opens_at)
    assert shown == "2030-01-01T09:00:00.123Z" and s.tables.rooms[EVENT].opens_at == moments.parse(shown)
    s.now = at(5)
    await s.service.tick()
    await s.service([Message(topics.ONSALE_CHANGE_REQUESTED, EVENT, {
        "opensAt": shown, "admitPerMinute": 100, "admissionMinutes": 10}, "r2")])
    assert s.tables.rooms[EVENT].admit_per_minute == 100 and iso(s.tables.rooms[EVENT].opens_at) == shown


async def test_a_room_that_cannot_be_worked_is_passed_over_and_the_others_open_and_admit(
        caplog: pytest.LogCaptureFixture) -> None:
    # An "auto" room whose last admissions cannot be counted (a window reaching before the calendar's start):
    # a row no check lets in today, as an older release could have stored. It sorts before the good room.
    tables = RoomTables(rooms={"broken": WaitingRoom("broken", OPENS, AUTO, 10**12), EVENT: room(rate=600)})
    s = Service(tables)
    await s.join("a", "b")
    ticker = RoomTicker(s.service)
    s.now = at(1)
    await ticker.tick()
    assert tables.rooms[EVENT].opened and not tables.rooms["broken"].opened and set(ticker.failing) == {"broken"}
    assert [r.levelname for r in caplog.records
            if "broken" in r.getMessage() and r.levelno >= logging.WARNING] == ["WARNING", "ERROR"]

    caplog.clear()
    s.now = at(2)
    await ticker.tick()  # still passed over, logged no more; the good room admits at its rate
    assert tables.rooms[EVENT].serving_position == 2
    await s.join("c")
    s.now = at(3)
    await ticker.tick()
    assert tables.rooms[EVENT].serving_position == 3
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    tables.rooms["broken"].admission_minutes = 10  # mended
    s.now = at(4)
    await ticker.tick()
    assert tables.rooms["broken"].opened and not ticker.failing


async def test_a_join_whose_queue_token_no_gateway_made_places_nobody() -> None:
    """Produced straight to the broker (a local user on the embedded one), past the gateway's rate limit and
    proof of work: it would put made-up visitors into the opening's draw."""
    s = Service()
    made = {v: f"made_for_{v}_xxxxxxxxxx" for v in ("fan", "bot")}
    s.service = WaitingRoomService(lambda: FakeWaitingRoomUnitOfWork(s.tables), s.relay, lambda: s.now,
                                   random.Random(1), 500, queue_token=lambda event, visitor: made[visitor])
    joins = [Message(topics.QUEUE_JOINED, EVENT, {"visitorId": "fan", "queueToken": made["fan"]}, "req-fan"),
             Message(topics.QUEUE_JOINED, EVENT, {"visitorId": "bot", "queueToken": "its_own_token_xxxxxxx"}, "r2")]
    await s.service(joins)
    assert [(m.data["visitorId"], m.data["new"]) for m in s.relay.take()] == [("fan", True)]
    assert set(s.positions()) == {"fan"}
    await s.service(joins[1:])  # alone in its batch: nothing at all
    assert s.relay.take() == [] and set(s.positions()) == {"fan"} and s.tables.rooms[EVENT].joined == 1
