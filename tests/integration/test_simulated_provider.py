"""The simulated provider behaves like a real one where it matters to the payment service: answer times with
a tail, and retryable errors (some after the charge was made) that the retry policy gets through with every
card charged once."""

from __future__ import annotations

import asyncio
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


async def test_charges_ready_together_are_written_together_and_each_gets_the_row_under_its_key(
        pool: asyncpg.Pool) -> None:
    provider = SimulatedProvider(pool, 0.02)  # answers together: one group
    made_before = f"{uuid.uuid4()}:before"
    first = await provider.charge(made_before, Decimal("5.00"), "USD", "tok_sim_ok_4242_1")
    keys = [f"{uuid.uuid4()}:p" for _ in range(30)]
    tokens = ["tok_sim_declined_0002_1" if n % 3 == 0 else "tok_sim_ok_4242_1" for n in range(30)]
    calls = [provider.charge(key, Decimal("20.00"), "USD", token) for key, token in zip(keys, tokens, strict=True)]
    calls += [provider.charge(keys[1], Decimal("20.00"), "USD", "tok_sim_ok_4242_1"),  # the same key twice at once
              provider.charge(made_before, Decimal("5.00"), "USD", "tok_sim_ok_4242_1")]
    results = await asyncio.gather(*calls)

    assert [r.approved for r in results[:30]] == [n % 3 != 0 for n in range(30)]
    assert results[30].reference == results[1].reference and results[31].reference == first.reference
    ledger = {r["idempotency_key"]: r for r in await pool.fetch(
        "SELECT * FROM simulated_provider_charges WHERE idempotency_key = ANY($1)", [*keys, made_before])}
    assert [ledger[k]["reference"] for k in keys] == [r.reference for r in results[:30]]
    assert len(ledger) == 31
    # now() is the time its transaction began: charges written in one statement share it.
    assert len({ledger[k]["created_at"] for k in keys}) < 5, "written in groups, not one statement each"


async def test_a_charge_the_ledger_refuses_fails_alone(pool: asyncpg.Pool) -> None:
    provider = SimulatedProvider(pool, 0.02)
    keys = [f"{uuid.uuid4()}:p" for _ in range(5)]
    amounts = [Decimal("20.00")] * 4 + [Decimal("1e12")]  # too large for the ledger's numeric(10, 2)
    results = await asyncio.gather(*(provider.charge(k, a, "USD", "tok_sim_ok_4242_1")
                                     for k, a in zip(keys, amounts, strict=True)), return_exceptions=True)
    assert [isinstance(r, ChargeResult) and r.approved for r in results] == [True] * 4 + [False]
    assert isinstance(results[4], asyncpg.NumericValueOutOfRangeError)
    assert await pool.fetchval("SELECT count(*) FROM simulated_provider_charges WHERE idempotency_key = ANY($1)",
                               keys) == 4



class UnreachablePool:
    """The platform's database while it restarts: where the simulated provider keeps its ledger."""

    async def fetch(self, *args: object) -> list[asyncpg.Record]:
        raise ConnectionRefusedError("connection refused")

    async def fetchrow(self, *args: object) -> asyncpg.Record:
        raise ConnectionRefusedError("connection refused")


async def test_an_unreachable_ledger_is_a_retryable_provider_error_not_an_adapter_bug() -> None:
    """Answered as a real provider's 503, so the payment service asks again without logging a traceback."""
    provider = SimulatedProvider(UnreachablePool(), 0)  # type: ignore[arg-type]
    for ask in (provider.charge("b1:p1", Decimal("20.00"), "USD", "tok_sim_ok_4242_1"),
                provider.refund("b1:p1:refund", "b1:p1", Decimal("20.00"), "USD")):
        try:
            await ask
        except ProviderError as exc:
            assert exc.retryable and "503" in str(exc)
        else:
            raise AssertionError("answered without its ledger")
