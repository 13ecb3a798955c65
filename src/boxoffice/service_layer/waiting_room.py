"""The waitingroom service's decisions (CONTRACT §8.1): joins placed in Kafka order, the opening's draw,
metered admissions (or "auto": as many as keep the active visitors under a ceiling, a visitor being active
from their admission until it runs out or their booking is paid), and organisers' on-sale changes. Every
change and the messages it publishes are written in one transaction (the outbox), so a restart loses no
place and gives none twice.
"""

from __future__ import annotations

import hmac
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.domain import errors
from boxoffice.domain.waiting_room import DEFAULT_ACTIVE_CEILING, WaitingRoom, first_opening
from boxoffice.messages import Message, in_asked_order, iso
from boxoffice.service_layer.event_creation import on_sale_from_data
from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.unit_of_work import Outgoing
from boxoffice.service_layer.waiting_room_ports import Place, UnreadJoins, WaitingRoomUnitOfWork

log = logging.getLogger(__name__)

# booking.confirmed: a paid booking ends its buyer's turn, which frees a place under an "auto" room's ceiling.
TOPICS = [topics.QUEUE_JOINED, topics.ONSALE_CHANGE_REQUESTED, topics.BOOKING_CONFIRMED]
NO_WAITING_ROOM = "no_waiting_room"
MINUTE = timedelta(minutes=1)


def figures(room: WaitingRoom, now: datetime, admitted: tuple[int, int] | None = None,
            admitted_last_minute: int | None = None) -> Message:
    """A queue.admitted message: the room's figures after a change, with the positions it admitted if any
    (and for "auto" the last minute's admissions, which visitors' waits are estimated from)."""
    data: dict[str, Any] = {
        "servingPosition": room.serving_position, "queueSize": room.joined, "opened": room.opened,
        "admitPerMinute": room.admit_per_minute, "admissionMinutes": room.admission_minutes,
        "opensAt": iso(room.opens_at), "at": iso(now), "enabled": room.enabled,
    }
    if admitted is not None:
        data |= {"firstPosition": admitted[0], "lastPosition": admitted[1]}
    if admitted_last_minute is not None:
        data["admittedLastMinute"] = admitted_last_minute
    return Message(topics.QUEUE_ADMITTED, room.event_id, data)


