"""Read models for the gateway: plain queries, no domain objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from boxoffice.domain.model import shown_status
from boxoffice.messages import SEAT_RESERVATION_FAILED, Message, decode, iso


def _counts(r: asyncpg.Record) -> dict[str, int]:
    return {"totalSeats": r["total"], "available": r["available"], "reserved": r["reserved"], "booked": r["booked"]}


# The counts the booking service keeps in the transaction that moves the seats: they agree with the seat map at
# once (the catalog's copy in event_availability follows the seat messages a moment later).
_EVENT_COLUMNS = """e.event_id, e.name, e.venue_name, e.venue_city, e.starts_at, e.currency, e.status,
                    a.total, e.seats_available AS available, e.seats_reserved AS reserved, e.seats_booked AS booked"""


def _event(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "eventId": r["event_id"], "name": r["name"],
        "venue": {"name": r["venue_name"], "city": r["venue_city"]},
        "startsAt": iso(r["starts_at"]), "date": iso(r["starts_at"]), "currency": r["currency"].strip(), **_counts(r),
        "status": "cancelled" if r["status"] == "cancelled" else "on_sale",
    }


async def list_events(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events e JOIN event_availability a USING (event_id) ORDER BY e.starts_at")
    return [_event(r) for r in rows]


async def get_event(pool: asyncpg.Pool, event_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"SELECT {_EVENT_COLUMNS}, e.hold_seconds FROM events e JOIN event_availability a USING (event_id) "
        "WHERE e.event_id = $1", event_id)
    if row is None:
        return None
    categories = await pool.fetch(
        """SELECT c.category_id, c.name, c.price, count(s.seat_id) AS seats
           FROM price_categories c LEFT JOIN seats s USING (event_id, category_id)
           WHERE c.event_id = $1 GROUP BY c.category_id, c.name, c.price ORDER BY c.price DESC""", event_id)
    sections = await pool.fetch(
        "SELECT section, min(position) AS first FROM seats WHERE event_id = $1 GROUP BY section ORDER BY first",
        event_id)
    room = await waiting_room(pool, event_id)
    return {
        **_event(row),
        "priceCategories": [{"categoryId": c["category_id"], "name": c["name"], "price": float(c["price"]),
                             "seats": c["seats"]} for c in categories],
        "sections": [s["section"] for s in sections],
        **await _cancellation(pool, event_id),
        "onSale": on_sale_view(room) if room else None,
        "queue": queue_figures(room) if room else None,
        "holdSeconds": row["hold_seconds"],
    }


async def created_by(pool: asyncpg.Pool, event_id: str, request_id: str) -> bool | None:
    """Whether the event was created by this creation request (False: by another one); None while it does not
    exist."""
    row = await pool.fetchrow("SELECT creation_request FROM events WHERE event_id = $1", event_id)
    return None if row is None else row["creation_request"] == request_id


async def event_organiser(pool: asyncpg.Pool, event_id: str) -> str | None:
    """The account that created the event; None when it was created without one, or does not exist."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT organiser_id FROM events WHERE event_id = $1", event_id)


async def event_starts_at(pool: asyncpg.Pool, event_id: str) -> datetime | None:
    """When the event starts; None when it does not exist."""
    starts_at: datetime | None = await pool.fetchval("SELECT starts_at FROM events WHERE event_id = $1", event_id)
    return starts_at


async def seats_held(pool: asyncpg.Pool, event_id: str) -> bool:
    """Whether buyers hold or own seats of the event now."""
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM booking_seats WHERE event_id = $1 AND live)",
                                    event_id))


async def event_cancelled(pool: asyncpg.Pool, event_id: str) -> bool:
    return bool(await pool.fetchval("SELECT status = 'cancelled' FROM events WHERE event_id = $1", event_id))


async def _cancellation(pool: asyncpg.Pool, event_id: str) -> dict[str, Any]:
    """An event's status and, once called off, how far its cancellation has got."""
    row = await pool.fetchrow("SELECT status, cancelled_at FROM events WHERE event_id = $1", event_id)
    if row is None or row["status"] != "cancelled":
        return {"status": "on_sale"}
    counts = await pool.fetchrow(
        # A confirmed booking with a refund id is one whose refund the provider refused: the organiser's to settle.
        """SELECT count(*) FILTER (WHERE end_reason = 'event_cancelled') AS released,
                  count(*) FILTER (WHERE status IN ('paying', 'refunding')
                                      OR status = 'confirmed' AND refund_id IS NULL) AS to_refund,
                  count(*) FILTER (WHERE status = 'confirmed' AND refund_id IS NOT NULL) AS refused,
                  count(*) FILTER (WHERE status = 'refunded' AND updated_at >= $2) AS refunded
           FROM bookings WHERE event_id = $1""", event_id, row["cancelled_at"])
    assert counts is not None  # an aggregate has a row
    return {"status": "cancelled", "cancellation": {
        "cancelledAt": iso(row["cancelled_at"]), "holdsReleased": counts["released"],
        "bookingsToRefund": counts["to_refund"], "bookingsRefunded": counts["refunded"],
        "refundsRefused": counts["refused"], "done": counts["to_refund"] == 0}}


