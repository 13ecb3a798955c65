"""Waits for the booking service's answer to a request the gateway published."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from boxoffice.adapters.kafka import RestartedLogs, tail_messages
from boxoffice.messages import Message

log = logging.getLogger(__name__)


class UnansweredRequests:
    """Requests for the booking service that this gateway wrote to Kafka and has not yet read the answer to,
    for a while.

    They exist nowhere else until the booking service decides them: when the embedded broker, which keeps
    messages in memory only, starts again, they are written again, and a gateway that stops keeps them in
    PostgreSQL for the next one to write again (deciding a request is idempotent by its id: one already
    decided answers its stored outcome; a payment, cancel or refund already made is not made twice)."""

    MOST = 200_000

    def __init__(self, retain_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._retain = retain_seconds
        self._clock = clock
        # Oldest first. An OrderedDict finds its oldest entry at once; a dict would step over the holes
        # that answered requests leave at its front, on every request.
        self._sent: OrderedDict[str, tuple[float, Message]] = OrderedDict()
        # Those of them not yet kept in PostgreSQL, also oldest first: a pass for the overdue ones starts at the
        # first not kept, not behind every one kept during a long outage.
        self._unkept: OrderedDict[str, tuple[float, Message]] = OrderedDict()
        # Those also kept in PostgreSQL (they were long unanswered), and those of them answered since.
        self._kept: set[str] = set()
        self._answered_kept: list[str] = []

    def sent(self, message: Message) -> None:
        if message.request_id is None or self._retain <= 0:
            return
        entry = (self._clock(), message)
        self._sent[message.request_id] = entry
        self._sent.move_to_end(message.request_id)
        if message.request_id not in self._kept:
            self._unkept[message.request_id] = entry
            self._unkept.move_to_end(message.request_id)
        self._forget_old()

    def answered(self, request_id: str) -> None:
        self._sent.pop(request_id, None)
        self._unkept.pop(request_id, None)
        if self._kept and request_id in self._kept:
            self._kept.discard(request_id)
            self._answered_kept.append(request_id)

    def overdue(self, seconds: float) -> list[Message]:
        """Those unanswered for `seconds` or more and not yet kept in PostgreSQL, oldest first."""
        cutoff = self._clock() - seconds
        found = []
        for sent_at, message in self._unkept.values():
            if sent_at > cutoff:
                break
            found.append(message)
        return found

    def kept(self, messages: list[Message]) -> None:
        """These are now kept in PostgreSQL too (unless answered meanwhile: then they are to be deleted)."""
        for message in messages:
            if message.request_id is None:
                continue
            if message.request_id in self._sent:
                self._kept.add(message.request_id)
                self._unkept.pop(message.request_id, None)
            else:
                self._answered_kept.append(message.request_id)

    def answered_kept(self) -> list[str]:
        """The kept requests answered since last asked: their rows are to be deleted."""
        taken, self._answered_kept = self._answered_kept, []
        return taken

    def forget_later(self, request_ids: list[str]) -> None:
        """Rows that could not be deleted now: asked for again at the next answered_kept."""
        self._answered_kept += request_ids

    def waiting(self) -> list[Message]:
        self._forget_old()
        return [message for _, message in self._sent.values()]

    def not_kept(self) -> list[Message]:
        """Those waiting that are not kept in PostgreSQL yet."""
        self._forget_old()
        return [message for _, message in self._unkept.values()]

    def _forget_old(self) -> None:
        cutoff = self._clock() - self._retain
        while self._sent:
            oldest_at = next(iter(self._sent.values()))[0]
            if oldest_at >= cutoff and len(self._sent) <= self.MOST:
                return
            forgotten, _ = self._sent.popitem(last=False)
            self._unkept.pop(forgotten, None)
            self._kept.discard(forgotten)  # its row is too old to be written again (take_unanswered)


async def within(reply: asyncio.Future[Message], seconds: float) -> Message:
    """The reply, or TimeoutError once `seconds` have passed. One timer instead of asyncio.timeout and shield
    (4 % of the gateway's samples per hold under `bench holds`); each waiter has a future of its own, so ending it
    on time concerns no one else, and the waiter skips a future already done."""
    timer = asyncio.get_running_loop().call_later(seconds, _too_late, reply)
    try:
        return await reply
    finally:
        timer.cancel()


def _too_late(reply: asyncio.Future[Message]) -> None:
    if not reply.done():
        reply.set_exception(TimeoutError())


class ReplyWaiter:
    def __init__(self, consumer: AIOKafkaConsumer, on_reply: Callable[[], None] = lambda: None,
                 unanswered: UnansweredRequests | None = None,
                 restarted_logs: RestartedLogs | None = None) -> None:
        self._consumer = consumer
        self._on_reply = on_reply
        self.unanswered = unanswered or UnansweredRequests(0.0)
        self._restarted_logs = restarted_logs or RestartedLogs(consumer)
        self._waiting: dict[str, list[asyncio.Future[Message]]] = {}
        # Idempotency-Key requests in flight (request id → body hash) until their answer is read: a second
        # body under the same key is refused while the first is still undecided.
        self._bodies: OrderedDict[str, str] = OrderedDict()
        self._by_booking: dict[str, list[tuple[asyncio.Future[Message], Callable[[Message], bool]]]] = {}

    def claim(self, request_id: str, body_hash: str) -> bool:
        """False if this request id is in flight here with another body."""
        held = self._bodies.setdefault(request_id, body_hash)
        if len(self._bodies) > UnansweredRequests.MOST:
            self._bodies.popitem(last=False)
        return held == body_hash

    def release(self, request_id: str) -> None:
        """The request came to nothing (withdrawn): its key may carry another body."""
        self._bodies.pop(request_id, None)

    def expect(self, request_id: str) -> asyncio.Future[Message]:
        """Register before publishing, so that a fast answer cannot arrive unseen."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(request_id, []).append(future)
        return future

    def forget(self, request_id: str, future: asyncio.Future[Message]) -> None:
        futures = self._waiting.get(request_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiting[request_id]

    def expect_booking(self, booking_id: str, accept: Callable[[Message], bool]) -> asyncio.Future[Message]:
        """The next message about a booking that `accept` takes: for confirm and cancel, whose answer may
        also come from a payment or expiry that another request started."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._by_booking.setdefault(booking_id, []).append((future, accept))
        return future

    def forget_booking(self, booking_id: str, future: asyncio.Future[Message]) -> None:
        waiters = [w for w in self._by_booking.get(booking_id, []) if w[0] is not future]
        if waiters:
            self._by_booking[booking_id] = waiters
        else:
            self._by_booking.pop(booking_id, None)

    def _resolve_booking(self, message: Message) -> None:
        booking_id = message.data.get("bookingId")
        waiters = self._by_booking.get(booking_id) if isinstance(booking_id, str) else None
        for future, accept in waiters or ():
            if not future.done() and accept(message):
                future.set_result(message)

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=2000)
            await self._restarted_logs.rewind()
            if batches:
                self._on_reply()
            for message in tail_messages(batches):
                if message.request_id:
                    self.unanswered.answered(message.request_id)
                    if self._bodies:
                        self._bodies.pop(message.request_id, None)
                for future in self._waiting.pop(message.request_id or "", ()):
                    if not future.done():
                        future.set_result(message)
                if self._by_booking:
                    self._resolve_booking(message)
