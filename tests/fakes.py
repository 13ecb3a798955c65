"""In-memory fakes of the service layer's ports, for handler tests without a database.

Each fake unit of work stages its writes and applies them to a shared store on commit, so a unit of work
left without committing leaves nothing behind, as a transaction does. The contract tests
(tests/integration/test_repository_contracts.py) run the same checks against these and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, Self, TypeVar

from boxoffice.domain.catalog import EventSpec
from boxoffice.service_layer.catalog_ports import (
    AvailabilityCounts,
    CountsAt,
    EventRepository,
)
from boxoffice.service_layer.payment_ports import (
    CardToken,
    ChargeRequest,
    ChargeResult,
    PaymentRepository,
    RefundRequest,
    RefundResult,
)
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.unit_of_work import Outbox, Outgoing

K = TypeVar("K")
V = TypeVar("V")


class Staged(Generic[K, V]):
    """A table's committed rows with one transaction's changes over them."""

    def __init__(self, committed: dict[K, V]) -> None:
        self._committed = committed
        self.changes: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self.changes[key] if key in self.changes else self._committed.get(key)

    def __contains__(self, key: K) -> bool:
        return key in self.changes or key in self._committed

    def put(self, key: K, value: V) -> None:
        self.changes[key] = value

    def all_keys(self) -> list[K]:
        return list({**self._committed, **self.changes})

    def apply(self) -> None:
        self._committed.update(self.changes)


class FakeTransaction:
    """The transaction part: subclasses list their staged tables in `_begin`."""

    def __init__(self) -> None:
        self._tables: list[Staged[Any, Any]] = []
        self._open = False
        self.commits = 0

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("the unit of work is in a transaction already")
        self._open = True
        self._begin()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._open:
            await self.rollback()

    async def commit(self) -> None:
        self._require_open()
        for table in self._tables:
            table.apply()
        self._open = False
        self.commits += 1
        self._ended(True)

    async def rollback(self) -> None:
        self._require_open()
        self._open = False
        self._ended(False)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        saved = [dict(table.changes) for table in self._tables]
        mark = self._mark()
        try:
            yield
        except BaseException:
            for table, changes in zip(self._tables, saved, strict=True):
                table.changes = changes
            self._undo_to(mark)
            raise

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("no open transaction")

    def _begin(self) -> None: ...

    def _ended(self, committed: bool) -> None: ...

    def _mark(self) -> int:
        return 0

    def _undo_to(self, mark: int) -> None: ...


class FakeOutbox:
    """Rows added in the open transaction are pending; committed ones join `written` and the shared log."""

    def __init__(self, log: list[OutboxRow], ids: itertools.count[int]) -> None:
        self.log, self._ids = log, ids
        self.pending: list[OutboxRow] = []
        self.written: list[OutboxRow] = []

    async def add(self, messages: list[Outgoing]) -> None:
        self.pending += [OutboxRow(next(self._ids), m.topic, m.key, m.payload) for m in messages]


class FakeUnitOfWork(FakeTransaction):
    def __init__(self, outbox_log: list[OutboxRow], ids: itertools.count[int]) -> None:
        super().__init__()
        self._outbox = FakeOutbox(outbox_log, ids)
        self.outbox: Outbox = self._outbox

    def _ended(self, committed: bool) -> None:
        if committed:
            self._outbox.written += self._outbox.pending
            self._outbox.log += self._outbox.pending
        self._outbox.pending = []

    def _mark(self) -> int:
        return len(self._outbox.pending)

    def _undo_to(self, mark: int) -> None:
        del self._outbox.pending[mark:]


# --- payments ----------------------------------------------------------------------------------------------


@dataclass
class PaymentRecord:
    charge: ChargeRequest
    provider: str
    result: ChargeResult | None = None  # None while charging
    retry_in: float | None = None  # None unless postponed; a test makes it due by setting it to 0
    retries: int = 0


@dataclass
class PaymentDatabase:
    """What the fakes share, as the payment service's tables are shared by its transactions."""

    payments: dict[tuple[str, str], PaymentRecord] = field(default_factory=dict)
    refunds: dict[str, RefundResult | None] = field(default_factory=dict)  # None while refunding
    outbox: list[OutboxRow] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # What the bookings ask for: (booking id, payment id or refund id) of each booking paying or being refunded.
    # None: the bookings ask for every request (tests about the payments alone).
    asking: set[tuple[str, str]] | None = None


