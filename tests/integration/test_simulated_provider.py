"""The simulated provider behaves like a real one where it matters to the payment service: answer times with
a tail, and retryable errors (some after the charge was made) that the retry policy gets through with every
card charged once."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

import asyncpg

from boxoffice.adapters.payment_provider import SimulatedProvider
from boxoffice.service_layer.charging import ChargePolicy, charge_with_retries, idempotency_key
from boxoffice.service_layer.payment_ports import ChargeRequest, ChargeResult, ProviderError


def test_answer_times_are_lognormal_between_the_median_and_the_99th_percentile() -> None:
    provider = SimulatedProvider(None, 0.150, 0.400, rng=random.Random(7))  # type: ignore[arg-type]
    times = sorted(provider.answer_time() for _ in range(20_000))
    assert 0.140 < times[10_000] < 0.160
    assert 0.370 < times[19_800] < 0.430


def test_without_a_99th_percentile_every_answer_takes_the_median() -> None:
    provider = SimulatedProvider(None, 0.150)  # type: ignore[arg-type]
    assert {provider.answer_time() for _ in range(100)} == {0.150}


async def test_with_retryable_failures_every_charge_is_decided_and_made_once(pool: asyncpg.Pool) -> None:
    provider = SimulatedProvider(pool, 0, failure_rate=0.5, rng=random.Random(11))
    policy = ChargePolicy(attempts=20, first_backoff_seconds=0.001, max_backoff_seconds=0.001)
    charges = [ChargeRequest(str(uuid.uuid4()), "p", "ev", Decimal("20.00"), "USD", "tok_sim_ok_4242_1", "4242", None)
               for _ in range(40)]
    failures = 0
    for charge in charges[:5]:
        try:
            await provider.charge(idempotency_key(charge), charge.amount, charge.currency, charge.card_token)
        except ProviderError as exc:
            assert exc.retryable
            failures += 1

    results = [await charge_with_retries(provider, charge, policy) for charge in charges]

    assert failures > 0
    assert all(isinstance(r, ChargeResult) and r.approved for r in results)
    keys = [idempotency_key(c) for c in charges]
    counts = await pool.fetch("SELECT idempotency_key, count(*) AS n FROM simulated_provider_charges "
                              "WHERE idempotency_key = ANY($1) GROUP BY idempotency_key", keys)
    assert {r["idempotency_key"]: r["n"] for r in counts} == dict.fromkeys(keys, 1)
    # The ledger's reference is the one the payment service was given, also for an answer lost at first.
    refs = {r["idempotency_key"]: r["reference"] for r in await pool.fetch(
        "SELECT idempotency_key, reference FROM simulated_provider_charges WHERE idempotency_key = ANY($1)", keys)}
    assert [refs[k] for k in keys] == [r.reference for r in results if isinstance(r, ChargeResult)]
