"""The payment handler over in-memory fakes: one charge per (booking, paymentId), its outcome replayed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from decimal import Decimal

import pytest

from boxoffice import metrics
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import (
    PAYMENT_FAILED,
    PAYMENT_REQUESTED,
    PAYMENT_SUCCEEDED,
    REFUND_FAILED,
    REFUND_REQUESTED,
    REFUND_SUCCEEDED,
    Message,
    decode,
)
from boxoffice.service_layer.charging import ChargePolicy
from boxoffice.service_layer.payment_ports import CardToken, ChargeRequest, ChargeResult
from boxoffice.service_layer.payments import (
    HANDLERS,
    NOT_ASKED,
    PaymentHandler,
    charge_request,
    record_attempts,
    record_decisions,
    request_payment,
    request_refund,
)
from boxoffice.service_layer.ports import OutboxRow
from tests.fakes import FakePaymentUnitOfWork, FakeProvider, PaymentDatabase

DECLINED = "4000000000000002"


class Relay:
    """Keeps what is submitted, and checks it was committed first."""

    def __init__(self, db: PaymentDatabase) -> None:
        self._db = db
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        assert all(row in self._db.outbox for row in rows), "submitted before its transaction committed"
        self.rows += rows


def requested(booking_id: str | None = None, payment_id: str = "pay_1", **data: object) -> Message:
    return Message(PAYMENT_REQUESTED, "ev", {"bookingId": booking_id or str(uuid.uuid4()), "paymentId": payment_id,
                                             "amount": 150.0, "currency": "USD", **data}, f"req_{payment_id}")


def handler_over(db: PaymentDatabase, provider: FakeProvider) -> tuple[PaymentHandler, Relay]:
    relay = Relay(db)
    return PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay), relay


def test_the_topic_table() -> None:
    assert {PAYMENT_REQUESTED: request_payment, REFUND_REQUESTED: request_refund} == HANDLERS


async def test_a_payment_is_charged_under_its_idempotency_key_and_reported() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested(cardToken="tok_1", cardLast4="4242")
    booking_id = request.data["bookingId"]
    succeeded = metrics.PAYMENTS.values.get(("succeeded",), 0)

    await handler([request])

    assert provider.calls == [(f"{booking_id}:pay_1", Decimal("150.00"), "USD", "tok_1")]
    outcome = decode(relay.rows[0].payload)
    assert len(relay.rows) == 1 and relay.rows[0].topic == outcome.type == PAYMENT_SUCCEEDED
    assert relay.rows[0].key == b"ev" and outcome.event_id == "ev" and outcome.request_id == "req_pay_1"
    assert outcome.data == {"bookingId": booking_id, "paymentId": "pay_1", "amount": 150.0, "currency": "USD",
                            "providerRef": "ref_0"}
    assert db.payments[(booking_id, "pay_1")].result == ChargeResult(True, "ref_0")
    assert db.payments[(booking_id, "pay_1")].provider == "fake"
    assert handler.charged == 1 and metrics.PAYMENTS.values[("succeeded",)] == succeeded + 1


async def test_a_decided_payment_is_replayed_without_a_second_charge() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested()

    await handler([request, request])
    await handler([request])

    assert len(provider.calls) == 1 and handler.charged == 1
    outcomes = [decode(row.payload) for row in relay.rows]
    assert [m.type for m in outcomes] == [PAYMENT_SUCCEEDED] * 3
    assert len({m.data["providerRef"] for m in outcomes}) == 1
    assert len({m.id for m in outcomes}) == 3  # each answer is a message of its own


async def test_a_declined_card_gives_payment_failed_with_the_decline() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested(card=DECLINED, currency="EUR", amount="12.5")
    failed = metrics.PAYMENTS.values.get(("failed",), 0)

    await handler([request])
    await handler([request])

    outcomes = [decode(row.payload) for row in relay.rows]
    assert [m.type for m in outcomes] == [PAYMENT_FAILED] * 2
    assert outcomes[0].data == outcomes[1].data == {
        "bookingId": request.data["bookingId"], "paymentId": "pay_1", "amount": 12.5, "currency": "EUR",
        "declineCode": "card_declined", "reason": "Your card was declined"}
    assert len(provider.calls) == 1 and metrics.PAYMENTS.values[("failed",)] == failed + 1


async def test_an_attempt_left_undecided_is_charged_again_under_the_same_key() -> None:
    """A process stopped between the charge and its record: the provider's idempotency keeps it one charge."""
    db, provider = PaymentDatabase(), FakeProvider()
    request = requested()
    uow = FakePaymentUnitOfWork(db)
    charge = ChargeRequest(str(request.data["bookingId"]), "pay_1", "ev", Decimal("150.00"), "USD",
                           "4242424242424242", "4242", None)
    async with uow:
        assert await uow.payments.attempt(charge, "fake") is None
        await uow.commit()
    await provider.charge(f"{charge.booking_id}:pay_1", charge.amount, "USD", charge.card_token)

    handler, relay = handler_over(db, provider)
    await handler([request])

    assert [call[0] for call in provider.calls] == [f"{charge.booking_id}:pay_1"] * 2
    assert len(provider.charges) == 1 and decode(relay.rows[0].payload).data["providerRef"] == "ref_0"


