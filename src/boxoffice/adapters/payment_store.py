"""The payment service's records in PostgreSQL: one row per (booking, paymentId), the provider's answer kept."""

from __future__ import annotations

import uuid

import asyncpg

from boxoffice.adapters.postgres_uow import PostgresUnitOfWork
from boxoffice.service_layer.payment_ports import (
    ChargeRequest,
    ChargeResult,
    PaymentRepository,
    RefundRequest,
    RefundResult,
)


class PostgresPaymentRepository:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def asked_for(self, charges: list[ChargeRequest]) -> list[bool]:
        if not charges:
            return []
        rows = await self._con.fetch(
            """SELECT t.n FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::text[])
                                WITH ORDINALITY AS t(booking_id, payment_id, event_id, amount, currency, n)
               WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = t.booking_id AND b.status = 'paying'
                                    AND b.payment_id = t.payment_id AND b.event_id = t.event_id
                                    AND b.amount = t.amount AND b.currency = t.currency)
                  OR EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = t.booking_id
                                    AND p.payment_id = t.payment_id)""",
            [_key(c)[0] for c in charges], [c.payment_id for c in charges], [c.event_id for c in charges],
            [c.amount for c in charges], [c.currency for c in charges])
        paying = {r["n"] for r in rows}
        return [n in paying for n in range(1, len(charges) + 1)]

    async def refund_asked_for(self, refund: RefundRequest) -> bool:
        return bool(await self._con.fetchval(
            """SELECT EXISTS (SELECT 1 FROM bookings WHERE booking_id = $1 AND status = 'refunding'
                              AND refund_id = $2 AND payment_id = $3 AND event_id = $4 AND amount = $5
                              AND currency = $6)
                   OR EXISTS (SELECT 1 FROM refunds WHERE refund_id = $2 AND booking_id = $1
                              AND status <> 'refunding')""",
            uuid.UUID(refund.booking_id), refund.refund_id, refund.payment_id, refund.event_id, refund.amount,
            refund.currency))

    async def attempt(self, charge: ChargeRequest, provider: str) -> ChargeResult | None:
        return (await self.attempt_all([charge], provider))[0]

    async def attempt_all(self, charges: list[ChargeRequest], provider: str) -> list[ChargeResult | None]:
        # A row may be touched once per statement (ON CONFLICT DO UPDATE), so each payment goes in once; a copy
        # after the first finds what the first found or inserted. Sorted, so that transactions lock in one order.
        firsts: dict[tuple[uuid.UUID, str], ChargeRequest] = {}
        for charge in charges:
            firsts.setdefault(_key(charge), charge)
        unique = [firsts[key] for key in sorted(firsts)]
        if not unique:
            return []
        rows = await self._con.fetch(
            """INSERT INTO payments (booking_id, payment_id, event_id, amount, currency, card_last4, status,
                                     provider)
               SELECT t.booking_id, t.payment_id, t.event_id, t.amount, t.currency, t.card_last4, 'charging', $7
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[])
                    AS t(booking_id, payment_id, event_id, amount, currency, card_last4)
               ON CONFLICT (booking_id, payment_id) DO UPDATE SET booking_id = payments.booking_id
               RETURNING booking_id, payment_id, status, provider_ref, decline_code, decline_reason""",
            [_key(c)[0] for c in unique], [c.payment_id for c in unique], [c.event_id for c in unique],
            [c.amount for c in unique], [c.currency for c in unique], [c.card_last4 for c in unique], provider)
        found = {(r["booking_id"], r["payment_id"]): _result(r) for r in rows}
        return [found[_key(charge)] for charge in charges]

    async def decide_all(self, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> None:
        # UPDATE … FROM applies one source row per target row: the later decision of a payment decided twice.
        last = {_key(charge): (charge, result) for charge, result in decisions}
        if not last:
            return
        keys = sorted(last)
        results = [last[key][1] for key in keys]
        await self._con.execute(
            """UPDATE payments p SET status = d.status, provider_ref = d.provider_ref, decline_code = d.decline_code,
                                     decline_reason = d.decline_reason, decided_at = now(), retry_at = NULL,
                                     card = NULL
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                    AS d(booking_id, payment_id, status, provider_ref, decline_code, decline_reason)
               WHERE p.booking_id = d.booking_id AND p.payment_id = d.payment_id""",
            [key[0] for key in keys], [key[1] for key in keys],
            ["succeeded" if r.approved else "failed" for r in results], [r.reference for r in results],
            [r.decline_code for r in results], [r.decline_reason for r in results])

    async def decide(self, charge: ChargeRequest, result: ChargeResult) -> None:
        await self.decide_all([(charge, result)])

    async def postpone(self, charge: ChargeRequest, retry_in: float) -> None:
        await self._con.execute(
            """UPDATE payments SET retry_at = now() + make_interval(secs => $3), retries = retries + 1,
                                   card = $4, request_id = $5
               WHERE booking_id = $1 AND payment_id = $2 AND status = 'charging'""",
            charge.booking_id, charge.payment_id, retry_in, charge.card_token, charge.request_id)

    async def due(self, limit: int, lease_seconds: float) -> list[tuple[ChargeRequest, int]]:
        rows = await self._con.fetch(
            """UPDATE payments SET retry_at = now() + make_interval(secs => $2)
               WHERE (booking_id, payment_id) IN (
                   SELECT booking_id, payment_id FROM payments
                   WHERE retry_at <= now() AND status = 'charging'
                   ORDER BY retry_at LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING booking_id, payment_id, event_id, amount, currency, card, card_last4, request_id,
                         retries""",
            limit, lease_seconds)
        return [(ChargeRequest(str(r["booking_id"]), r["payment_id"], r["event_id"], r["amount"], r["currency"],
                               r["card"] or "", r["card_last4"], r["request_id"]), r["retries"]) for r in rows]


    async def refund_attempt(self, refund: RefundRequest, provider: str) -> RefundResult | None:
        row = await self._con.fetchrow(
            """INSERT INTO refunds (refund_id, booking_id, payment_id, event_id, amount, currency, provider, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, 'refunding')
               ON CONFLICT (refund_id) DO UPDATE SET refund_id = refunds.refund_id
               RETURNING status, provider_ref, reason""",
            refund.refund_id, refund.booking_id, refund.payment_id, refund.event_id, refund.amount, refund.currency,
            provider)
        assert row is not None  # RETURNING of an upsert always has its row
        if row["status"] == "refunding":
            return None
        return RefundResult(row["status"] == "succeeded", row["provider_ref"] or "", row["reason"])

    async def refund_decided(self, refund: RefundRequest, result: RefundResult) -> None:
        await self._con.execute(
            """UPDATE refunds SET status = $2, provider_ref = $3, reason = $4, decided_at = now()
               WHERE refund_id = $1 AND status = 'refunding'""",
            refund.refund_id, "succeeded" if result.approved else "failed", result.reference, result.reason)


def _key(charge: ChargeRequest) -> tuple[uuid.UUID, str]:
    """The payment's primary key as PostgreSQL compares it (the booking id as a uuid, however it was spelled)."""
    return uuid.UUID(charge.booking_id), charge.payment_id


def _result(row: asyncpg.Record) -> ChargeResult | None:
    if row["status"] == "charging":
        return None
    return ChargeResult(row["status"] == "succeeded", row["provider_ref"] or "", row["decline_code"],
                        row["decline_reason"])


class PostgresPaymentUnitOfWork(PostgresUnitOfWork):
    payments: PaymentRepository

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, producer="payment")

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.payments = PostgresPaymentRepository(con)