async def seat_map(pool: asyncpg.Pool, event_id: str) -> list[dict[str, Any]]:
    """Each seat of the event with its status, in the map's order (as GET /events/{id}/seats gives it)."""
    return orjson.loads(await seat_map_json(pool, event_id))  # type: ignore[no-any-return]


async def seat_map_json(pool: asyncpg.Pool, event_id: str) -> bytes:
    """The seat map as JSON, written by PostgreSQL: an event of 100,000 seats is 10 MB of it, which in the gateway
    held its event loop for most of a second (rows decoded, dicts built, JSON written) and every other request
    with it."""
    text: str = await pool.fetchval(
        """SELECT '[' || coalesce(string_agg(row_to_json(seat)::text, ',' ORDER BY position), '') || ']'
           FROM seats, LATERAL (SELECT seat_id AS "seatId", row_label AS "row", seat_number AS "number", section,
                                       category_id AS category, price::float8 AS price, status) seat
           WHERE event_id = $1""", event_id)
    return text.encode()


async def seat_ids(pool: asyncpg.Pool, event_id: str) -> frozenset[str] | None:
    """The seats of an event, or None when the event does not exist."""
    rows = await pool.fetch("SELECT seat_id FROM seats WHERE event_id = $1", event_id)
    if rows:
        return frozenset(r["seat_id"] for r in rows)
    exists = await pool.fetchval("SELECT true FROM events WHERE event_id = $1", event_id)
    return frozenset() if exists else None


def _booking(r: asyncpg.Record) -> dict[str, Any]:
    status = shown_status(r["status"])
    return {
        "success": True, "bookingId": str(r["booking_id"]), "eventId": r["event_id"], "userId": r["user_id"],
        "status": status, "seatIds": list(r["seat_ids"]), "amount": float(r["amount"]),
        "currency": r["currency"].strip(), "expiresAt": iso(r["expires_at"]), "paymentId": r["payment_id"],
        "createdAt": iso(r["created_at"]), "updatedAt": iso(r["updated_at"]),
        **({"refundId": r["refund_id"]} if r["status"] == "refunded" else {}),
    }


