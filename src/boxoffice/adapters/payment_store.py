"""The payment service's PostgreSQL side: one charge per (booking, paymentId), its answer kept and replayed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from boxoffice import messages as topics
from boxoffice.adapters.outbox import insert_outbox
from boxoffice.adapters.payment_provider import ChargeResult
from boxoffice.messages import Message
from boxoffice.service_layer.ports import OutboxRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChargeRequest:
    booking_id: str
    payment_id: str
    event_id: str
    amount: Decimal
    currency: str
    card: str
    request_id: str | None


class PaymentStore:
    def __init__(self, pool: asyncpg.Pool, provider_name: str) -> None:
        self._pool = pool
        self._provider = provider_name

    async def begin(self, charge: ChargeRequest) -> list[OutboxRow] | None:
        """Records the attempt. Returns the replayed answer's outbox rows when it was decided before."""
        async with self._pool.acquire() as con, con.transaction():
            row = await con.fetchrow(
                """INSERT INTO payments (booking_id, payment_id, event_id, amount, currency, card_last4, status,
                                         provider)
                   VALUES ($1, $2, $3, $4, $5, $6, 'charging', $7)
                   ON CONFLICT (booking_id, payment_id) DO UPDATE SET booking_id = payments.booking_id
                   RETURNING status, provider_ref, decline_code, decline_reason""",
                charge.booking_id, charge.payment_id, charge.event_id, charge.amount, charge.currency,
                charge.card[-4:], self._provider)
            if row["status"] == "charging":
                return None
            result = ChargeResult(row["status"] == "succeeded", row["provider_ref"] or "", row["decline_code"],
                                  row["decline_reason"])
            return await insert_outbox(con, [_outcome(charge, result)], producer="payment")

    async def finish(self, charge: ChargeRequest, result: ChargeResult) -> list[OutboxRow]:
        async with self._pool.acquire() as con, con.transaction():
            await con.execute(
                """UPDATE payments SET status = $3, provider_ref = $4, decline_code = $5, decline_reason = $6,
                                       decided_at = now()
                   WHERE booking_id = $1 AND payment_id = $2""",
                charge.booking_id, charge.payment_id, "succeeded" if result.approved else "failed",
                result.reference, result.decline_code, result.decline_reason)
            return await insert_outbox(con, [_outcome(charge, result)], producer="payment")


def _outcome(charge: ChargeRequest, result: ChargeResult) -> tuple[str, bytes, bytes]:
    data: dict[str, object] = {"bookingId": charge.booking_id, "paymentId": charge.payment_id,
                               "amount": float(charge.amount), "currency": charge.currency}
    if result.approved:
        topic = topics.PAYMENT_SUCCEEDED
        data["providerRef"] = result.reference
    else:
        topic = topics.PAYMENT_FAILED
        data |= {"declineCode": result.decline_code, "reason": result.decline_reason}
    message = Message(topic, charge.event_id, data, charge.request_id)
    return topic, message.key, message.encode()
