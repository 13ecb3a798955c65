"""The built-in simulated payment provider, and card-number checks.

It implements the `PaymentProvider` port (service_layer/payment_ports.py), as a real provider would.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from decimal import Decimal
from functools import partial
from statistics import NormalDist

import asyncpg

from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.grouping import Grouped
from boxoffice.service_layer.payment_ports import CardToken, ChargeResult, ProviderError, RefundResult

DECLINED_TEST_CARD = "4000000000000002"
# A payment whose id holds this cannot be refunded by the simulated provider (a closed card account, say): for
# trying out a refund that fails.
UNREFUNDABLE_PAYMENT = "no-refund"


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, digit in enumerate(int(d) for d in reversed(number)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


class SimulatedProvider:
    """Tokenises cards; declines the tokens of 4000000000000002, approves those of other valid test numbers,
    after a latency drawn like a real provider's (lognormal from its median and 99th percentile), and answers a
    share of charges with a retryable error: half of them before charging, half after (the answer lost), as a
    real provider's 5xx can be.
    Its ledger is a table, so tests and benchmarks can count real charges and read its answer times."""

    name = "simulated"

    def __init__(self, pool: asyncpg.Pool, latency_seconds: float, p99_seconds: float | None = None,
                 failure_rate: float = 0.0, rng: random.Random | None = None) -> None:
        self._pool = pool
        self._latency = latency_seconds
        self._sigma = (math.log(p99_seconds / latency_seconds) / NormalDist().inv_cdf(0.99)
                       if p99_seconds and latency_seconds and p99_seconds > latency_seconds else 0.0)
        self._failure_rate = failure_rate
        self._rng = rng or random.Random()
        # Charges that finish together share one statement: the provider stands in for a service on other
        # machines, but here it shares the platform's cores and database.
        self._ledger: Grouped[_Charge, asyncpg.Record] = Grouped(partial(_write_charges, pool), most=500, at_once=1)

    async def tokenise(self, card: str) -> CardToken:
        """A token that tells this provider what it needs to decide a charge (approve, decline, refuse as
        invalid) and holds no more of the number than its last four digits: nothing to keep, nothing to leak."""
        kind = "declined" if card == DECLINED_TEST_CARD else "ok" if luhn_valid(card) else "invalid"
        last4 = card[-4:] if card[-4:].isdigit() else ""
        return CardToken(f"tok_sim_{kind}_{last4}_{uuid.uuid4().hex[:16]}", last4)

    def answer_time(self) -> float:
        """How long the next charge takes to answer."""
        if not self._sigma:
            return self._latency
        return self._rng.lognormvariate(math.log(self._latency), self._sigma)

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card_token: str) -> ChargeResult:
        started = time.perf_counter()
        await asyncio.sleep(self.answer_time())
        failing = self._rng.random() < self._failure_rate
        if failing and self._rng.random() < 0.5:
            raise ProviderError("the simulated provider is unavailable (503)", retryable=True)
        decision: tuple[bool, str | None, str | None]
        if card_token.startswith("tok_sim_declined_"):
            decision = (False, "card_declined", "Your card was declined")
        elif not card_token.startswith("tok_sim_ok_"):
            decision = (False, "invalid_card", "The card number is not valid")
        else:
            decision = (True, None, None)
        try:
            row = await self._ledger((idempotency_key, amount, currency, decision[0],
                                      f"sim_{uuid.uuid4().hex[:16]}", decision[1],
                                      (time.perf_counter() - started) * 1000))
        except TRANSIENT_ERRORS as exc:
            raise _ledger_unavailable(exc) from exc
        if failing:
            raise ProviderError("the simulated provider's answer was lost (502)", retryable=True)
        approved = row["approved"]
        return ChargeResult(approved, row["reference"], row["decline_code"],
                            None if approved else decision[2] if row["decline_code"] == decision[1] else "Declined")

    async def refund(self, idempotency_key: str, charge_key: str, amount: Decimal, currency: str) -> RefundResult:
        """Refunds an approved charge of this provider, at most once per key; refuses a charge it never made
        and a payment whose id holds UNREFUNDABLE_PAYMENT."""
        await asyncio.sleep(self.answer_time())
        try:
            return await self._refund(idempotency_key, charge_key, amount, currency)
        except TRANSIENT_ERRORS as exc:
            raise _ledger_unavailable(exc) from exc

    async def _refund(self, idempotency_key: str, charge_key: str, amount: Decimal, currency: str) -> RefundResult:
        charge = await self._pool.fetchrow(
            "SELECT approved, amount FROM simulated_provider_charges WHERE idempotency_key = $1", charge_key)
        reason: str | None = None
        if charge is None or not charge["approved"]:
            reason = "There is no approved charge to refund"
        elif amount > charge["amount"]:
            reason = "The refund is larger than the charge"
        elif UNREFUNDABLE_PAYMENT in charge_key:
            reason = "The card account is closed; the refund was refused"
        row = await self._pool.fetchrow(
            """WITH made AS (
                   INSERT INTO simulated_provider_refunds (idempotency_key, amount, currency, approved, reference)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *)
               SELECT * FROM made UNION ALL
               SELECT * FROM simulated_provider_refunds WHERE idempotency_key = $1 LIMIT 1""",
            idempotency_key, amount, currency, reason is None, f"simr_{uuid.uuid4().hex[:16]}")
        if row is None:  # a refund under the same key committed meanwhile, after this statement's snapshot
            row = await self._pool.fetchrow("SELECT * FROM simulated_provider_refunds WHERE idempotency_key = $1",
                                            idempotency_key)
            if row is None:
                raise RuntimeError(f"the simulated refund {idempotency_key} is neither made nor found")
        return RefundResult(row["approved"], row["reference"], None if row["approved"] else reason or "Refused")


def _ledger_unavailable(exc: BaseException) -> ProviderError:
    """The simulated provider keeps its ledger in the platform's database: while that is unreachable it answers
    as a real provider whose own systems are down (a 503, worth asking again)."""
    return ProviderError(f"the simulated provider is unavailable (503): its ledger cannot be reached ({exc})",
                         retryable=True)


_Charge = tuple[str, Decimal, str, bool, str, str | None, float]  # key, amount, currency, approved, reference, decline


async def _write_charges(pool: asyncpg.Pool, charges: list[_Charge]) -> list[asyncpg.Record]:
    """One statement for the charges: each gets the row under its key, its own or one made before it."""
    keys = [c[0] for c in charges]
    made = await pool.fetch(
        """INSERT INTO simulated_provider_charges (idempotency_key, amount, currency, approved, reference,
                                                  decline_code, latency_ms)
           SELECT * FROM unnest($1::text[], $2::numeric[], $3::text[], $4::bool[], $5::text[], $6::text[],
                                $7::real[])
           ON CONFLICT (idempotency_key) DO NOTHING RETURNING *""",
        keys, *(list(column) for column in list(zip(*charges, strict=True))[1:]))
    rows = {row["idempotency_key"]: row for row in made}
    missing = [key for key in keys if key not in rows]
    if missing:  # made before, or by a charge under the same key that committed meanwhile
        rows.update((row["idempotency_key"], row) for row in await pool.fetch(
            "SELECT * FROM simulated_provider_charges WHERE idempotency_key = ANY($1)", missing))
    lost = [key for key in keys if key not in rows]
    if lost:
        raise RuntimeError(f"the simulated charges {', '.join(lost)} are neither made nor found")
    return [rows[key] for key in keys]