class FakePaymentRepository:
    def __init__(self, rows: Staged[tuple[str, str], PaymentRecord],
                 refunds: Staged[str, RefundResult | None] | None = None,
                 asking: set[tuple[str, str]] | None = None) -> None:
        self._rows = rows
        self._refunds: Staged[str, RefundResult | None] = refunds or Staged({})
        self._asking = asking

    async def asked_for(self, charges: list[ChargeRequest]) -> list[bool]:
        return [self._asking is None or (c.booking_id, c.payment_id) in self._asking
                or self._rows.get((c.booking_id, c.payment_id)) is not None for c in charges]

    async def refund_asked_for(self, refund: RefundRequest) -> bool:
        return (self._asking is None or (refund.booking_id, refund.refund_id) in self._asking
                or self._refunds.get(refund.refund_id) is not None)

    async def refund_attempt(self, refund: RefundRequest, provider: str) -> RefundResult | None:
        if refund.refund_id not in self._refunds:
            self._refunds.put(refund.refund_id, None)
            return None
        return self._refunds.get(refund.refund_id)

    async def refund_decided(self, refund: RefundRequest, result: RefundResult) -> None:
        if self._refunds.get(refund.refund_id) is None:
            self._refunds.put(refund.refund_id, result)

    async def attempt(self, charge: ChargeRequest, provider: str) -> ChargeResult | None:
        key = (charge.booking_id, charge.payment_id)
        record = self._rows.get(key)
        if record is None:
            self._rows.put(key, PaymentRecord(charge, provider))
            return None
        return record.result

    async def decide(self, charge: ChargeRequest, result: ChargeResult) -> None:
        key = (charge.booking_id, charge.payment_id)
        record = self._rows.get(key)
        if record is not None:
            self._rows.put(key, PaymentRecord(record.charge, record.provider, result))

    async def attempt_all(self, charges: list[ChargeRequest], provider: str) -> list[ChargeResult | None]:
        return [await self.attempt(charge, provider) for charge in charges]

    async def decide_all(self, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> None:
        for charge, result in decisions:
            await self.decide(charge, result)

    async def postpone(self, charge: ChargeRequest, retry_in: float) -> None:
        record = self._rows.get((charge.booking_id, charge.payment_id))
        if record is not None and record.result is None:
            self._rows.put((charge.booking_id, charge.payment_id),
                           PaymentRecord(charge, record.provider, None, retry_in, record.retries + 1))

    async def due(self, limit: int, lease_seconds: float) -> list[tuple[ChargeRequest, int]]:
        found = []
        for key in self._rows.all_keys():
            record = self._rows.get(key)
            if record is not None and record.result is None and record.retry_in is not None \
                    and record.retry_in <= 0 and len(found) < limit:
                self._rows.put(key, PaymentRecord(record.charge, record.provider, None, lease_seconds,
                                                  record.retries))
                found.append((record.charge, record.retries))
        return found


class FakePaymentUnitOfWork(FakeUnitOfWork):
    def __init__(self, db: PaymentDatabase) -> None:
        super().__init__(db.outbox, db.ids)
        self._db = db
        self.payments: PaymentRepository = FakePaymentRepository(Staged(db.payments), Staged(db.refunds), db.asking)

    def _begin(self) -> None:
        rows, refunds = Staged(self._db.payments), Staged(self._db.refunds)
        self.payments = FakePaymentRepository(rows, refunds, self._db.asking)
        self._tables = [rows, refunds]


class FakeProvider:
    """Approves every card but the declined test card; one result per idempotency key. Its tokens name a card it
    keeps; a number given where a token goes stands for itself."""

    name = "fake"

    def __init__(self, declined: tuple[str, ...] = ("4000000000000002",)) -> None:
        self._declined = declined
        self.cards: dict[str, str] = {}
        self.charges: dict[str, ChargeResult] = {}
        self.calls: list[tuple[str, Decimal, str, str]] = []
        self.refunds: dict[str, RefundResult] = {}
        self.refuse_refunds = False
        self.refund_calls: list[tuple[str, str, Decimal]] = []

    async def refund(self, idempotency_key: str, charge_key: str, amount: Decimal, currency: str) -> RefundResult:
        self.refund_calls.append((idempotency_key, charge_key, amount))
        if idempotency_key not in self.refunds:
            made = self.charges.get(charge_key)
            self.refunds[idempotency_key] = (
                RefundResult(True, f"refund_ref_{len(self.refunds)}") if made is not None and made.approved
                and "no-refund" not in charge_key and not self.refuse_refunds
                else RefundResult(False, "", "The refund was refused"))
        return self.refunds[idempotency_key]

    async def tokenise(self, card: str) -> CardToken:
        token = f"tok_fake_{len(self.cards) + 1}"
        self.cards[token] = card
        return CardToken(token, card[-4:])

    async def charge(self, idempotency_key: str, amount: Decimal, currency: str, card_token: str) -> ChargeResult:
        self.calls.append((idempotency_key, amount, currency, card_token))
        if idempotency_key not in self.charges:
            self.charges[idempotency_key] = (
                ChargeResult(False, f"ref_{len(self.charges)}", "card_declined", "Your card was declined")
                if self.cards.get(card_token, card_token) in self._declined
                else ChargeResult(True, f"ref_{len(self.charges)}"))
        return self.charges[idempotency_key]


# --- catalog -----------------------------------------------------------------------------------------------


@dataclass
class CatalogDatabase:
    events: dict[str, EventSpec] = field(default_factory=dict)
    counts: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # total, available, reserved, booked
    change_seqs: dict[str, int] = field(default_factory=dict)  # the change each event's counts are of
    creation_requests: dict[str, str | None] = field(default_factory=dict)  # the request that created each event


class FakeEvents:
    def __init__(self, events: Staged[str, EventSpec], counts: Staged[str, tuple[int, int, int, int]],
                 creation_requests: Staged[str, str | None]) -> None:
        self._events, self._counts, self._creation_requests = events, counts, creation_requests

    async def create(self, spec: EventSpec, request_id: str | None = None) -> bool:
        if spec.event_id in self._events:
            return False
        self._events.put(spec.event_id, spec)
        self._creation_requests.put(spec.event_id, request_id)
        seats = len(spec.seats())
        self._counts.put(spec.event_id, (seats, seats, 0, 0))
        return True


class FakeAvailability:
    def __init__(self, counts: Staged[str, tuple[int, int, int, int]], seqs: Staged[str, int]) -> None:
        self._counts, self._seqs = counts, seqs

    async def keep_newest(self, latest: dict[str, CountsAt]) -> None:
        for event_id, at in latest.items():
            row = self._counts.get(event_id)
            if row is None or (self._seqs.get(event_id) or 0) >= at.seq:
                continue
            self._counts.put(event_id, (row[0], at.counts.available, at.counts.reserved, at.counts.booked))
            self._seqs.put(event_id, at.seq)


class FakeCatalogUnitOfWork(FakeTransaction):
    def __init__(self, db: CatalogDatabase) -> None:
        super().__init__()
        self._db = db
        self.events: EventRepository
        self.availability: AvailabilityCounts
        self._begin()

    def _begin(self) -> None:
        events, counts, seqs = Staged(self._db.events), Staged(self._db.counts), Staged(self._db.change_seqs)
        requests = Staged(self._db.creation_requests)
        self.events = FakeEvents(events, counts, requests)
        self.availability = FakeAvailability(counts, seqs)
        self._tables = [events, counts, seqs, requests]
