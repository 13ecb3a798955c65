"""The booking service's PostgreSQL side: decides a batch of reservation requests in one transaction.

Seats are locked in one statement, in (event, seat) order, then the domain decides each request in
the order Kafka delivered it; holds, bookings, request outcomes and outbox rows are written together.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
import orjson

from boxoffice import metrics
from boxoffice.adapters.outbox import insert_outbox
from boxoffice.adapters.sequence import stamp_sequence
from boxoffice.domain import errors, events
from boxoffice.domain.commands import ReserveSeats
from boxoffice.domain.model import Seat, SeatMap, SeatStatus
from boxoffice.service_layer.outcomes import reservation_message, reservation_result
from boxoffice.service_layer.ports import OutboxRow

log = logging.getLogger(__name__)


class ConcurrentHoldDetected(Exception):
    """A seat changed under a batch even though it was locked: the batch is rolled back and retried."""


_SEATS_PER_USER = """
    SELECT b.event_id, b.user_id, sum(cardinality(b.seat_ids))::int AS seats
    FROM bookings b JOIN unnest($1::text[], $2::text[]) AS asking(event_id, user_id)
         ON b.user_id = asking.user_id AND b.event_id = asking.event_id
    WHERE b.status IN ('pending', 'paying', 'confirmed')
    GROUP BY b.event_id, b.user_id
"""

_LOCK_SEATS = """
    SELECT s.event_id, s.seat_id, s.status, s.price, s.booking_id
    FROM seats s JOIN unnest($1::text[], $2::text[]) AS wanted(event_id, seat_id)
      ON s.event_id = wanted.event_id AND s.seat_id = wanted.seat_id
    ORDER BY s.event_id, s.seat_id
"""

_HOLD_SEATS = """
    UPDATE seats s SET status = 'RESERVED', booking_id = h.booking_id, updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::uuid[]) AS h(event_id, seat_id, booking_id)
    WHERE s.event_id = h.event_id AND s.seat_id = h.seat_id {condition}
"""

_INSERT_BOOKINGS = """
    INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency, expires_at,
                          email)
    SELECT b.booking_id, b.request_id, b.event_id, b.user_id, 'pending',
           string_to_array(b.seat_ids, ','), b.amount, b.currency, b.expires_at, b.email
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[],
                $8::timestamptz[], $9::text[])
         AS b(booking_id, request_id, event_id, user_id, seat_ids, amount, currency, expires_at, email)