def _sent_at(message: Message, fallback: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(message.occurred_at)
    except ValueError:
        return fallback
    return moment if moment.tzinfo is not None else fallback


class WaitingRoomService:
    """The batch handler of queue.joined, onsale.change.requested and booking.confirmed, and the admission
    ticker."""

    def __init__(self, unit_of_work: Callable[[], WaitingRoomUnitOfWork], relay: OutboxSink,
                 clock: Callable[[], datetime], rng: random.Random,
                 active_ceiling: int = DEFAULT_ACTIVE_CEILING, joins: UnreadJoins | None = None,
                 queue_token: Callable[[str, str], str] | None = None) -> None:
        self._unit_of_work, self._relay, self._clock, self._rng = unit_of_work, relay, clock, rng
        self._ceiling = active_ceiling
        self._joins = joins
        # The token the gateway makes for an (event, visitor): a join carrying another was not made by a gateway.
        self._queue_token = queue_token
        self.joins = 0
        self.admitted = 0
        self.finished = 0

    def stats(self) -> dict[str, int]:
        return {"joins": self.joins, "admitted": self.admitted, "finished": self.finished}

    async def __call__(self, batch: list[Message]) -> None:
        # In the order they were asked for, across the topics: runs of consecutive joins are placed in one
        # transaction; a change is applied where it stands.
        run: list[Message] = []
        paid: list[Message] = []
        for message in in_asked_order(batch):
            if message.type == topics.QUEUE_JOINED:
                run.append(message)
                continue
            if message.type == topics.BOOKING_CONFIRMED:
                paid.append(message)  # independent of joins and changes: the order among them does not matter
                continue
            if run:
                await self._place(run)
                run = []
            if message.type == topics.ONSALE_CHANGE_REQUESTED:
                await self._change(message)
        if run:
            await self._place(run)
        if paid:
            await self._finish(paid)

    async def _finish(self, paid: list[Message]) -> None:
        """Admitted visitors whose booking is paid have finished: they no longer count as active."""
        now = self._clock()
        buyers: dict[str, set[str]] = {}
        for message in paid:
            if isinstance(user_id := message.data.get("userId"), str):
                buyers.setdefault(message.event_id, set()).add(user_id)
        if not buyers:
            return
        uow = self._unit_of_work()
        async with uow:
            rooms = await uow.rooms.lock(sorted(buyers))
            for event_id, room in rooms.items():
                places = await uow.visitors.find(event_id, sorted(buyers[event_id]))
                done = sorted(v for v, p in places.items()
                              if p.position is not None and p.position <= room.serving_position)
                if done:
                    await uow.visitors.finish(event_id, done, now)
                    self.finished += len(done)
            await uow.commit()

    async def _admit(self, uow: WaitingRoomUnitOfWork, room: WaitingRoom, now: datetime) -> list[Message]:
        """Admits as many as the room's rate (or "auto", its active visitors) allows by now: its figures."""
        active = 0
        if room.auto:
            active = await uow.admissions.active(room.event_id, now - timedelta(minutes=room.admission_minutes))
        admitted = room.admit(now, active, self._ceiling)
        if admitted is None:
            return []
        await uow.admissions.add(room.event_id, *admitted, now)
        self.admitted += admitted[1] - admitted[0] + 1
        return [figures(room, now, admitted, await self._last_minute(uow, room, now))]

    async def _last_minute(self, uow: WaitingRoomUnitOfWork, room: WaitingRoom, now: datetime) -> int | None:
        return await uow.admissions.admitted_since(room.event_id, now - MINUTE) if room.auto else None

    def _made_by_a_gateway(self, join: Message) -> bool:
        """Joins go through the gateway's rate limit and proof of work; one produced straight to the broker (a
        local user on the embedded one) with a token of its own would place made-up visitors, even in the
        opening's draw. It is ignored, logged and counted."""
        if self._queue_token is None:
            return True
        made = self._queue_token(join.event_id, join.data["visitorId"])
        if hmac.compare_digest(made.encode(), str(join.data["queueToken"]).encode()):
            return True
        metrics.FORGED_JOINS.inc()
        log.warning("ignored a queue.joined for %s whose queue token no gateway made (visitor %r)",
                    join.event_id, join.data["visitorId"])
        return False

    async def _place(self, run: list[Message]) -> None:
        now = self._clock()
        by_event: dict[str, list[Message]] = {}
        for message in run:
            if self._made_by_a_gateway(message):
                by_event.setdefault(message.event_id, []).append(message)
        if not by_event:
            return
        uow = self._unit_of_work()
        async with uow:
            rooms = await uow.rooms.lock(sorted(by_event))
            # A called-off event takes no holds: a new place in its queue would lead nowhere.
            called_off = await uow.rooms.called_off(sorted(by_event))
            outgoing: list[Message] = []
            for event_id, messages in by_event.items():
                room = rooms.get(event_id)
                if room is None or not room.enabled:
                    outgoing += [_placed(m, None, new=False, code=NO_WAITING_ROOM) for m in messages]
                    continue
                outgoing += await self._join(uow, room, messages, now, event_id in called_off)
            await uow.rooms.save(list(rooms.values()))
            await uow.outbox.add([Outgoing.of(m) for m in outgoing])
            await uow.commit()
        self._relay.submit(uow.outbox.written)

    async def _join(self, uow: WaitingRoomUnitOfWork, room: WaitingRoom, messages: list[Message],
                    now: datetime, called_off: bool) -> list[Message]:
        """Places new visitors (none once the event is called off) and answers known ones with their place."""
        visitor_ids = sorted({m.data["visitorId"] for m in messages})
        known = await uow.visitors.find(room.event_id, visitor_ids)
        fresh: list[Place] = []
        outgoing: list[Message] = []
        for message in messages:
            visitor_id = message.data["visitorId"]
            place = known.get(visitor_id)
            if place is None and called_off:
                outgoing.append(_placed(message, None, new=False, code=errors.EventCancelled.code))
            elif place is None:
                if room.due_to_open(_sent_at(message, now)):
                    # A join sent after the opening time: everyone before it in Kafka is the pre-queue.
                    await uow.visitors.add(room.event_id, fresh)
                    fresh = []
                    outgoing.append(await self._open(uow, room, now))
                    known = await uow.visitors.find(room.event_id, visitor_ids)
                join_seq, position = room.join(now)
                place = Place(visitor_id, message.data["queueToken"], join_seq, position)
                known[visitor_id] = place
                fresh.append(place)
                self.joins += 1
                outgoing.append(_placed(message, place, new=True))
            else:
                outgoing.append(_placed(message, place, new=False))
        await uow.visitors.add(room.event_id, fresh)
        return outgoing

    async def _open(self, uow: WaitingRoomUnitOfWork, room: WaitingRoom, now: datetime) -> Message:
        places = room.open(await uow.visitors.pre_queue(room.event_id), now, self._rng)
        await uow.visitors.place(room.event_id, places)
        log.info("opened the waiting room of %s: %d visitors placed in random order (draw %s)", room.event_id,
                 len(places), room.shuffle_digest)
        return figures(room, now)

    async def _change(self, message: Message) -> None:
        now = self._clock()
        on_sale = on_sale_from_data(message.data)
        uow = self._unit_of_work()
        async with uow:
            room = (await uow.rooms.lock([message.event_id])).get(message.event_id)
            outgoing = []
            if room is None:
                asked_at = on_sale.opens_at
                on_sale = first_opening(on_sale, await uow.rooms.seats_held(message.event_id), now)
                if on_sale.opens_at != asked_at:
                    log.warning("on-sale of %s asked to open at %s, after buyers took seats: it opens now instead",
                                message.event_id, iso(asked_at))
                room = WaitingRoom(message.event_id, on_sale.opens_at, on_sale.admit_per_minute,
                                   on_sale.admission_minutes, on_sale.waiting_room)
                await uow.rooms.create(room)
            else:
                # What the old rate allowed until now is admitted before the new one applies.
                outgoing += await self._admit(uow, room, now)
                room.change(on_sale, now)
                await uow.rooms.save([room])
            outgoing.append(figures(room, now, admitted_last_minute=await self._last_minute(uow, room, now)))
            await uow.outbox.add([Outgoing.of(m) for m in outgoing])
            await uow.commit()
        self._relay.submit(uow.outbox.written)
        log.info("on-sale of %s set: opens %s, waiting room %s, %s a minute, admissions last %d minutes",
                 message.event_id, iso(on_sale.opens_at), "on" if on_sale.waiting_room else "off",
                 on_sale.admit_per_minute, on_sale.admission_minutes)

    async def tick(self) -> None:
        """Opens the rooms whose time has come and admits as many as each room's rate allows by now."""
        now, due = await self.rooms_due()
        may_open = self.opening_check()
        for event_id in due:
            await self.tick_room(event_id, now, may_open)

    def opening_check(self) -> Callable[[], Awaitable[bool]]:
        """Whether a room due to open may open, asked at most once a tick and only when one is due. A room opens
        with every join sent before its opening in the draw, so not while joins wait unread in Kafka (this
        service restarted after the opening time, the pre-queue's last joins still in Kafka). The first join
        sent after the opening time opens the room as it is placed, behind all read before it."""
        answer: list[bool] = []

        async def may_open() -> bool:
            if not answer:
                answer.append(self._joins is None or await self._joins.none_unread())
            return answer[0]
        return may_open

    async def rooms_due(self) -> tuple[datetime, list[str]]:
        """Now, and the rooms with work by now: an opening whose time has come or visitors to admit."""
        now = self._clock()
        uow = self._unit_of_work()
        async with uow:
            return now, await uow.rooms.needing_work(now)

    async def tick_room(self, event_id: str, now: datetime,
                        may_open: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Opens one room if its time has come (and `may_open`: see opening_check) and admits as many as its
        rate allows by `now`, in a transaction of its own."""
        uow = self._unit_of_work()
        async with uow:
            room = (await uow.rooms.lock([event_id])).get(event_id)
            if room is None:
                return
            outgoing = []
            if room.due_to_open(now):
                if may_open is not None and not await may_open():
                    log.debug("the opening of %s waits for the joins still unread", event_id)
                    return  # nobody is admitted before the opening
                outgoing.append(await self._open(uow, room, now))
            outgoing += await self._admit(uow, room, now)
            await uow.rooms.save([room])
            await uow.outbox.add([Outgoing.of(m) for m in outgoing])
            await uow.commit()
        self._relay.submit(uow.outbox.written)


def _placed(message: Message, place: Place | None, *, new: bool, code: str | None = None) -> Message:
    data: dict[str, Any] = {"visitorId": message.data["visitorId"],
                            "queueToken": place.queue_token if place else message.data["queueToken"],
                            "position": place.position if place else None, "new": new}
    if code is not None:
        data["code"] = code
    return Message(topics.QUEUE_PLACED, message.event_id, data, message.request_id)