async def test_payments_ready_together_are_recorded_together_each_charged_once_and_reported() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    opened = 0

    def unit() -> FakePaymentUnitOfWork:
        nonlocal opened
        opened += 1
        return FakePaymentUnitOfWork(db)

    relay = Relay(db)
    handler = PaymentHandler(unit, provider, relay)
    earlier = [requested(card=DECLINED if i % 2 else "4242424242424242") for i in range(10)]
    await handler(earlier)
    new = [requested() for _ in range(30)]
    opened, relay.rows = 0, []

    await handler(new + earlier)

    assert len(provider.calls) == 40 and handler.charged == 40  # the copies of earlier ones are not charged
    outcomes = [decode(row.payload) for row in relay.rows]
    assert sorted(str(m.data["bookingId"]) for m in outcomes) == sorted(str(m.data["bookingId"]) for m in new
                                                                        + earlier)
    assert [m.type for m in outcomes if m.data["bookingId"] in {r.data["bookingId"] for r in earlier}] == [
        PAYMENT_FAILED if i % 2 else PAYMENT_SUCCEEDED for i in range(10)]  # replayed, in their order
    refs = {m.data["bookingId"]: m.data["providerRef"] for m in outcomes if m.type == PAYMENT_SUCCEEDED}
    assert all(db.payments[(str(r.data["bookingId"]), "pay_1")].result == ChargeResult(True, refs[r.data["bookingId"]])
               for r in new)
    assert opened <= 6  # the attempts share units of work, and so do the decisions


async def test_attempts_recorded_together_answer_as_one_after_the_other() -> None:
    db = PaymentDatabase()
    new, decided, other = (ChargeRequest(str(uuid.uuid4()), "pay_1", "ev", Decimal("20.00"), "USD", "tok", "4242",
                                         f"req_{i}") for i in range(3))
    async with (uow := FakePaymentUnitOfWork(db)):
        await record_decisions(uow, [])
        await uow.payments.attempt(decided, "fake")
        await record_decisions(uow, [(decided, ChargeResult(False, "ref_d", "card_declined", "declined"))])
        await uow.commit()

    async with uow:
        results = await record_attempts(uow, [(new, "fake"), (decided, "fake"), (new, "fake"), (other, "other"),
                                              (decided, "other")])
        await uow.commit()

    declined = ChargeResult(False, "ref_d", "card_declined", "declined")
    assert results == [None, declined, None, None, declined]
    assert [(db.payments[(c.booking_id, "pay_1")].provider, db.payments[(c.booking_id, "pay_1")].result)
            for c in (new, decided, other)] == [("fake", None), ("fake", declined), ("other", None)]
    replayed = [decode(row.payload) for row in uow.outbox.written[1:]]
    assert [(m.type, m.data["bookingId"]) for m in replayed] == [(PAYMENT_FAILED, decided.booking_id)] * 2


@pytest.mark.parametrize(("key", "value"), [("amount", None), ("paymentId", None), ("bookingId", None),
                                            ("amount", "lots")])
