"""What the payment service's handler needs: a provider to charge, and a unit of work over its records.

A real provider (Stripe's PaymentIntents take an `Idempotency-Key` header) plugs in by implementing
`PaymentProvider` and naming its factory in `BOXOFFICE_PAYMENT_PROVIDER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from boxoffice.service_layer.unit_of_work import UnitOfWork

# A request that names no card is charged to the test card the simulated provider approves.
DEFAULT_TEST_CARD = "4242424242424242"


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str
    decline_code: str | None = None
    decline_reason: str | None = None


class PaymentProvider(Protocol):
    name: str

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card: str) -> ChargeResult:
        """Charges at most once per idempotency key; a repeated key returns the first result."""
        ...


@dataclass(frozen=True)
class ChargeRequest:
    booking_id: str
    payment_id: str
    event_id: str
    amount: Decimal
    currency: str
    card: str
    request_id: str | None


class PaymentRepository(Protocol):
    async def attempt(self, charge: ChargeRequest, provider: str) -> ChargeResult | None:
        """Records the attempt, once per (booking, paymentId); a copy leaves the first record as it is.
        Returns the result when the payment was decided before, None while it is not."""
        ...

    async def decide(self, charge: ChargeRequest, result: ChargeResult) -> None:
        """Records the provider's result for the attempt."""
        ...


class PaymentUnitOfWork(UnitOfWork, Protocol):
    @property
    def payments(self) -> PaymentRepository: ...
