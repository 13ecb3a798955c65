"""The payment service's decisions: charge each requested payment at most once, and report its outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message
from boxoffice.service_layer.charging import ChargePolicy, Undecided, charge_with_retries, refund_with_retries
from boxoffice.service_layer.group_commit import GroupCommit
from boxoffice.service_layer.payment_ports import (
    DEFAULT_TEST_CARD,
    CardToken,
    ChargeRequest,
    ChargeResult,
    PaymentProvider,
    PaymentUnitOfWork,
    RefundRequest,
    RefundResult,
)
from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.unit_of_work import Outgoing

log = logging.getLogger(__name__)

# A handler returns whether it called the provider.
Handler = Callable[[Message, "PaymentWrites", PaymentProvider, ChargePolicy], Awaitable[bool]]

# A free booking (amount 0) owes nothing: its payment succeeds, and its refund too, without the provider, which
# would refuse a charge of nothing (and, for the refund, finds no charge to give back).
FREE = "free"
FREE_CHARGE = ChargeResult(True, FREE)
FREE_REFUND = RefundResult(True, FREE)


class NotAsked:
    """A request that no booking makes: its booking is not paying (or being refunded) under its ids and for its
    amount. Only the booking service asks, in the transaction that moves the booking on, so this is a forgery
    or a stray, and nothing is charged, refunded or published for it."""


NOT_ASKED = NotAsked()


async def card_of(data: dict[str, object], provider: PaymentProvider) -> CardToken:
    """The card a payment request names: its token. A request made before cards were tokenised names the number
    (tokenised here, and only the token is kept); one that names no card is charged to the approved test card."""
    token = data.get("cardToken")
    if isinstance(token, str) and token:
        return CardToken(token, str(data.get("cardLast4") or ""))
    card = data.get("card")
    return await provider.tokenise(card if isinstance(card, str) and card else DEFAULT_TEST_CARD)


def charge_request(message: Message, card: CardToken) -> ChargeRequest | None:
    data = message.data
    try:
        amount = Decimal(str(data["amount"])).quantize(Decimal("0.01"))
        return ChargeRequest(str(data["bookingId"]), str(data["paymentId"]), message.event_id, amount,
                             str(data.get("currency") or "USD"), card.token, card.last4, message.request_id)
    except (KeyError, InvalidOperation):
        return None


def outcome(charge: ChargeRequest, result: ChargeResult) -> Outgoing:
    """payment.succeeded with the provider's reference, or payment.failed with the decline."""
    data: dict[str, object] = {"bookingId": charge.booking_id, "paymentId": charge.payment_id,
                               "amount": float(charge.amount), "currency": charge.currency}
    if result.approved:
        topic = topics.PAYMENT_SUCCEEDED
        data["providerRef"] = result.reference
    else:
        topic = topics.PAYMENT_FAILED
        data |= {"declineCode": result.decline_code, "reason": result.decline_reason}
    return Outgoing.of(Message(topic, charge.event_id, data, charge.request_id))


def refund_request(message: Message) -> RefundRequest | None:
    data = message.data
    try:
        amount = Decimal(str(data["amount"])).quantize(Decimal("0.01"))
        return RefundRequest(str(data["bookingId"]), str(data["paymentId"]), str(data["refundId"]), message.event_id,
                             amount, str(data.get("currency") or "USD"), message.request_id)
    except (KeyError, InvalidOperation):
        return None


def refund_outcome(refund: RefundRequest, result: RefundResult) -> Outgoing:
    """refund.succeeded with the provider's reference, or refund.failed with why."""
    data: dict[str, object] = {"bookingId": refund.booking_id, "paymentId": refund.payment_id,
                               "refundId": refund.refund_id, "amount": float(refund.amount),
                               "currency": refund.currency}
    if result.approved:
        topic, data["providerRef"] = topics.REFUND_SUCCEEDED, result.reference
    else:
        topic, data["reason"] = topics.REFUND_FAILED, result.reason or "The payment provider refused the refund"
    return Outgoing.of(Message(topic, refund.event_id, data, refund.request_id))


@dataclass(frozen=True)
class PaymentWrites:
    """The payment service's writes, each committed before it returns (with the outcome it publishes)."""

    attempt: Callable[[tuple[ChargeRequest, str]], Awaitable[ChargeResult | NotAsked | None]]
    decide: Callable[[tuple[ChargeRequest, ChargeResult]], Awaitable[None]]
    postpone: Callable[[tuple[ChargeRequest, float]], Awaitable[None]]
    refund_attempt: Callable[[tuple[RefundRequest, str]], Awaitable[RefundResult | NotAsked | None]]
    refund_decide: Callable[[tuple[RefundRequest, RefundResult, bool]], Awaitable[None]]


