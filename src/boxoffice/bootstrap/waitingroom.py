"""The waitingroom service's parts: its unit of work on PostgreSQL, the outbox relay, the admission ticker."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets

from boxoffice import messages as topics
from boxoffice.adapters.kafka import GroupProgress
from boxoffice.adapters.outbox import OutboxRelay
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.adapters.waiting_room_store import PostgresWaitingRoomUnitOfWork
from boxoffice.bootstrap import ServiceRuntime, run_consumer_service, signing_key
from boxoffice.logs import Outage
from boxoffice.messages import utc_now
from boxoffice.service_layer.waiting_room import TOPICS, WaitingRoomService
from boxoffice.service_layer.waiting_room_ports import UnreadJoins

log = logging.getLogger("boxoffice.waitingroom")


def waiting_room_service(rt: ServiceRuntime, tokens: QueueTokens, rng: random.Random | None = None,
                         joins: UnreadJoins | None = None) -> tuple[WaitingRoomService, OutboxRelay]:
    relay = OutboxRelay(rt.pool, rt.publisher, producer="waitingroom", retain_seconds=rt.settings.outbox_retention)
    # The opening's draw comes from the operating system's cryptographic source: nobody can predict or replay it.
    service = WaitingRoomService(lambda: PostgresWaitingRoomUnitOfWork(rt.pool), relay, utc_now,
                                 rng or secrets.SystemRandom(), rt.settings.waiting_room_active_ceiling, joins,
                                 queue_token=tokens.queue_token)
    return service, relay


class RoomTicker:
    """Opens and admits in each room with work. An outage is raised for the caller to wait out; a room whose
    work fails for any other reason is passed over (logged once until it works again), so that it never stops
    the other rooms' openings and admissions."""

    def __init__(self, service: WaitingRoomService) -> None:
        self._service = service
        self.failing: dict[str, Outage] = {}

    async def tick(self) -> None:
        now, due = await self._service.rooms_due()
        may_open = self._service.opening_check()
        for event_id in due:
            try:
                await self._service.tick_room(event_id, now, may_open)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                room = self.failing.setdefault(
                    event_id, Outage(log, f"opening and admitting in the waiting room of {event_id}"))
                if room.failed(exc):
                    log.exception("the waiting room of %s is passed over until it can be worked", event_id)
            else:
                if event_id in self.failing:
                    self.failing.pop(event_id).recovered()


async def tick_forever(service: WaitingRoomService, every: float) -> None:
    ticker = RoomTicker(service)
    ticking = Outage(log, "opening and admitting")
    while True:
        try:
            await ticker.tick()
            ticking.recovered()
        except TRANSIENT_ERRORS as exc:
            ticking.failed(exc)
        await asyncio.sleep(every)


async def serve(rt: ServiceRuntime) -> None:
    joins = GroupProgress(topics.QUEUE_JOINED)
    service, relay = waiting_room_service(rt, QueueTokens(await signing_key(rt.settings, rt.pool)), joins=joins)
    await run_consumer_service(rt, TOPICS, service, extra=[relay.run(),
                                                           tick_forever(service, rt.settings.queue_tick_seconds)],
                               info=lambda: {**service.stats(), "published": relay.published},
                               started=joins.follow)
