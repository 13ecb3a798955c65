"""What the notification service reads and records in PostgreSQL: bookings, event details and emails sent."""

from __future__ import annotations

import asyncpg

from boxoffice.service_layer.notification_ports import EventInfo, SeatLabel, StoredBooking


class NotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def booking(self, booking_id: str) -> StoredBooking | None:
        row = await self._pool.fetchrow(
            """SELECT b.event_id, b.user_id, b.email, b.status, b.seat_ids, b.amount, b.currency, b.expires_at,
                      b.payment_id, b.end_reason, e.status = 'cancelled' AS event_cancelled
               FROM bookings b JOIN events e USING (event_id) WHERE b.booking_id = $1::uuid""", booking_id)
        if row is None:
            return None
        return StoredBooking(booking_id, row["event_id"], row["user_id"], row["email"], row["status"],
                             tuple(row["seat_ids"]), row["amount"], row["currency"].strip(), row["expires_at"],
                             row["payment_id"], row["end_reason"], bool(row["event_cancelled"]))

    async def event_info(self, event_id: str, seat_ids: list[str]) -> EventInfo:
        """Name, venue, date and each seat's place; what the catalog does not know is shown by its id."""
        async with self._pool.acquire() as con:
            event = await con.fetchrow(
                "SELECT name, venue_name, venue_city, starts_at FROM events WHERE event_id = $1", event_id)
            rows = await con.fetch(
                """SELECT seat_id, section, row_label, seat_number FROM seats
                   WHERE event_id = $1 AND seat_id = ANY($2::text[]) ORDER BY position""", event_id, seat_ids)
        known = [SeatLabel(r["seat_id"], r["section"], r["row_label"], r["seat_number"]) for r in rows]
        found = {s.seat_id for s in known}
        seats = (*known, *(SeatLabel(s) for s in seat_ids if s not in found))
        if event is None:
            return EventInfo(event_id, event_id, "", None, seats)
        venue = ", ".join(v for v in (event["venue_name"], event["venue_city"]) if v)
        return EventInfo(event_id, event["name"], venue, event["starts_at"], seats)

    async def was_sent(self, booking_id: str, kind: str) -> bool:
        return bool(await self._pool.fetchval(
            "SELECT true FROM notifications_sent WHERE booking_id = $1::uuid AND kind = $2", booking_id, kind))

    async def record_sent(self, booking_id: str, kind: str, recipient: str, message_id: str) -> None:
        await self._pool.execute(
            """INSERT INTO notifications_sent (booking_id, kind, recipient, message_id)
               VALUES ($1::uuid, $2, $3, $4) ON CONFLICT DO NOTHING""", booking_id, kind, recipient, message_id)
