"""Payment service handler: charges requested payments, at most once each."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal, InvalidOperation

from boxoffice import metrics
from boxoffice.adapters.payment_provider import DEFAULT_TEST_CARD, PaymentProvider
from boxoffice.adapters.payment_store import ChargeRequest, PaymentStore
from boxoffice.logs import REQUEST_ID
from boxoffice.messages import PAYMENT_REQUESTED, Message
from boxoffice.service_layer.ports import OutboxRow, OutboxSink

log = logging.getLogger(__name__)


def charge_request(message: Message) -> ChargeRequest | None:
    data = message.data
    try:
        amount = Decimal(str(data["amount"])).quantize(Decimal("0.01"))
        return ChargeRequest(str(data["bookingId"]), str(data["paymentId"]), message.event_id, amount,
                             str(data.get("currency") or "USD"), str(data.get("card") or DEFAULT_TEST_CARD),
                             message.request_id)
    except (KeyError, InvalidOperation):
        return None


class PaymentHandler:
    def __init__(self, store: PaymentStore, provider: PaymentProvider, outbox: OutboxSink) -> None:
        self._store, self._provider, self._outbox = store, provider, outbox
        self.charged = 0

    async def __call__(self, batch: list[Message]) -> None:
        """Different payments are independent: charged concurrently; one payment's copies in order."""
        by_payment: dict[tuple[str, str], list[ChargeRequest]] = {}
        for message in batch:
            if message.type != PAYMENT_REQUESTED:
                continue
            charge = charge_request(message)
            if charge is None:
                log.error("dropping malformed payment request %s", message.id)
                continue
            by_payment.setdefault((charge.booking_id, charge.payment_id), []).append(charge)
        await asyncio.gather(*(self._charge_all(charges) for charges in by_payment.values()))

    async def _charge_all(self, charges: list[ChargeRequest]) -> None:
        for charge in charges:
            REQUEST_ID.set(charge.request_id)  # each payment runs in a task of its own (gather)
            self._outbox.submit(await self._charge(charge))

    async def _charge(self, charge: ChargeRequest) -> list[OutboxRow]:
        replayed = await self._store.begin(charge)
        if replayed is not None:
            return replayed
        result = await self._provider.charge(f"{charge.booking_id}:{charge.payment_id}", charge.amount,
                                             charge.currency, charge.card)
        self.charged += 1
        rows = await self._store.finish(charge, result)
        if result.approved:
            metrics.PAYMENTS.inc("succeeded")
            log.info("payment %s for booking %s succeeded", charge.payment_id, charge.booking_id)
        else:
            metrics.PAYMENTS.inc("failed")
            log.info("payment %s for booking %s declined: %s", charge.payment_id, charge.booking_id,
                     result.decline_code)
        return rows
