"""The waiting rooms' records in PostgreSQL: rooms, visitors' places and admissions. Decides nothing."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from boxoffice.adapters.postgres_uow import PostgresUnitOfWork
from boxoffice.domain.waiting_room import AUTO, AdmitRate, WaitingRoom
from boxoffice.service_layer.waiting_room_ports import Admissions, Place, PlaceTaken, Rooms, Visitors

_ROOM_COLUMNS = """event_id, opens_at, admit_per_minute, admission_minutes, enabled, opened_at, joined, last_position,
                   serving_position, metered_from_position, metered_from, pre_queue_size, shuffle_digest"""


def rate_of(column: int | None) -> AdmitRate:
    return AUTO if column is None else column


def rate_column(rate: AdmitRate) -> int | None:
    """NULL stands for "auto" (the column's CHECK holds numbers to > 0)."""
    return rate if isinstance(rate, int) else None


def room_of(r: asyncpg.Record) -> WaitingRoom:
    return WaitingRoom(r["event_id"], r["opens_at"], rate_of(r["admit_per_minute"]), r["admission_minutes"],
                       r["enabled"],
                       r["opened_at"], r["joined"], r["last_position"], r["serving_position"],
                       r["metered_from_position"], r["metered_from"], r["pre_queue_size"], r["shuffle_digest"])


class PostgresRooms:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def lock(self, event_ids: list[str]) -> dict[str, WaitingRoom]:
        rows = await self._con.fetch(
            f"SELECT {_ROOM_COLUMNS} FROM waiting_rooms WHERE event_id = ANY($1) ORDER BY event_id FOR UPDATE",
            sorted(event_ids))
        return {r["event_id"]: room_of(r) for r in rows}

    async def create(self, room: WaitingRoom) -> None:
        await self._con.execute(
            """INSERT INTO waiting_rooms (event_id, enabled, opens_at, admit_per_minute, admission_minutes)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING""",
            room.event_id, room.enabled, room.opens_at, rate_column(room.admit_per_minute), room.admission_minutes)

    async def save(self, rooms: list[WaitingRoom]) -> None:
        await self._con.executemany(
            """UPDATE waiting_rooms SET opens_at = $2, admit_per_minute = $3, admission_minutes = $4, enabled = $5,
                   opened_at = $6, joined = $7, last_position = $8, serving_position = $9,
                   metered_from_position = $10, metered_from = $11, pre_queue_size = $12, shuffle_digest = $13,
                   updated_at = now()
               WHERE event_id = $1""",
            [(r.event_id, r.opens_at, rate_column(r.admit_per_minute), r.admission_minutes, r.enabled, r.opened_at,
              r.joined, r.last_position, r.serving_position, r.metered_from_position, r.metered_from, r.pre_queue_size,
              r.shuffle_digest) for r in rooms])

    async def needing_work(self, now: datetime) -> list[str]:
        rows = await self._con.fetch(
            """SELECT event_id FROM waiting_rooms
               WHERE enabled AND ((opened_at IS NULL AND opens_at <= $1)
                                  OR (opened_at IS NOT NULL AND serving_position < last_position))
               ORDER BY event_id""", now)
        return [r["event_id"] for r in rows]

    async def seats_held(self, event_id: str) -> bool:
        # The event's row FOR UPDATE first: holds being decided (KEY SHARE on it) finish and are counted, and
        # holds decided after this unit of work read its room.
        await self._con.execute("SELECT 1 FROM events WHERE event_id = $1 FOR UPDATE", event_id)
        return bool(await self._con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM booking_seats WHERE event_id = $1 AND live)", event_id))

    async def called_off(self, event_ids: list[str]) -> set[str]:
        # KEY SHARE waits only for a cancel (its FOR UPDATE), not for the holds' counter updates of the row.
        rows = await self._con.fetch(
            "SELECT event_id, status FROM events WHERE event_id = ANY($1) ORDER BY event_id FOR KEY SHARE",
            sorted(event_ids))
        return {r["event_id"] for r in rows if r["status"] == "cancelled"}


class PostgresVisitors:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def find(self, event_id: str, visitor_ids: list[str]) -> dict[str, Place]:
        rows = await self._con.fetch(
            """SELECT visitor_id, queue_token, join_seq, position FROM queue_visitors
               WHERE event_id = $1 AND visitor_id = ANY($2)""", event_id, visitor_ids)
        return {r["visitor_id"]: Place(r["visitor_id"], r["queue_token"], r["join_seq"], r["position"]) for r in rows}

    async def add(self, event_id: str, places: list[Place]) -> None:
        if not places:
            return
        try:
            await self._con.execute(
                """INSERT INTO queue_visitors (event_id, visitor_id, queue_token, join_seq, position)
                   SELECT $1, v, t, s, p
                   FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[]) AS j(v, t, s, p)""",
                event_id, [p.visitor_id for p in places], [p.queue_token for p in places],
                [p.join_seq for p in places], [p.position for p in places])
        except asyncpg.UniqueViolationError as exc:
            raise PlaceTaken(f"a place in the waiting room of {event_id} given twice") from exc

    async def pre_queue(self, event_id: str) -> list[int]:
        rows = await self._con.fetch(
            "SELECT join_seq FROM queue_visitors WHERE event_id = $1 AND position IS NULL ORDER BY join_seq",
            event_id)
        return [r["join_seq"] for r in rows]

    async def place(self, event_id: str, positions: dict[int, int]) -> None:
        if not positions:
            return
        seqs = sorted(positions)
        try:
            await self._con.execute(
                """UPDATE queue_visitors v SET position = p.position
                   FROM unnest($2::int[], $3::bigint[]) AS p(join_seq, position)
                   WHERE v.event_id = $1 AND v.join_seq = p.join_seq""",
                event_id, seqs, [positions[s] for s in seqs])
        except asyncpg.UniqueViolationError as exc:
            raise PlaceTaken(f"a position in the waiting room of {event_id} given twice") from exc

    async def finish(self, event_id: str, visitor_ids: list[str], at: datetime) -> None:
        await self._con.execute(
            """UPDATE queue_visitors SET finished_at = $3
               WHERE event_id = $1 AND visitor_id = ANY($2) AND finished_at IS NULL""", event_id, visitor_ids, at)


class PostgresAdmissions:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def add(self, event_id: str, first: int, last: int, at: datetime) -> None:
        await self._con.execute(
            """INSERT INTO queue_admissions (event_id, first_position, last_position, admitted_at)
               VALUES ($1, $2, $3, $4)""", event_id, first, last, at)

    async def admitted_since(self, event_id: str, since: datetime) -> int:
        count = await self._con.fetchval(
            """SELECT coalesce(sum(last_position - first_position + 1), 0) FROM queue_admissions
               WHERE event_id = $1 AND admitted_at > $2""", event_id, since)
        return int(count)

    async def active(self, event_id: str, since: datetime) -> int:
        count = await self._con.fetchval(
            """WITH recent AS (SELECT first_position, last_position FROM queue_admissions
                               WHERE event_id = $1 AND admitted_at > $2)
               SELECT (SELECT coalesce(sum(last_position - first_position + 1), 0) FROM recent)
                    - (SELECT count(*) FROM queue_visitors v JOIN recent r
                           ON v.position BETWEEN r.first_position AND r.last_position
                       WHERE v.event_id = $1 AND v.finished_at IS NOT NULL)""", event_id, since)
        return int(count)


class PostgresWaitingRoomUnitOfWork(PostgresUnitOfWork):
    rooms: Rooms
    visitors: Visitors
    admissions: Admissions

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, producer="waitingroom")

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.rooms = PostgresRooms(con)
        self.visitors = PostgresVisitors(con)
        self.admissions = PostgresAdmissions(con)