async def record_refund_attempt(uow: PaymentUnitOfWork,
                                attempt: tuple[RefundRequest, str]) -> RefundResult | NotAsked | None:
    """Records the refund; one decided before sends its outcome again and says it."""
    refund, provider = attempt
    if not await uow.payments.refund_asked_for(refund):
        return NOT_ASKED
    decided = await uow.payments.refund_attempt(refund, provider)
    if decided is not None:
        await uow.outbox.add([refund_outcome(refund, decided)])
    return decided


async def record_refund(uow: PaymentUnitOfWork, decision: tuple[RefundRequest, RefundResult, bool]) -> None:
    """The outcome goes out; the provider's own answer (`final`) is also kept as the refund's result."""
    refund, result, final = decision
    if final:
        await uow.payments.refund_decided(refund, result)
    await uow.outbox.add([refund_outcome(refund, result)])


async def record_attempt(uow: PaymentUnitOfWork,
                         attempt: tuple[ChargeRequest, str]) -> ChargeResult | NotAsked | None:
    """Records the attempt; a payment decided before sends its outcome again and says it."""
    return (await record_attempts(uow, [attempt]))[0]


async def record_decision(uow: PaymentUnitOfWork, decision: tuple[ChargeRequest, ChargeResult]) -> None:
    charge, result = decision
    await uow.payments.decide(charge, result)
    await uow.outbox.add([outcome(charge, result)])


async def record_attempts(uow: PaymentUnitOfWork,
                          attempts: list[tuple[ChargeRequest, str]]) -> list[ChargeResult | NotAsked | None]:
    """`record_attempt` of each, in one statement per provider (one in practice) and one outbox write."""
    asked = await uow.payments.asked_for([charge for charge, _ in attempts])
    by_provider: dict[str, list[int]] = {}
    for i, (_, provider) in enumerate(attempts):
        if asked[i]:
            by_provider.setdefault(provider, []).append(i)
    decided: list[ChargeResult | NotAsked | None] = [None if ok else NOT_ASKED for ok in asked]
    for provider, indices in by_provider.items():
        found = await uow.payments.attempt_all([attempts[i][0] for i in indices], provider)
        for i, result in zip(indices, found, strict=True):
            decided[i] = result
    await uow.outbox.add([outcome(charge, result) for (charge, _), result in zip(attempts, decided, strict=True)
                          if isinstance(result, ChargeResult)])
    return decided


