"""The payment service's decisions: charge each requested payment at most once, and report its outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

from boxoffice import messages as topics
from boxoffice import metrics
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import Message
from boxoffice.service_layer.payment_ports import (
    DEFAULT_TEST_CARD,
    ChargeRequest,
    ChargeResult,
    PaymentProvider,
    PaymentUnitOfWork,
)
from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.unit_of_work import Outgoing

log = logging.getLogger(__name__)

# A handler returns whether it called the provider.
Handler = Callable[[Message, PaymentUnitOfWork, PaymentProvider], Awaitable[bool]]


def charge_request(message: Message) -> ChargeRequest | None:
    data = message.data
    try:
        amount = Decimal(str(data["amount"])).quantize(Decimal("0.01"))
        return ChargeRequest(str(data["bookingId"]), str(data["paymentId"]), message.event_id, amount,
                             str(data.get("currency") or "USD"), str(data.get("card") or DEFAULT_TEST_CARD),
                             message.request_id)
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


async def request_payment(message: Message, uow: PaymentUnitOfWork, provider: PaymentProvider) -> bool:
    """A decided payment's outcome is sent again; otherwise the provider is charged under the payment's
    idempotency key, so a charge interrupted before its result was recorded is not made twice."""
    charge = charge_request(message)
    if charge is None:
        log.error("dropping malformed payment request %s", message.id)
        return False
    async with uow:
        decided = await uow.payments.attempt(charge, provider.name)
        if decided is not None:
            await uow.outbox.add([outcome(charge, decided)])
        await uow.commit()
    if decided is not None:
        return False
    # Outside a transaction: no connection is held while the provider answers.
    result = await provider.charge(f"{charge.booking_id}:{charge.payment_id}", charge.amount, charge.currency,
                                   charge.card)
    async with uow:
        await uow.payments.decide(charge, result)
        await uow.outbox.add([outcome(charge, result)])
        await uow.commit()
    if result.approved:
        metrics.PAYMENTS.inc("succeeded")
        log.info("payment %s for booking %s succeeded", charge.payment_id, charge.booking_id)
    else:
        metrics.PAYMENTS.inc("failed")
        log.info("payment %s for booking %s declined: %s", charge.payment_id, charge.booking_id,
                 result.decline_code)
    return True


HANDLERS: dict[str, Handler] = {topics.PAYMENT_REQUESTED: request_payment}
TOPICS = list(HANDLERS)


class PaymentHandler:
    """A batch handler for the consumer loop. Different payments are independent and charged concurrently;
    copies of one payment are handled in order, each with a unit of work of its own. What a unit of work
    wrote to the outbox goes to the relay once it has committed."""

    def __init__(self, uow: Callable[[], PaymentUnitOfWork], provider: PaymentProvider,
                 outbox: OutboxSink) -> None:
        self._uow, self._provider, self._outbox = uow, provider, outbox
        self.charged = 0

    async def __call__(self, batch: list[Message]) -> None:
        by_payment: dict[tuple[str, str], list[Message]] = {}
        for message in batch:
            if message.type in HANDLERS:
                key = (str(message.data.get("bookingId")), str(message.data.get("paymentId")))
                by_payment.setdefault(key, []).append(message)
        await asyncio.gather(*(self._in_order(messages) for messages in by_payment.values()))

    async def _in_order(self, messages: list[Message]) -> None:
        for message in messages:
            REQUEST_ID.set(message.request_id)  # each payment runs in a task of its own (gather)
            uow = self._uow()
            try:
                if await HANDLERS[message.type](message, uow, self._provider):
                    self.charged += 1
            finally:
                self._outbox.submit(uow.outbox.written)