async def get_booking(pool: asyncpg.Pool, booking_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM bookings WHERE booking_id = $1", booking_id)
    return _booking(row) if row else None


async def request_outcome(pool: asyncpg.Pool, request_id: str) -> tuple[Message, str] | None:
    """(outcome message, body hash) of a decided reservation request."""
    row = await pool.fetchrow("SELECT outcome, body_hash FROM booking_requests WHERE request_id = $1", request_id)
    if row is None:
        return None
    return decode(row["outcome"]), row["body_hash"]


async def withdraw_request(pool: asyncpg.Pool, request_id: str, body_hash: str, refusal: Message) -> Message | None:
    """Stores `refusal` as the decision of a reservation request whose fate in Kafka is unknown, unless the
    booking service decided it first; that decision, or None once the refusal is what the request comes to (the
    booking service then finds it decided, and holds nothing for it, whenever the message reaches it)."""
    stored = await pool.fetchval(
        "INSERT INTO booking_requests (request_id, event_id, body_hash, outcome_topic, outcome) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING RETURNING true",
        request_id, refusal.event_id, body_hash, refusal.type, refusal.encode())
    if stored:
        return None
    decided = await request_outcome(pool, request_id)
    return decided[0] if decided is not None else None


async def forget_withdrawal(pool: asyncpg.Pool, request_id: str) -> None:
    """A request read back as withdrawn is asked again (the same Idempotency-Key): it may be decided afresh. A
    stored decision is never replaced, so the refusal read is the row deleted."""
    await pool.execute("DELETE FROM booking_requests WHERE request_id = $1 AND outcome_topic = $2",
                       request_id, SEAT_RESERVATION_FAILED)


async def user_bookings(pool: asyncpg.Pool, user_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM bookings WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2", user_id, limit)
    return [_booking(r) for r in rows]


_BOOKING_STATE = ("SELECT booking_id, event_id, user_id AS \"userId\", status, payment_id, amount, currency, "
                  "seat_ids, refund_id FROM bookings ")


async def booking_state(pool: asyncpg.Pool, booking_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(_BOOKING_STATE + "WHERE booking_id = $1", booking_id)


async def payment_decline(pool: asyncpg.Pool, booking_id: str, payment_id: str) -> tuple[str | None, str | None]:
    """The provider's decline code and reason for this payment of the booking, as the payment service recorded
    them (None, None if it holds no decline)."""
    row = await pool.fetchrow("SELECT decline_code, decline_reason FROM payments "
                              "WHERE booking_id = $1::uuid AND payment_id = $2 AND status = 'failed'",
                              booking_id, payment_id)
    return (None, None) if row is None else (row["decline_code"], row["decline_reason"])


async def booking_states(pool: asyncpg.Pool, booking_ids: list[str]) -> list[asyncpg.Record | None]:
    """booking_state of each id, in their order, in one statement: a payment rush reads many at once."""
    rows = await pool.fetch(_BOOKING_STATE + "WHERE booking_id = ANY($1::uuid[])", booking_ids)
    found = {str(r["booking_id"]): r for r in rows}
    return [found.get(str(uuid.UUID(b))) for b in booking_ids]


_WAITLIST_ENTRY = """SELECT w.*, CASE WHEN w.status = 'waiting' THEN 1 + (
                          SELECT count(*) FROM waitlist a
                          WHERE a.event_id = w.event_id AND a.status = 'waiting' AND a.position < w.position)
                      END AS place
                  FROM waitlist w"""


async def waitlist_entry(pool: asyncpg.Pool, waitlist_id: str) -> dict[str, Any] | None:
    """An entry of a waiting list with its place in line now (1: next to be offered seats) while it waits."""
    r = await pool.fetchrow(f"{_WAITLIST_ENTRY} WHERE w.waitlist_id = $1::uuid", waitlist_id)
    return _waitlist_entry(r) if r is not None else None


async def waitlist_entry_joined_by(pool: asyncpg.Pool, request_id: str) -> dict[str, Any] | None:
    """The entry that the join with this request id made, as it stands now."""
    r = await pool.fetchrow(f"{_WAITLIST_ENTRY} WHERE w.request_id = $1", request_id)
    return _waitlist_entry(r) if r is not None else None


async def event_called_off(pool: asyncpg.Pool, event_id: str) -> bool:
    return bool(await pool.fetchval("SELECT status = 'cancelled' FROM events WHERE event_id = $1", event_id))


def _waitlist_entry(r: asyncpg.Record) -> dict[str, Any]:
    return {"success": True, "waitlistId": str(r["waitlist_id"]), "eventId": r["event_id"], "userId": r["user_id"],
            "quantity": r["quantity"], "status": r["status"], "position": r["place"],
            "bookingId": str(r["booking_id"]) if r["booking_id"] else None,
            "joinedAt": iso(r["created_at"]), "updatedAt": iso(r["updated_at"])}


_ROOM = """SELECT r.event_id, r.enabled, r.opens_at, r.admit_per_minute, r.admission_minutes, r.opened_at, r.joined,
                  r.last_position, r.serving_position, r.pre_queue_size, r.shuffle_digest,
                  (SELECT coalesce(sum(a.last_position - a.first_position + 1), 0) FROM queue_admissions a
                   WHERE a.event_id = r.event_id AND a.admitted_at > now() - interval '1 minute') AS last_minute
           FROM waiting_rooms r WHERE r.event_id = $1"""


async def waiting_room(pool: asyncpg.Pool, event_id: str) -> asyncpg.Record | None:
    """An event's on-sale settings and its waiting room's figures, or None when it has none."""
    return await pool.fetchrow(_ROOM, event_id)


def on_sale_view(room: asyncpg.Record) -> dict[str, Any]:
    return {"opensAt": iso(room["opens_at"]), "waitingRoom": room["enabled"],
            "admitPerMinute": room["admit_per_minute"] if room["admit_per_minute"] is not None else "auto",
            "admissionMinutes": room["admission_minutes"]}


def queue_figures(room: asyncpg.Record) -> dict[str, Any]:
    return {"opened": room["opened_at"] is not None, "size": room["joined"],
            "waiting": room["joined"] - room["serving_position"], "servingPosition": room["serving_position"],
            "admittedLastMinute": int(room["last_minute"]), "preQueueSize": room["pre_queue_size"],
            "shuffleDigest": room["shuffle_digest"]}


async def queue_place(pool: asyncpg.Pool, event_id: str, queue_token: str) -> asyncpg.Record | None:
    """A visitor's place by queue token, with when it was admitted if the serving position has passed it."""
    return await pool.fetchrow(
        """SELECT v.visitor_id, v.position,
                  (SELECT a.admitted_at FROM queue_admissions a
                   WHERE a.event_id = v.event_id AND a.first_position <= v.position AND a.last_position >= v.position
                  ) AS admitted_at
           FROM queue_visitors v WHERE v.event_id = $1 AND v.queue_token = $2""", event_id, queue_token)


async def queue_positions(pool: asyncpg.Pool, event_id: str, queue_tokens: list[str]) -> dict[str, int | None]:
    """The positions of many visitors in one query (the watchers of one gateway, at the opening)."""
    rows = await pool.fetch(
        "SELECT queue_token, position FROM queue_visitors WHERE event_id = $1 AND queue_token = ANY($2)",
        event_id, queue_tokens)
    return {r["queue_token"]: r["position"] for r in rows}