async def record_decisions(uow: PaymentUnitOfWork, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> list[None]:
    await uow.payments.decide_all(decisions)
    await uow.outbox.add([outcome(charge, result) for charge, result in decisions])
    return [None] * len(decisions)


async def record_postponement(uow: PaymentUnitOfWork, postponement: tuple[ChargeRequest, float]) -> None:
    await uow.payments.postpone(*postponement)


async def request_payment(message: Message, writes: PaymentWrites, provider: PaymentProvider,
                          policy: ChargePolicy) -> bool:
    """A decided payment's outcome is sent again; otherwise the provider is charged under the payment's
    idempotency key, so a charge interrupted before its result was recorded is not made twice. A payment of
    nothing (a free booking) succeeds without the provider."""
    charge = charge_request(message, await card_of(message.data, provider))
    if charge is None:
        log.error("dropping malformed payment request %s", message.id)
        return False
    recorded = await writes.attempt((charge, provider.name))
    if recorded is NOT_ASKED:
        _not_asked("payment", charge.payment_id, charge.booking_id, message)
        return False
    if recorded is not None:
        return False
    await settle(charge, writes, provider, policy, postponed=0)
    return charge.amount != 0


async def settle(charge: ChargeRequest, writes: PaymentWrites, provider: PaymentProvider, policy: ChargePolicy,
                 postponed: int) -> None:
    """Asks the provider (outside a transaction: no connection is held while it answers) and records its
    decision with the outcome to publish. Without a decision the attempt stays undecided and is put off: it
    may have been charged, so neither outcome can be told yet, and the booking stays paying until the provider
    answers a later try under the same key (`PaymentHandler.retry_postponed`)."""
    result = FREE_CHARGE if charge.amount == 0 else await charge_with_retries(provider, charge, policy)
    if isinstance(result, Undecided):
        retry_in = policy.postponed(postponed + 1)
        await writes.postpone((charge, retry_in))
        metrics.PAYMENTS.inc("postponed")
        log.warning("payment %s for booking %s undecided (%s); asked again in %g s", charge.payment_id,
                    charge.booking_id, result.reason, retry_in)
        return
    await writes.decide((charge, result))
    if result.approved:
        metrics.PAYMENTS.inc("succeeded")
        log.info("payment %s for booking %s succeeded", charge.payment_id, charge.booking_id)
    else:
        metrics.PAYMENTS.inc("failed")
        log.info("payment %s for booking %s declined: %s", charge.payment_id, charge.booking_id,
                 result.decline_code)


async def request_refund(message: Message, writes: PaymentWrites, provider: PaymentProvider,
                         policy: ChargePolicy) -> bool:
    """Refunds a paid booking at most once, under its refund's idempotency key. A refund the provider left
    unanswered is reported failed (the booking stays confirmed) but not recorded as decided: asking for it
    again asks the provider again under the same key, which returns the money once however often it is asked."""
    refund = refund_request(message)
    if refund is None:
        log.error("dropping malformed refund request %s", message.id)
        return False
    recorded = await writes.refund_attempt((refund, provider.name))
    if recorded is NOT_ASKED:
        _not_asked("refund", refund.refund_id, refund.booking_id, message)
        return False
    if recorded is not None:
        return False
    result = FREE_REFUND if refund.amount == 0 else await refund_with_retries(provider, refund, policy)
    if isinstance(result, Undecided):
        metrics.PAYMENTS.inc("refund_unanswered")
        await writes.refund_decide((refund, RefundResult(
            False, "", f"the payment provider did not answer ({result.reason}); ask for the refund again"), False))
        return True
    await writes.refund_decide((refund, result, True))
    metrics.PAYMENTS.inc("refunded" if result.approved else "refund_failed")
    log.info("refund %s of booking %s %s", refund.refund_id, refund.booking_id,
             "succeeded" if result.approved else f"refused: {result.reason}")
    return refund.amount != 0


def _not_asked(what: str, what_id: str, booking_id: str, message: Message) -> None:
    metrics.PAYMENTS.inc("not_asked")
    log.warning("%s %s of booking %s (message %s) is not one the booking asks for: nothing done", what, what_id,
                booking_id, message.id)


HANDLERS: dict[str, Handler] = {topics.PAYMENT_REQUESTED: request_payment, topics.REFUND_REQUESTED: request_refund}
TOPICS = list(HANDLERS)


class PaymentHandler:
    """A handler for the consumer loop, of a batch or (with many charges in flight) of one message per call.
    Different payments are independent and charged concurrently; copies of one payment are handled one after
    the other, across calls too. The writes of charges that are ready together share a unit of work
    (group_commit.py), attempts and decisions a statement each; what it wrote to the outbox goes to the relay
    once it has committed."""

    def __init__(self, uow: Callable[[], PaymentUnitOfWork], provider: PaymentProvider, outbox: OutboxSink,
                 policy: ChargePolicy | None = None) -> None:
        self._uow, self._provider = uow, provider
        self._policy = policy or ChargePolicy()
        self._writes = PaymentWrites(GroupCommit(uow, record_attempt, outbox, write_all=record_attempts),
                                     GroupCommit(uow, record_decision, outbox, write_all=record_decisions),
                                     GroupCommit(uow, record_postponement, outbox),
                                     GroupCommit(uow, record_refund_attempt, outbox),
                                     GroupCommit(uow, record_refund, outbox))
        # Per payment in hand: its lock, and how many copies hold or wait for it.
        self._payments: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self.charged = 0

    async def __call__(self, batch: list[Message]) -> None:
        by_payment: dict[tuple[str, str], list[Message]] = {}
        for message in batch:
            if message.type in HANDLERS:
                key = (str(message.data.get("bookingId")), str(message.data.get("paymentId")))
                by_payment.setdefault(key, []).append(message)
        await asyncio.gather(*(self._in_order(key, messages) for key, messages in by_payment.items()))

    async def _in_order(self, key: tuple[str, str], messages: list[Message]) -> None:
        lock, users = self._payments.get(key, (asyncio.Lock(), 0))
        self._payments[key] = (lock, users + 1)
        try:
            async with lock:
                for message in messages:
                    REQUEST_ID.set(message.request_id)  # each payment runs in a task of its own (gather)
                    if await HANDLERS[message.type](message, self._writes, self._provider, self._policy):
                        self.charged += 1
        finally:
            lock, users = self._payments[key]
            if users == 1:
                del self._payments[key]  # no copy of it waits
            else:
                self._payments[key] = (lock, users - 1)

    async def retry_postponed(self, limit: int = 100) -> int:
        """Asks again about the postponed charges whose time has come; how many there were."""
        # Leased for longer than its tries can take, so that no other process asks about it meanwhile.
        lease = self._policy.attempts * (self._policy.timeout_seconds + self._policy.max_backoff_seconds) + 30
        uow = self._uow()
        async with uow:
            due = await uow.payments.due(limit, lease)
            await uow.commit()
        await asyncio.gather(*(self._retry(charge, postponed) for charge, postponed in due))
        return len(due)

    async def _retry(self, charge: ChargeRequest, postponed: int) -> None:
        REQUEST_ID.set(charge.request_id)
        if charge.card_token.isdigit():  # put off before cards were tokenised: it kept the number
            card = await self._provider.tokenise(charge.card_token)
            charge = replace(charge, card_token=card.token, card_last4=card.last4)
        await settle(charge, self._writes, self._provider, self._policy, postponed)
