"""A stopping gateway's unanswered requests, kept in PostgreSQL until a gateway starts and writes them again."""

from __future__ import annotations

import logging

from boxoffice.adapters.postgres import Connection
from boxoffice.messages import Message, decode

log = logging.getLogger(__name__)


async def keep_unanswered(con: Connection, requests: list[Message]) -> None:
    """In the order they were sent."""
    kept = [(m.request_id, m.encode()) for m in requests if m.request_id is not None]
    if kept:
        await con.execute("INSERT INTO gateway_unanswered (request_id, payload) "
                          "SELECT r, p FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS t(r, p, n) ORDER BY n",
                          [r for r, _ in kept], [p for _, p in kept])


async def forget_answered(con: Connection, request_ids: list[str]) -> None:
    await con.execute("DELETE FROM gateway_unanswered WHERE request_id = ANY($1::text[])", request_ids)


async def take_unanswered(con: Connection, within_seconds: float) -> list[Message]:
    """Every request kept in the last `within_seconds` (older ones are dropped: asked again so late, a hold would
    surprise its buyer), oldest first, deleted as it is taken: two gateways starting together split them.
    Inside a transaction, so that they stay kept if writing them again fails."""
    rows = await con.fetch("DELETE FROM gateway_unanswered RETURNING id, request_id, payload, "
                           "kept_at > now() - make_interval(secs => $1) AS recent", within_seconds)
    rows = [row for row in rows if row["recent"]]
    taken = []
    for row in sorted(rows, key=lambda r: r["id"]):
        try:
            taken.append(decode(bytes(row["payload"])))
        except ValueError as exc:
            log.error("a kept request %s could not be read, and is dropped: %s", row["request_id"], exc)
    return taken
