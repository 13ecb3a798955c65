"""How the payment service asks its provider, over fakes: tries again on retryable errors and timeouts under the
same idempotency key, never on a decline or a refusal, and puts off a charge that gets no decision."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from boxoffice.messages import PAYMENT_FAILED, PAYMENT_REQUESTED, PAYMENT_SUCCEEDED, Message, decode
from boxoffice.service_layer.charging import (
    PROVIDER_REFUSED,
    ChargePolicy,
    Undecided,
    charge_with_retries,
)
from boxoffice.service_layer.payment_ports import ChargeRequest, ChargeResult, ProviderError
from boxoffice.service_layer.payments import PaymentHandler
from boxoffice.service_layer.ports import OutboxRow
from tests.fakes import FakePaymentUnitOfWork, FakeProvider, PaymentDatabase

POLICY = ChargePolicy(attempts=3, timeout_seconds=0.05, first_backoff_seconds=0.2, max_backoff_seconds=0.3)
QUICK = ChargePolicy(attempts=3, timeout_seconds=0.05, first_backoff_seconds=0.001, max_backoff_seconds=0.001)


class FlakyProvider(FakeProvider):
    """Fails the first `failures` calls with the given error (or never answers them), then answers as the fake
    provider does. A failure `after_charge` makes the charge first and loses the answer."""

    def __init__(self, failures: int, error: Exception | None = None, after_charge: bool = False) -> None:
        super().__init__()
        self._failures, self._error, self._after_charge = failures, error, after_charge
        self._tries = 0

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card: str) -> ChargeResult:
        self._tries += 1
        if self._tries > self._failures:
            return await super().charge(idempotency_key, amount, currency, card)
        if self._after_charge:
            await super().charge(idempotency_key, amount, currency, card)
        else:
            self.calls.append((idempotency_key, amount, currency, card))
        if self._error is None:
            await asyncio.Event().wait()  # no answer: only the policy's time limit ends it
        raise self._error  # type: ignore[misc]


class Sleeps:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def a_charge(card: str = "4242424242424242") -> ChargeRequest:
    return ChargeRequest(str(uuid.uuid4()), "pay_1", "ev", Decimal("150.00"), "USD", card, card[-4:], "req_1")


async def test_retryable_errors_are_tried_again_under_the_same_key_with_growing_pauses() -> None:
    provider, sleeps, charge = FlakyProvider(2, ProviderError("503", retryable=True)), Sleeps(), a_charge()

    result = await charge_with_retries(provider, charge, POLICY, sleeps, jitter=lambda: 1.0)

    assert result == ChargeResult(True, "ref_0")
    assert [call[0] for call in provider.calls] == [f"{charge.booking_id}:pay_1"] * 3
    assert sleeps.pauses == [pytest.approx(0.2), pytest.approx(0.3)]  # doubled, then capped


async def test_the_pauses_are_spread_over_the_upper_half_of_the_back_off() -> None:
    provider, sleeps = FlakyProvider(2, ProviderError("429", retryable=True)), Sleeps()

    await charge_with_retries(provider, a_charge(), POLICY, sleeps, jitter=lambda: 0.0)

    assert sleeps.pauses == [pytest.approx(0.1), pytest.approx(0.15)]


async def test_a_lost_answer_is_asked_again_and_the_card_is_charged_once() -> None:
    provider = FlakyProvider(1, ProviderError("502 after the charge", retryable=True), after_charge=True)
    charge = a_charge()

    result = await charge_with_retries(provider, charge, POLICY, Sleeps())

    assert result == ChargeResult(True, "ref_0") and len(provider.charges) == 1
    assert len(provider.calls) == 2


async def test_a_try_without_an_answer_in_time_counts_as_retryable() -> None:
    provider, charge = FlakyProvider(1), a_charge()

    result = await charge_with_retries(provider, charge, POLICY, Sleeps())

    assert result == ChargeResult(True, "ref_0")
    assert [call[0] for call in provider.calls] == [f"{charge.booking_id}:pay_1"] * 2


async def test_an_error_the_provider_did_not_translate_is_tried_again_as_it_may_have_charged() -> None:
    provider = FlakyProvider(1, KeyError("reference"), after_charge=True)
    charge = a_charge()

    result = await charge_with_retries(provider, charge, POLICY, Sleeps())

    assert result == ChargeResult(True, "ref_0") and len(provider.charges) == 1


async def test_a_decline_is_not_tried_again() -> None:
    provider, sleeps = FakeProvider(), Sleeps()

    result = await charge_with_retries(provider, a_charge(card="4000000000000002"), POLICY, sleeps)

    assert isinstance(result, ChargeResult) and not result.approved and result.decline_code == "card_declined"
    assert len(provider.calls) == 1 and sleeps.pauses == []


async def test_a_refusal_that_is_not_retryable_fails_the_payment_without_another_try() -> None:
    provider, sleeps = FlakyProvider(5, ProviderError("400 amount too small", retryable=False)), Sleeps()

    result = await charge_with_retries(provider, a_charge(), POLICY, sleeps)

    assert isinstance(result, ChargeResult) and not result.approved
    assert result.decline_code == PROVIDER_REFUSED and "400 amount too small" in (result.decline_reason or "")
    assert len(provider.calls) == 1 and sleeps.pauses == []


async def test_after_the_last_try_the_charge_is_undecided() -> None:
    provider, sleeps = FlakyProvider(5, ProviderError("503", retryable=True)), Sleeps()

    result = await charge_with_retries(provider, a_charge(), POLICY, sleeps)

    assert result == Undecided("503")
    assert len(provider.calls) == POLICY.attempts and len(sleeps.pauses) == POLICY.attempts - 1


# --- the handler: an undecided charge is kept, put off, and asked again --------------------------------------


class Relay:
    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        self.rows += rows


def requested(booking_id: str) -> Message:
    return Message(PAYMENT_REQUESTED, "ev", {"bookingId": booking_id, "paymentId": "pay_1", "amount": 150.0,
                                             "currency": "USD", "cardToken": "tok_1", "cardLast4": "4242"}, "req_1")


async def test_an_undecided_charge_is_put_off_with_nothing_published_then_decided_by_a_later_try() -> None:
    db, relay = PaymentDatabase(), Relay()
    provider = FlakyProvider(QUICK.attempts, ProviderError("503", retryable=True), after_charge=True)
    handler = PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay, QUICK)
    booking_id = str(uuid.uuid4())

    await handler([requested(booking_id)])

    record = db.payments[(booking_id, "pay_1")]
    assert record.result is None and record.retries == 1 and record.retry_in == QUICK.postponed(1)
    # What asking again needs is kept: the card's token, never its number.
    assert (record.charge.card_token, record.charge.card_last4, record.charge.request_id) == ("tok_1", "4242", "req_1")
    assert relay.rows == [] and db.outbox == []
    assert await handler.retry_postponed() == 0  # not due yet

    record.retry_in = 0  # its time has come
    assert await handler.retry_postponed() == 1

    decided = db.payments[(booking_id, "pay_1")]
    assert decided.result == ChargeResult(True, "ref_0") and len(provider.charges) == 1
    [row] = relay.rows
    outcome = decode(row.payload)
    assert outcome.type == PAYMENT_SUCCEEDED and outcome.request_id == "req_1"
    assert outcome.data["bookingId"] == booking_id and outcome.data["providerRef"] == "ref_0"
    assert {call[0] for call in provider.calls} == {f"{booking_id}:pay_1"}


async def test_a_charge_still_undecided_is_put_off_for_longer() -> None:
    db, relay = PaymentDatabase(), Relay()
    provider = FlakyProvider(100, ProviderError("503", retryable=True))
    handler = PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay, QUICK)
    booking_id = str(uuid.uuid4())
    await handler([requested(booking_id)])

    db.payments[(booking_id, "pay_1")].retry_in = 0
    await handler.retry_postponed()

    record = db.payments[(booking_id, "pay_1")]
    assert record.result is None and record.retries == 2 and record.retry_in == QUICK.postponed(2)
    assert QUICK.postponed(2) > QUICK.postponed(1) and relay.rows == []


async def test_a_copy_of_an_undecided_payment_asks_the_provider_again_and_publishes_the_outcome_once() -> None:
    db, relay = PaymentDatabase(), Relay()
    provider = FlakyProvider(QUICK.attempts, ProviderError("503", retryable=True))
    handler = PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay, QUICK)
    booking_id = str(uuid.uuid4())

    await handler([requested(booking_id)])
    await handler([requested(booking_id)])  # redelivered

    assert db.payments[(booking_id, "pay_1")].result == ChargeResult(True, "ref_0")
    assert [decode(row.payload).type for row in relay.rows] == [PAYMENT_SUCCEEDED]
    assert await handler.retry_postponed() == 0  # decided: no longer put off


async def test_a_declined_card_is_reported_at_once_never_put_off() -> None:
    db, relay, provider = PaymentDatabase(), Relay(), FakeProvider()
    handler = PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay, QUICK)
    message = requested(str(uuid.uuid4()))
    card = await provider.tokenise("4000000000000002")
    message.data.update(cardToken=card.token, cardLast4=card.last4)

    await handler([message])

    assert [decode(row.payload).type for row in relay.rows] == [PAYMENT_FAILED]
    assert db.payments[(str(message.data["bookingId"]), "pay_1")].retries == 0


def test_the_back_off_doubles_up_to_its_ceiling() -> None:
    policy = ChargePolicy(first_backoff_seconds=0.2, max_backoff_seconds=1.0, retry_later_seconds=5,
                          retry_later_max_seconds=60)
    assert [policy.backoff(n, 1.0) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert [policy.postponed(n) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
