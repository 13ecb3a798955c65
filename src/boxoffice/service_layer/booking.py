"""The booking service: which handler decides each topic, and the transactions they run in.

A batch from Kafka is split into runs of consecutive messages, kept in partition order. A run of a batched
topic (reservation requests, timeouts, confirmation requests, payment outcomes) is decided as a whole in one
transaction; a run of other messages shares one transaction, each message in a savepoint of its own. A
batched run whose write finds a booking and its seats disagreeing (SeatsOutOfStep) cannot tell which message
is at fault: when its topic also has a single-message handler, the run is decided again that way, and only
the faulty message is left unapplied. Counters and log lines follow the commit, and the outbox rows written
go to the relay only once they are durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from boxoffice import messages as topics
from boxoffice.domain.events import SeatsReserved
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message, in_asked_order, uuid4_text
from boxoffice.service_layer import booking_lifecycle as lifecycle
from boxoffice.service_layer import event_cancellation, holds, waitlist
from boxoffice.service_layer.booking_ports import BookingUnitOfWork, ConcurrentHoldDetected, SeatsOutOfStep
from boxoffice.service_layer.booking_report import report
from boxoffice.service_layer.decisions import AdmissionCheck, BookingRules, Decide, Decision
from boxoffice.service_layer.payment_ports import CardTokeniser
from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.seatings import Seatings

log = logging.getLogger(__name__)

BatchHandler = Callable[[BookingUnitOfWork, list[Message], Decide], Awaitable[list[Decision]]]
MessageHandler = Callable[[BookingUnitOfWork, Message, Decide], Awaitable[list[Decision]]]


@dataclass(frozen=True)
class Route:
    batch: BatchHandler | None = None  # decides a run of its topic's messages at once
    each: MessageHandler | None = None  # decides one message, in a savepoint of its own (with batch: the fallback)


TOPIC_HANDLERS: dict[str, Route] = {
    topics.SEAT_RESERVATION_REQUESTED: Route(batch=holds.reserve_seats),
    topics.SEAT_RESERVATION_TIMEOUT: Route(batch=lifecycle.expire_holds),
    topics.BOOKING_CONFIRMATION_REQUESTED: Route(lifecycle.request_payments, lifecycle.request_payment),
    topics.PAYMENT_SUCCEEDED: Route(lifecycle.payments_succeeded, lifecycle.payment_succeeded),
    topics.PAYMENT_FAILED: Route(lifecycle.payments_failed, lifecycle.payment_failed),
    topics.BOOKING_CANCELLATION_REQUESTED: Route(each=lifecycle.cancel_booking),
    topics.WAITLIST_JOIN_REQUESTED: Route(each=waitlist.join_waitlist),
    topics.WAITLIST_LEAVE_REQUESTED: Route(each=waitlist.leave_waitlist),
    topics.EVENT_CANCELLATION_REQUESTED: Route(each=event_cancellation.cancel_event),
    topics.REFUND_SUCCEEDED: Route(each=lifecycle.refund_succeeded),
    topics.REFUND_FAILED: Route(each=lifecycle.refund_failed),
}

TOPICS = list(TOPIC_HANDLERS)


class HoldWatcher(Protocol):
    def hold_created(self, expires_at: datetime) -> None: ...


def _runs(batch: list[Message]) -> list[tuple[str, list[Message]]]:
    """Consecutive messages of one batched topic, or consecutive messages decided one by one ("each")."""
    runs: list[tuple[str, list[Message]]] = []
    for message in batch:
        route = TOPIC_HANDLERS.get(message.type)
        if route is None:
            log.warning("ignoring %s %s: not a booking service topic", message.type, message.id)
            continue
        kind = message.type if route.batch is not None else "each"
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(message)
        else:
            runs.append((kind, [message]))
    return runs


def in_time_order(batch: list[Message]) -> list[Message]:
    """Kafka keeps each topic's order but none between topics (a hold, a payment and an event's cancel come on
    three): a batch is taken in the order its messages were asked for (`messages.in_asked_order`). A command
    decided one by one (an event's cancel, a booking's cancel, a waiting-list join or leave) keeps its place in
    that order; between two of them, the messages of each batched topic are gathered into one run, in the order
    the runs began, so that a run is still decided at once."""
    ordered: list[Message] = []
    runs: dict[str, list[Message]] = {}
    for message in in_asked_order(batch):
        route = TOPIC_HANDLERS.get(message.type)
        if route is not None and route.batch is not None:
            runs.setdefault(message.type, []).append(message)
            continue
        for run in runs.values():
            ordered.extend(run)
        runs = {}
        ordered.append(message)
    for run in runs.values():
        ordered.extend(run)
    return ordered


class BookingService:
    """The booking service's batch handler for the consumer loop."""

    def __init__(self, unit_of_work: Callable[[], BookingUnitOfWork], relay: OutboxSink, rules: BookingRules,
                 clock: Callable[[], datetime], holds: HoldWatcher | None = None,
                 new_booking_id: Callable[[], str] = uuid4_text,
                 admissions: AdmissionCheck | None = None, cards: CardTokeniser | None = None) -> None:
        self._unit_of_work, self._relay, self._rules = unit_of_work, relay, rules
        self._admissions, self._cards = admissions, cards
        self._clock, self._holds, self._new_booking_id = clock, holds, new_booking_id
        self.seatings = Seatings()
        self.decided = 0
        self.batches = 0
        self.lifecycle_messages = 0
        self.seconds_in_store = 0.0

    def stats(self) -> dict[str, float]:
        return {"decided": self.decided, "batches": self.batches, "lifecycle": self.lifecycle_messages,
                "storeSeconds": round(self.seconds_in_store, 3)}

    async def __call__(self, batch: list[Message]) -> None:
        for kind, run in _runs(in_time_order(batch)):
            started = time.perf_counter()
            decide = Decide(self._rules, self._clock(), self._new_booking_id, self.seatings, self._admissions,
                            self._cards)
            if kind == "each":
                decisions = await self._one_by_one(run, decide)
            else:
                decisions = await self._as_a_whole(TOPIC_HANDLERS[kind], run, decide)
            self.seconds_in_store += time.perf_counter() - started
            report(decisions)
            if kind == topics.SEAT_RESERVATION_REQUESTED:
                self.batches += 1
                self.decided += len(run)
            else:
                self.lifecycle_messages += len(run)
            deadlines = [event.expires_at for event, _ in decisions if isinstance(event, SeatsReserved)]
            if self._holds is not None and deadlines:
                self._holds.hold_created(min(deadlines))  # holds, and waiting-list offers

    async def _as_a_whole(self, route: Route, run: list[Message], decide: Decide) -> list[Decision]:
        assert route.batch is not None
        try:
            try:
                return await self._in_one_transaction(route.batch, run, decide)
            except ConcurrentHoldDetected:
                # A seating that was behind offered a seat already taken (or another process decided
                # meanwhile): the run is decided again from what the database holds now.
                log.warning("a seat of the batch was taken meanwhile; deciding the batch again")
                return await self._in_one_transaction(route.batch, run, decide)
        except SeatsOutOfStep:
            if route.each is None:
                raise
            # Which message's booking is at fault is unknown: one by one, only that one is left unapplied.
            log.warning("a booking of the %s run and its seats disagree; deciding it one message at a time",
                        run[0].type)
            return await self._one_by_one(run, decide)

    async def _in_one_transaction(self, handler: BatchHandler, run: list[Message], decide: Decide) -> list[Decision]:
        try:
            async with self._unit_of_work() as uow:
                decisions = await handler(uow, run, decide)
                await uow.commit()
        except BaseException:
            self.seatings.abandoned()
            raise
        self.seatings.committed()
        self._relay.submit(uow.outbox.written)
        return decisions

    async def _one_by_one(self, run: list[Message], decide: Decide) -> list[Decision]:
        decisions: list[Decision] = []
        async with self._unit_of_work() as uow:
            for message in run:
                route = TOPIC_HANDLERS[message.type]
                assert route.each is not None
                token = REQUEST_ID.set(message.request_id)  # for the lines logged while it is handled
                try:
                    async with uow.savepoint():
                        decided = await route.each(uow, message, decide)
                    decisions += decided
                except SeatsOutOfStep:
                    log.exception("%s %s left unapplied: the booking and its seats disagree", message.type,
                                  message.id)
                finally:
                    REQUEST_ID.reset(token)
            await uow.commit()
        self._relay.submit(uow.outbox.written)
        return decisions
