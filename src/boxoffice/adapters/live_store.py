"""Reads an event's seat map together with its change sequence number, as one consistent snapshot."""

from __future__ import annotations

from typing import Any

import asyncpg


async def load_seat_map(pool: asyncpg.Pool, event_id: str) -> tuple[int, list[dict[str, Any]]] | None:
    async with pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
        seq = await con.fetchval("SELECT change_seq FROM events WHERE event_id = $1", event_id)
        if seq is None:
            return None
        rows = await con.fetch(
            """SELECT seat_id, row_label, seat_number, section, category_id, price, status
               FROM seats WHERE event_id = $1 ORDER BY position""", event_id)
    return seq, [{"seatId": r["seat_id"], "row": r["row_label"], "number": r["seat_number"],
                  "section": r["section"], "category": r["category_id"], "price": float(r["price"]),
                  "status": r["status"]} for r in rows]
