"""What the payment service's handler needs: a provider to charge, and a unit of work over its records.

A real provider (Stripe's PaymentIntents take an `Idempotency-Key` header) plugs in by implementing
`PaymentProvider` and naming its factory in `BOXOFFICE_PAYMENT_PROVIDER`. It translates its own failures into
`ProviderError`: retryable when asking again under the same key may succeed (a 5xx, a 429, a lost connection),
not retryable when the provider refused the request itself and charged nothing (a 4xx other than a decline).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from boxoffice.service_layer.unit_of_work import UnitOfWork

# A request that names no card is charged to the test card the simulated provider approves.
DEFAULT_TEST_CARD = "4242424242424242"


@dataclass(frozen=True)
class CardToken:
    """What stands for a card beyond the gateway: the provider's reference to it, and its last four digits."""

    token: str
    last4: str


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str
    decline_code: str | None = None
    decline_reason: str | None = None


class ProviderError(Exception):
    """The provider gave no decision on a charge."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class RefundResult:
    approved: bool
    reference: str
    reason: str | None = None  # why it was refused


class CardTokeniser(Protocol):
    async def tokenise(self, card: str) -> CardToken: ...


class PaymentProvider(Protocol):
    name: str

    async def tokenise(self, card: str) -> CardToken:
        """The provider's token for a card number: the gateway hands it the number and passes on only the
        token, so that no card number reaches Kafka, the outbox or any table."""
        ...

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card_token: str) -> ChargeResult:
        """Charges at most once per idempotency key; a repeated key returns the first result. A decline is a
        result; no decision at all raises `ProviderError`."""
        ...

    async def refund(self, idempotency_key: str, charge_key: str, amount: Decimal, currency: str) -> RefundResult:
        """Refunds the charge made under `charge_key`, at most once per idempotency key (a repeated key returns
        the first result). A refusal is a result; no decision at all raises `ProviderError`."""
        ...


@dataclass(frozen=True)
class ChargeRequest:
    booking_id: str
    payment_id: str
    event_id: str
    amount: Decimal
    currency: str
    card_token: str
    card_last4: str
    request_id: str | None


@dataclass(frozen=True)
class RefundRequest:
    booking_id: str
    payment_id: str
    refund_id: str
    event_id: str
    amount: Decimal
    currency: str
    request_id: str | None


class PaymentRepository(Protocol):
    async def asked_for(self, charges: list[ChargeRequest]) -> list[bool]:
        """For each charge, in order: whether its booking is paying it (is `paying` under its payment id, at its
        event, for its amount and currency), or it was asked for before (its payment is recorded, and a copy
        gets what was recorded: the provider is never asked twice under one key for two amounts)."""
        ...

    async def refund_asked_for(self, refund: RefundRequest) -> bool:
        """Whether the refund's booking is being refunded under its refund id, of its payment, at its event, for
        its amount and currency, or the refund was decided before (a copy gets the decision). A refund left
        unanswered is asked for again only by its booking: asking the provider again gives the money back."""
        ...

    async def attempt(self, charge: ChargeRequest, provider: str) -> ChargeResult | None:
        """Records the attempt, once per (booking, paymentId); a copy leaves the first record as it is.
        Returns the result when the payment was decided before, None while it is not."""
        ...

    async def decide(self, charge: ChargeRequest, result: ChargeResult) -> None:
        """Records the provider's result for the attempt (and forgets what asking again would have needed)."""
        ...

    async def attempt_all(self, charges: list[ChargeRequest], provider: str) -> list[ChargeResult | None]:
        """`attempt` of each charge, in their order and as if one after the other (a charge twice: the second
        finds the first's record), with as few statements as it can."""
        ...

    async def decide_all(self, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> None:
        """`decide` of each, as if one after the other (a payment decided twice keeps the later result)."""
        ...

    async def postpone(self, charge: ChargeRequest, retry_in: float) -> None:
        """Keeps the undecided attempt, with what asking again needs, to be asked again in `retry_in` seconds."""
        ...

    async def due(self, limit: int, lease_seconds: float) -> list[tuple[ChargeRequest, int]]:
        """Up to `limit` postponed attempts whose time has come, with how often each was postponed; each is
        leased for `lease_seconds` (not due again meanwhile), so that no two retries of it run at once."""
        ...


    async def refund_attempt(self, refund: RefundRequest, provider: str) -> RefundResult | None:
        """Records the refund, once per refund id; returns its result when it was decided before."""
        ...

    async def refund_decided(self, refund: RefundRequest, result: RefundResult) -> None:
        """Records the provider's answer to the refund."""
        ...


class PaymentUnitOfWork(UnitOfWork, Protocol):
    @property
    def payments(self) -> PaymentRepository: ...
