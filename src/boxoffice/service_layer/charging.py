"""How the payment service asks its provider: a time limit on every try, further tries on the errors the provider
calls retryable, and always the payment's own idempotency key, so that however often it asks, the card is
charged at most once."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from boxoffice.service_layer.payment_ports import (
    ChargeRequest,
    ChargeResult,
    PaymentProvider,
    ProviderError,
    RefundRequest,
    RefundResult,
)

log = logging.getLogger(__name__)

# A provider's refusal of the request itself (not of the card): nothing was charged, and asking again fails again.
PROVIDER_REFUSED = "provider_refused"


@dataclass(frozen=True)
class ChargePolicy:
    attempts: int = 3
    timeout_seconds: float = 5.0
    first_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 2.0
    # An undecided charge is asked again after this long, doubling up to the longest (see `postponed`).
    retry_later_seconds: float = 5.0
    retry_later_max_seconds: float = 300.0

    def backoff(self, tries: int, jitter: float) -> float:
        """The pause after the `tries`-th failed try: exponential, capped, and spread by `jitter` in [0, 1)
        over its upper half, so that charges that failed together do not come back together."""
        ceiling = min(self.first_backoff_seconds * 2.0 ** (tries - 1), self.max_backoff_seconds)
        return ceiling * (0.5 + jitter / 2)

    def postponed(self, times: int) -> float:
        """How long an undecided charge waits before it is asked again for the `times`-th time."""
        return min(self.retry_later_seconds * 2.0 ** (times - 1), self.retry_later_max_seconds)


@dataclass(frozen=True)
class Undecided:
    """Every try failed without a decision: the provider may or may not have made the charge."""

    reason: str


def idempotency_key(charge: ChargeRequest) -> str:
    return f"{charge.booking_id}:{charge.payment_id}"


T = TypeVar("T")


async def ask_with_retries(ask: Callable[[], Awaitable[T]], refused: Callable[[ProviderError], T], what: str,
                           policy: ChargePolicy, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                           jitter: Callable[[], float] = random.random) -> T | Undecided:
    """The provider's answer to `ask` (always made under the same idempotency key), or Undecided once
    `policy.attempts` tries timed out or failed retryably. A try that timed out may have taken effect: only
    another try under the same key can tell, so it counts as retryable, and so does an error the provider's
    adapter did not translate. A refusal that is not retryable is answered by `refused` (nothing was done)."""
    reason = ""
    for tries in range(1, policy.attempts + 1):
        try:
            async with asyncio.timeout(policy.timeout_seconds):
                return await ask()
        except TimeoutError:
            reason = f"no answer within {policy.timeout_seconds:g} s"
        except ProviderError as exc:
            if not exc.retryable:
                log.warning("the provider refused %s: %s", what, exc)
                return refused(exc)
            reason = str(exc) or type(exc).__name__
        except Exception as exc:  # a provider adapter's own bug: it may have taken effect, so like a timeout
            log.exception("the provider failed on %s with an error it does not say is retryable", what)
            reason = repr(exc)[:200]
        log.info("%s failed on try %d of %d (%s)", what, tries, policy.attempts, reason)
        if tries < policy.attempts:
            await sleep(policy.backoff(tries, jitter()))
    return Undecided(reason)


async def charge_with_retries(provider: PaymentProvider, charge: ChargeRequest, policy: ChargePolicy,
                              sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                              jitter: Callable[[], float] = random.random) -> ChargeResult | Undecided:
    """The provider's decision on the charge, or Undecided; a refusal that is not retryable is a failed payment."""
    key = idempotency_key(charge)
    return await ask_with_retries(
        lambda: provider.charge(key, charge.amount, charge.currency, charge.card_token),
        lambda exc: ChargeResult(False, "", PROVIDER_REFUSED, f"The payment provider refused the payment: {exc}"),
        f"charge {key}", policy, sleep, jitter)


def refund_key(refund: RefundRequest) -> str:
    return f"refund:{refund.refund_id}"


async def refund_with_retries(provider: PaymentProvider, refund: RefundRequest, policy: ChargePolicy,
                              sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                              jitter: Callable[[], float] = random.random) -> RefundResult | Undecided:
    """Like a charge, always under the refund's own key, so the money goes back at most once."""
    key = refund_key(refund)
    return await ask_with_retries(
        lambda: provider.refund(key, f"{refund.booking_id}:{refund.payment_id}", refund.amount, refund.currency),
        lambda exc: RefundResult(False, "", f"the payment provider refused the refund: {exc}"),
        f"refund {key}", policy, sleep, jitter)