"""

_INSERT_BOOKING_SEATS = """
    INSERT INTO booking_seats (booking_id, event_id, seat_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""

_INSERT_REQUESTS = """
    INSERT INTO booking_requests (request_id, event_id, body_hash, http_status, result, outcome_topic, outcome)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[], $6::text[], $7::bytea[])
"""

class BookingStore:
    def __init__(self, pool: asyncpg.Pool, *, seat_check: bool = True, seats_per_user: int | None = None) -> None:
        """seat_check=False drops the row locks and the conditional update: only for the control run
        of the race tests, which must then see a double hold. seats_per_user caps the seats one buyer
        holds or owns per event (None: no cap)."""
        self._pool = pool
        self._seat_check = seat_check
        self._seats_per_user = seats_per_user

    async def reserve(
        self, commands: list[ReserveSeats], hold: timedelta, now: datetime,
        on_loaded: Callable[[], Awaitable[None]] | None = None,
    ) -> list[OutboxRow]:
        """Decides every request not decided before; re-emits the stored outcome of those that were."""
        unique: dict[str, ReserveSeats] = {}
        for command in commands:
            unique.setdefault(command.request_id, command)
        async with self._pool.acquire() as con, con.transaction():
            decided = await con.fetch(
                "SELECT request_id, outcome_topic, outcome FROM booking_requests WHERE request_id = ANY($1)",
                list(unique),
            )
            stored = {r["request_id"]: (r["outcome_topic"], r["outcome"]) for r in decided}
            # Replayed in the order the requests came, like the first time.
            replays = [stored[request_id] for request_id in unique if request_id in stored]
            fresh = [c for c in unique.values() if c.request_id not in stored]
            outcomes = await self._decide(con, fresh, hold, now, on_loaded) if fresh else []
            outgoing = [reservation_message(outcome) for outcome in outcomes]
            await stamp_sequence(con, outgoing)
            outbox_items: list[tuple[str, bytes, bytes]] = []
            request_rows = []
            for command, (topic, message) in zip(fresh, outgoing, strict=True):
                payload = message.encode()
                status, body = reservation_result(message)
                outbox_items.append((topic, message.key, payload))
                request_rows.append((command.request_id, command.event_id, command.body_hash, status,
                                     orjson.dumps(body).decode(), topic, payload))
            if request_rows:
                await con.execute(_INSERT_REQUESTS, *(list(col) for col in zip(*request_rows, strict=True)))
            outbox_items += [(topic, _key_of(payload), payload) for topic, payload in replays]
            rows = await insert_outbox(con, outbox_items)
        _count_decisions(outcomes)  # once committed: a batch rolled back and retried counts once
        return rows

    async def _decide(
        self, con: asyncpg.Connection, commands: list[ReserveSeats], hold: timedelta, now: datetime,
        on_loaded: Callable[[], Awaitable[None]] | None,
    ) -> list[events.SeatsReserved | events.ReservationFailed]:
        currencies = dict(await con.fetch(
            "SELECT event_id, currency FROM events WHERE event_id = ANY($1)", list({c.event_id for c in commands})))
        wanted = sorted({(c.event_id, s) for c in commands for s in c.seat_ids})
        lock = " FOR UPDATE OF s" if self._seat_check else ""
        rows = await con.fetch(_LOCK_SEATS + lock, [e for e, _ in wanted], [s for _, s in wanted])
        if on_loaded:
            await on_loaded()
        maps = {event_id: SeatMap(event_id, currency.strip(), {}) for event_id, currency in currencies.items()}
        for r in rows:
            maps[r["event_id"]].seats[r["seat_id"]] = Seat(
                r["seat_id"], SeatStatus(r["status"]), r["price"], str(r["booking_id"]) if r["booking_id"] else None)

        if self._seats_per_user is not None:
            for seat_map in maps.values():
                seat_map.per_user_limit = self._seats_per_user
            pairs = sorted({(c.event_id, c.user_id) for c in commands})
            for r in await con.fetch(_SEATS_PER_USER, [e for e, _ in pairs], [u for _, u in pairs]):
                if r["event_id"] in maps:
                    maps[r["event_id"]].seats_per_user[r["user_id"]] = r["seats"]

        outcomes: list[events.SeatsReserved | events.ReservationFailed] = []
        for command in commands:
            seat_map = maps.get(command.event_id)
            if seat_map is None:
                outcomes.append(events.ReservationFailed(
                    command.request_id, command.event_id, command.user_id, list(command.seat_ids),
                    errors.EventNotFound.code, f"Event {command.event_id} does not exist"))
                continue
            outcomes.append(seat_map.hold(command.request_id, command.user_id, list(command.seat_ids),
                                          str(uuid.uuid4()), now + hold))
        await self._write_holds(con, [o for o in outcomes if isinstance(o, events.SeatsReserved)],
                                {c.request_id: c.email for c in commands})
        return outcomes

    async def _write_holds(self, con: asyncpg.Connection, holds: list[events.SeatsReserved],
                           emails: dict[str, str]) -> None:
        if not holds:
            return
        seat_rows = sorted((h.event_id, s, h.booking_id) for h in holds for s in h.seat_ids)
        columns = [list(col) for col in zip(*seat_rows, strict=True)]
        condition = "AND s.status = 'AVAILABLE'" if self._seat_check else ""
        updated = await con.execute(_HOLD_SEATS.format(condition=condition), *columns)
        if int(updated.split()[-1]) != len(seat_rows):
            raise ConcurrentHoldDetected(f"expected to hold {len(seat_rows)} seats, held {updated}")
        await con.execute(_INSERT_BOOKINGS, *(list(col) for col in zip(*[
            (h.booking_id, h.request_id, h.event_id, h.user_id, ",".join(h.seat_ids), h.amount, h.currency,
             h.expires_at, emails.get(h.request_id, "")) for h in holds], strict=True)))
        await con.execute(_INSERT_BOOKING_SEATS, columns[2], columns[0], columns[1])


def _key_of(payload: bytes) -> bytes:
    from boxoffice.messages import decode

    return decode(payload).key


def _count_decisions(outcomes: list[events.SeatsReserved | events.ReservationFailed]) -> None:
    """A dict increment per decision; the per-decision log lines are DEBUG, so the hold path writes none."""
    debug = log.isEnabledFor(logging.DEBUG)
    for outcome in outcomes:
        if isinstance(outcome, events.SeatsReserved):
            metrics.HOLDS_GRANTED.inc()
            if debug:
                log.debug("hold granted: booking %s, seats %s", outcome.booking_id, ",".join(outcome.seat_ids),
                          extra={"requestId": outcome.request_id})
        else:
            metrics.HOLDS_REFUSED.inc(outcome.code)
            if debug:
                log.debug("hold refused (%s): %s", outcome.code, outcome.reason,
                          extra={"requestId": outcome.request_id})