async def test_a_malformed_request_is_logged_and_dropped(key: str, value: object,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested()
    if value is None:
        del request.data[key]
    else:
        request.data[key] = value

    with caplog.at_level(logging.ERROR):
        await handler([request])

    assert provider.calls == [] and relay.rows == [] and db.payments == {} and db.outbox == []
    assert f"dropping malformed payment request {request.id}" in caplog.text


async def test_other_topics_are_ignored() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    await handler([Message(PAYMENT_SUCCEEDED, "ev", {"bookingId": "b", "paymentId": "p", "amount": 1})])
    assert provider.calls == [] and relay.rows == []


class GatedProvider(FakeProvider):
    """Answers once `width` charges are in flight together: only concurrent charging gets past it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self._width = width
        self._arrived = asyncio.Event()
        self.request_ids: list[str | None] = []

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card: str) -> ChargeResult:
        self.request_ids.append(REQUEST_ID.get())
        if len(self.request_ids) >= self._width:
            self._arrived.set()
        await asyncio.wait_for(self._arrived.wait(), 2)
        return await super().charge(idempotency_key, amount, currency, card)


async def test_different_payments_are_charged_concurrently_and_copies_in_order() -> None:
    db, provider = PaymentDatabase(), GatedProvider(width=3)
    handler, relay = handler_over(db, provider)
    first, second, third = requested(payment_id="a"), requested(payment_id="b"), requested(payment_id="c")

    await handler([first, second, first, third, second])

    assert len(provider.calls) == 3 and handler.charged == 3
    assert sorted(provider.request_ids, key=str) == ["req_a", "req_b", "req_c"]  # each task has its own id
    by_payment: dict[str, set[object]] = {}
    for row in relay.rows:
        data = decode(row.payload).data
        by_payment.setdefault(str(data["paymentId"]), set()).add(data["providerRef"])
    assert {k: len(v) for k, v in by_payment.items()} == {"a": 1, "b": 1, "c": 1}
    assert len(relay.rows) == 5


# -- refunds (CONTRACT §8.3) ------------------------------------------------------------------------------------

def refund_asked(booking_id: str, payment_id: str = "pay_1") -> Message:
    return Message(REFUND_REQUESTED, "ev", {"bookingId": booking_id, "paymentId": payment_id,
                                            "refundId": f"refund_{booking_id}", "amount": 150.0, "currency": "USD"},
                   f"req_refund_{booking_id}")


async def test_a_paid_booking_is_refunded_once_however_often_it_is_asked() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    charge = requested()
    booking_id = charge.data["bookingId"]
    await handler([charge])
    relay.rows.clear()
    await handler([refund_asked(booking_id)])
    await handler([refund_asked(booking_id), refund_asked(booking_id)])
    assert provider.refund_calls == [(f"refund:refund_{booking_id}", f"{booking_id}:pay_1", Decimal("150.00"))]
    outcomes = [decode(row.payload) for row in relay.rows]
    assert [m.type for m in outcomes] == [REFUND_SUCCEEDED] * 3  # the first answer, sent again
    assert outcomes[0].data["refundId"] == f"refund_{booking_id}"
    assert outcomes[0].request_id == f"req_refund_{booking_id}"
    assert len({m.data["providerRef"] for m in outcomes}) == 1


async def test_a_refund_the_provider_refuses_is_reported_with_why() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    charge = requested(payment_id="pay_no-refund")
    await handler([charge])
    relay.rows.clear()
    await handler([refund_asked(charge.data["bookingId"], "pay_no-refund")])
    [outcome] = [decode(row.payload) for row in relay.rows]
    assert outcome.type == REFUND_FAILED and outcome.data["reason"] == "The refund was refused"


async def test_a_refund_left_unanswered_is_reported_failed_and_asked_again_when_asked_again() -> None:
    db, provider = PaymentDatabase(), FakeProvider()
    policy = ChargePolicy(attempts=2, timeout_seconds=0.01, first_backoff_seconds=0, max_backoff_seconds=0)
    relay = Relay(db)
    handler = PaymentHandler(lambda: FakePaymentUnitOfWork(db), provider, relay, policy)
    charge = requested()
    booking_id = charge.data["bookingId"]
    await handler([charge])
    relay.rows.clear()
    answering = provider.refund

    async def silent(*args: object) -> object:
        await asyncio.sleep(1)
        raise AssertionError("unreachable: the try times out first")
    provider.refund = silent  # type: ignore[method-assign]
    await handler([refund_asked(booking_id)])
    [unanswered] = [decode(row.payload) for row in relay.rows]
    assert unanswered.type == REFUND_FAILED and "did not answer" in unanswered.data["reason"]
    provider.refund = answering  # type: ignore[method-assign]
    relay.rows.clear()
    await handler([refund_asked(booking_id)])
    [answered] = [decode(row.payload) for row in relay.rows]
    assert answered.type == REFUND_SUCCEEDED


async def test_a_request_from_before_tokens_is_tokenised_and_its_number_kept_nowhere() -> None:
    """A payment.requested still naming the card's number (sent before the upgrade) is charged by the token the
    provider gives for it; the record keeps the token and the last four digits only."""
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested(card="4000000000000002")

    await handler([request])

    [(_, _, _, token)] = provider.calls
    assert token.startswith("tok_fake_") and provider.cards[token] == "4000000000000002"
    record = db.payments[(str(request.data["bookingId"]), "pay_1")]
    assert (record.charge.card_token, record.charge.card_last4) == (token, "0002")
    assert decode(relay.rows[0].payload).data["declineCode"] == "card_declined"


# -- free bookings -----------------------------------------------------------------------------------------------

async def test_a_free_booking_is_paid_and_refunded_without_the_provider() -> None:
    """A booking priced 0 owes nothing: its payment succeeds and its refund too, each decided once and replayed,
    and the provider (which refuses charges of nothing) is never asked."""
    db, provider = PaymentDatabase(), FakeProvider()
    handler, relay = handler_over(db, provider)
    request = requested(payment_id="free_1", amount=0)
    booking_id = request.data["bookingId"]

    await handler([request, request])
    refund = Message(REFUND_REQUESTED, "ev", {"bookingId": booking_id, "paymentId": "free_1",
                                              "refundId": f"refund_{booking_id}", "amount": 0, "currency": "USD"},
                     f"req_refund_{booking_id}")
    await handler([refund, refund])

    assert provider.calls == [] and provider.refund_calls == [] and handler.charged == 0
    outcomes = [decode(row.payload) for row in relay.rows]
    assert [m.type for m in outcomes] == [PAYMENT_SUCCEEDED] * 2 + [REFUND_SUCCEEDED] * 2
    assert outcomes[0].data == {"bookingId": booking_id, "paymentId": "free_1", "amount": 0.0, "currency": "USD",
                                "providerRef": "free"}
    assert outcomes[2].data["amount"] == 0.0 and outcomes[2].data["providerRef"] == "free"
    assert db.payments[(booking_id, "free_1")].result == ChargeResult(True, "free")


async def test_a_request_no_booking_asks_for_is_neither_charged_nor_refunded_nor_answered() -> None:
    # Found from outside: any local client of the embedded broker could have any card token charged any amount,
    # or a paid booking refunded while it stayed confirmed (and its own refund then wedged on the refund's key).
    asking = {("b_paying", "pay_1"), ("b_paying", "refund_1")}
    db, provider = PaymentDatabase(asking=asking), FakeProvider()
    handler, relay = handler_over(db, provider)
    forged_charge = requested("b_other", cardToken="tok_victim", amount=999999.0)
    other_payment = requested("b_paying", "pay_forged", cardToken="tok_victim")
    forged_refund = Message(REFUND_REQUESTED, "ev", {"bookingId": "b_confirmed", "paymentId": "pay_1",
                                                     "refundId": "forged_refund", "amount": 50.0}, "req_f")
    not_asked = metrics.PAYMENTS.values.get(("not_asked",), 0)

    await handler([forged_charge, other_payment, forged_refund])
    await handler([forged_refund])  # copies too

    assert provider.calls == [] and provider.refund_calls == []
    assert relay.rows == [] and db.payments == {} and db.refunds == {}
    assert metrics.PAYMENTS.values.get(("not_asked",), 0) == not_asked + 4

    asked = requested("b_paying", cardToken="tok_1")
    refund = Message(REFUND_REQUESTED, "ev", {"bookingId": "b_paying", "paymentId": "pay_1", "refundId": "refund_1",
                                              "amount": 150.0}, "req_r")
    await handler([asked])
    await handler([refund])

    assert [r.topic for r in relay.rows] == [PAYMENT_SUCCEEDED, REFUND_SUCCEEDED]
    assert provider.calls == [("b_paying:pay_1", Decimal("150.00"), "USD", "tok_1")] and len(provider.refund_calls) == 1


async def test_attempts_recorded_together_leave_out_those_no_booking_asks_for() -> None:
    asked, forged = requested("b1"), requested("b2")
    charges = [charge_request(m, CardToken("tok", "4242")) for m in (asked, forged, asked)]
    db = PaymentDatabase(asking={("b1", "pay_1")})
    uow = FakePaymentUnitOfWork(db)
    async with uow:
        found = await record_attempts(uow, [(c, "fake") for c in charges if c is not None])
        await uow.commit()
    assert found == [None, NOT_ASKED, None]
    assert list(db.payments) == [("b1", "pay_1")] and db.outbox == []
