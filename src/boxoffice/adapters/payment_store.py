"""The payment service's records in PostgreSQL: one row per (booking, paymentId), the provider's answer kept."""

from __future__ import annotations

import asyncpg

from boxoffice.adapters.postgres_uow import PostgresUnitOfWork
from boxoffice.service_layer.payment_ports import ChargeRequest, ChargeResult, PaymentRepository


class PostgresPaymentRepository:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def attempt(self, charge: ChargeRequest, provider: str) -> ChargeResult | None:
        row = await self._con.fetchrow(
            """INSERT INTO payments (booking_id, payment_id, event_id, amount, currency, card_last4, status,
                                     provider)
               VALUES ($1, $2, $3, $4, $5, $6, 'charging', $7)
               ON CONFLICT (booking_id, payment_id) DO UPDATE SET booking_id = payments.booking_id
               RETURNING status, provider_ref, decline_code, decline_reason""",
            charge.booking_id, charge.payment_id, charge.event_id, charge.amount, charge.currency,
            charge.card[-4:], provider)
        assert row is not None  # RETURNING of an upsert always has its row
        if row["status"] == "charging":
            return None
        return ChargeResult(row["status"] == "succeeded", row["provider_ref"] or "", row["decline_code"],
                            row["decline_reason"])

    async def decide(self, charge: ChargeRequest, result: ChargeResult) -> None:
        await self._con.execute(
            """UPDATE payments SET status = $3, provider_ref = $4, decline_code = $5, decline_reason = $6,
                                   decided_at = now()
               WHERE booking_id = $1 AND payment_id = $2""",
            charge.booking_id, charge.payment_id, "succeeded" if result.approved else "failed",
            result.reference, result.decline_code, result.decline_reason)


class PostgresPaymentUnitOfWork(PostgresUnitOfWork):
    payments: PaymentRepository

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, producer="payment")

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.payments = PostgresPaymentRepository(con)
