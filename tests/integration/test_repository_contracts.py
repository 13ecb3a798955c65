"""What the payment and catalog repositories promise, checked on the in-memory fakes and on PostgreSQL alike,
so the fakes the handler tests run on cannot drift from the real thing.

Each contract is a base class; a subclass per implementation supplies the unit of work (and a way to read
the availability counts, which no handler needs to read).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery

from boxoffice.adapters.catalog_store import PostgresCatalogUnitOfWork
from boxoffice.adapters.payment_store import PostgresPaymentRepository, PostgresPaymentUnitOfWork
from boxoffice.domain.catalog import EventSpec
from boxoffice.service_layer.catalog_ports import CatalogUnitOfWork, CountsAt, SeatCounts
from boxoffice.service_layer.payment_ports import (
    ChargeRequest,
    ChargeResult,
    PaymentUnitOfWork,
    RefundRequest,
    RefundResult,
)
from boxoffice.service_layer.unit_of_work import Outgoing
from tests.conftest import small_event
from tests.fakes import CatalogDatabase, FakeCatalogUnitOfWork, FakePaymentUnitOfWork, PaymentDatabase

PaymentUnits = Callable[[], PaymentUnitOfWork]
CatalogUnits = Callable[[], CatalogUnitOfWork]
Counts = Callable[[str], Awaitable[tuple[int, int, int, int] | None]]
CreationRequest = Callable[[str], Awaitable[str | None]]


def a_charge(booking_id: str | None = None, payment_id: str = "pay_1") -> ChargeRequest:
    return ChargeRequest(booking_id or str(uuid.uuid4()), payment_id, "ev_contract", Decimal("150.00"), "USD",
                         "tok_contract", "4242", "req_contract")


APPROVED = ChargeResult(True, "ref_1")
DECLINED = ChargeResult(False, "ref_2", "card_declined", "Your card was declined")


class PaymentRepositoryContract:
    async def attempt(self, units: PaymentUnits, charge: ChargeRequest) -> ChargeResult | None:
        async with (uow := units()):
            result = await uow.payments.attempt(charge, "simulated")
            await uow.commit()
        return result

    async def decide(self, units: PaymentUnits, charge: ChargeRequest, result: ChargeResult) -> None:
        async with (uow := units()):
            await uow.payments.decide(charge, result)
            await uow.commit()

    async def test_an_attempt_is_undecided_until_its_result_is_recorded(self, units: PaymentUnits) -> None:
        charge = a_charge()
        assert await self.attempt(units, charge) is None
        assert await self.attempt(units, charge) is None  # a copy while charging: still undecided

    @pytest.mark.parametrize("result", [APPROVED, DECLINED])
    async def test_a_decided_payment_says_its_result(self, units: PaymentUnits, result: ChargeResult) -> None:
        charge = a_charge()
        await self.attempt(units, charge)
        await self.decide(units, charge, result)
        assert await self.attempt(units, charge) == result
        assert await self.attempt(units, charge) == result

    async def test_payments_are_kept_per_booking_and_payment_id(self, units: PaymentUnits) -> None:
        charge = a_charge()
        again = a_charge(charge.booking_id, "pay_2")
        other = a_charge(payment_id=charge.payment_id)
        for each in (charge, again, other):
            await self.attempt(units, each)
        await self.decide(units, charge, APPROVED)
        assert [await self.attempt(units, each) for each in (charge, again, other)] == [APPROVED, None, None]

    async def test_a_result_without_an_attempt_records_nothing(self, units: PaymentUnits) -> None:
        charge = a_charge()
        await self.decide(units, charge, APPROVED)
        assert await self.attempt(units, charge) is None

    async def test_what_is_not_committed_is_not_kept(self, units: PaymentUnits) -> None:
        charge = a_charge()
        async with (uow := units()):
            await uow.payments.attempt(charge, "simulated")
            await uow.payments.decide(charge, APPROVED)
        await self.attempt(units, charge)
        async with (uow := units()):
            await uow.payments.decide(charge, DECLINED)
            await uow.rollback()
        assert await self.attempt(units, charge) is None

    async def test_the_outbox_shows_the_rows_of_committed_transactions(self, units: PaymentUnits) -> None:
        topic = f"contract.{uuid.uuid4().hex[:8]}"
        uow = units()
        async with uow:
            await uow.outbox.add([Outgoing(topic, b"ev", b"one"), Outgoing(topic, b"ev", b"two")])
            assert uow.outbox.written == []
            await uow.commit()
        async with uow:  # entered again: a transaction of its own
            await uow.outbox.add([Outgoing(topic, b"ev", b"rolled back")])
        async with uow:
            await uow.outbox.add([Outgoing(topic, b"ev", b"three")])
            with pytest.raises(LookupError):
                async with uow.savepoint():
                    await uow.outbox.add([Outgoing(topic, b"ev", b"undone")])
                    raise LookupError
            await uow.commit()
        written = uow.outbox.written
        assert [(r.topic, r.key, r.payload) for r in written] == [(topic, b"ev", b"one"), (topic, b"ev", b"two"),
                                                                  (topic, b"ev", b"three")]
        assert [r.id for r in written] == sorted({r.id for r in written})

    async def test_a_savepoint_undoes_its_own_writes_only(self, units: PaymentUnits) -> None:
        kept, undone = a_charge(), a_charge()
        async with (uow := units()):
            await uow.payments.attempt(kept, "simulated")
            with pytest.raises(LookupError):
                async with uow.savepoint():
                    await uow.payments.attempt(undone, "simulated")
                    await uow.payments.decide(undone, APPROVED)
                    raise LookupError
            await uow.payments.decide(kept, APPROVED)
            await uow.commit()
        assert [await self.attempt(units, each) for each in (kept, undone)] == [APPROVED, None]


    async def postpone(self, units: PaymentUnits, charge: ChargeRequest, retry_in: float) -> None:
        async with (uow := units()):
            await uow.payments.postpone(charge, retry_in)
            await uow.commit()

    async def due(self, units: PaymentUnits, *charges: ChargeRequest) -> list[tuple[ChargeRequest, int]]:
        async with (uow := units()):
            due = await uow.payments.due(100, lease_seconds=60)
            await uow.commit()
        return [(charge, times) for charge, times in due if charge in charges]

    async def test_a_postponed_attempt_is_due_with_what_asking_again_needs_once_its_time_has_come(
            self, units: PaymentUnits) -> None:
        now, later = a_charge(), a_charge()
        for charge in (now, later):
            await self.attempt(units, charge)
        await self.postpone(units, now, retry_in=0)
        await self.postpone(units, later, retry_in=60)

        assert await self.due(units, now, later) == [(now, 1)]
        assert await self.due(units, now, later) == []  # leased: not due again meanwhile
        assert await self.attempt(units, now) is None  # still undecided

    async def test_a_decided_payment_is_neither_postponed_nor_due(self, units: PaymentUnits) -> None:
        postponed, decided = a_charge(), a_charge()
        for charge in (postponed, decided):
            await self.attempt(units, charge)
        await self.postpone(units, postponed, retry_in=0)
        await self.decide(units, postponed, APPROVED)
        await self.decide(units, decided, APPROVED)
        await self.postpone(units, decided, retry_in=0)

        assert await self.due(units, postponed, decided) == []
        assert [await self.attempt(units, c) for c in (postponed, decided)] == [APPROVED, APPROVED]

    async def test_each_postponement_is_counted(self, units: PaymentUnits) -> None:
        charge = a_charge()
        await self.attempt(units, charge)
        await self.postpone(units, charge, retry_in=0)
        await self.due(units, charge)
        await self.postpone(units, charge, retry_in=0)

        assert await self.due(units, charge) == [(charge, 2)]

    async def attempt_all(self, units: PaymentUnits, *charges: ChargeRequest) -> list[ChargeResult | None]:
        async with (uow := units()):
            results = await uow.payments.attempt_all(list(charges), "simulated")
            await uow.commit()
        return results

    async def decide_all(self, units: PaymentUnits, *decisions: tuple[ChargeRequest, ChargeResult]) -> None:
        async with (uow := units()):
            await uow.payments.decide_all(list(decisions))
            await uow.commit()

    async def stored(self, units: PaymentUnits, charge: ChargeRequest) -> ChargeRequest:
        """What the record of an undecided payment holds, read back through a postponement."""
        await self.postpone(units, charge, retry_in=0)
        async with (uow := units()):
            due = await uow.payments.due(100, lease_seconds=60)
            await uow.commit()
        [kept] = [c for c, _ in due if (c.booking_id, c.payment_id) == (charge.booking_id, charge.payment_id)]
        return kept

    async def test_new_charges_attempted_together_are_each_recorded_undecided(self, units: PaymentUnits) -> None:
        charges = [a_charge(), a_charge(), a_charge(payment_id="pay_2")]
        assert await self.attempt_all(units, *charges) == [None, None, None]
        assert [await self.attempt(units, c) for c in charges] == [None, None, None]  # charging, not new
        await self.decide(units, charges[1], APPROVED)
        assert [await self.attempt(units, c) for c in charges] == [None, APPROVED, None]
        assert await self.stored(units, charges[2]) == charges[2]

    async def test_attempts_together_of_new_charging_and_decided_payments_say_each_its_own(
            self, units: PaymentUnits) -> None:
        charging, approved, declined, new = a_charge(), a_charge(), a_charge(), a_charge()
        for charge in (charging, approved, declined):
            await self.attempt(units, charge)
        await self.decide_all(units, (approved, APPROVED), (declined, DECLINED))

        assert await self.attempt_all(units, declined, new, approved, charging) == [DECLINED, None, APPROVED, None]
        assert await self.attempt_all(units, new) == [None]  # recorded by the attempts together
        assert await self.attempt_all(units) == []

    async def test_a_charge_twice_in_one_call_is_as_two_attempts_one_after_the_other(
            self, units: PaymentUnits) -> None:
        charge, decided = a_charge(), a_charge()
        copy = ChargeRequest(charge.booking_id, charge.payment_id, "ev_copy", Decimal("1.00"), "EUR", "tok_copy",
                             "0000", "req_copy")
        await self.attempt(units, decided)
        await self.decide(units, decided, DECLINED)

        assert await self.attempt_all(units, charge, decided, copy, decided) == [None, DECLINED, None, DECLINED]
        assert await self.stored(units, charge) == charge  # the first copy's record; the second left it as it is
        await self.decide(units, charge, APPROVED)
        assert await self.attempt_all(units, copy, charge) == [APPROVED, APPROVED]

    async def test_decisions_together_are_each_recorded(self, units: PaymentUnits) -> None:
        approved, declined, undecided, postponed, never_attempted = (a_charge() for _ in range(5))
        for charge in (approved, declined, undecided, postponed):
            await self.attempt(units, charge)
        await self.postpone(units, postponed, retry_in=0)

        await self.decide_all(units, (approved, APPROVED), (declined, DECLINED), (postponed, APPROVED),
                              (never_attempted, APPROVED))

        assert await self.attempt_all(units, approved, declined, undecided, postponed) == [
            APPROVED, DECLINED, None, APPROVED]
        assert await self.due(units, postponed) == []  # decided: no longer asked again
        assert await self.attempt(units, never_attempted) is None  # a result without an attempt records nothing
        await self.decide_all(units)

    async def test_a_payment_decided_twice_together_keeps_the_later_result(self, units: PaymentUnits) -> None:
        charge = a_charge()
        await self.attempt(units, charge)
        await self.decide_all(units, (charge, DECLINED), (charge, APPROVED))
        assert await self.attempt(units, charge) == APPROVED

    async def test_attempts_and_decisions_together_not_committed_are_not_kept(self, units: PaymentUnits) -> None:
        decided, new = a_charge(), a_charge()
        await self.attempt(units, decided)
        async with (uow := units()):
            await uow.payments.decide_all([(decided, APPROVED)])
            await uow.payments.attempt_all([new], "simulated")
            await uow.rollback()
        assert await self.attempt_all(units, decided, new) == [None, None]
        await self.decide(units, new, APPROVED)
        assert await self.attempt(units, new) == APPROVED  # the attempt above recorded it anew

    async def refund_attempt(self, units: PaymentUnits, refund: RefundRequest) -> RefundResult | None:
        async with (uow := units()):
            result = await uow.payments.refund_attempt(refund, "simulated")
            await uow.commit()
        return result

    async def test_a_refund_is_kept_once_per_id_and_says_its_first_result(self, units: PaymentUnits) -> None:
        booking_id = str(uuid.uuid4())
        refund = RefundRequest(booking_id, "pay_1", f"refund_{booking_id}", "ev_contract", Decimal("150.00"), "USD",
                               "req_contract")
        assert await self.refund_attempt(units, refund) is None
        assert await self.refund_attempt(units, refund) is None  # a copy while refunding: still undecided
        async with (uow := units()):
            await uow.payments.refund_decided(refund, RefundResult(True, "simr_1"))
            await uow.commit()
        async with (uow := units()):
            await uow.payments.refund_decided(refund, RefundResult(False, "", "too late"))  # the first answer stays
            await uow.commit()
        assert await self.refund_attempt(units, refund) == RefundResult(True, "simr_1", None)


class TestFakePayments(PaymentRepositoryContract):
    @pytest.fixture
    def units(self) -> PaymentUnits:
        db = PaymentDatabase()
        return lambda: FakePaymentUnitOfWork(db)


class TestPostgresPayments(PaymentRepositoryContract):
    @pytest.fixture
    async def units(self, pool: asyncpg.Pool) -> PaymentUnits:
        return lambda: PostgresPaymentUnitOfWork(pool)

    @pytest.fixture(autouse=True)
    async def no_rows_left_for_a_relay(self, pool: asyncpg.Pool) -> AsyncIterator[None]:
        yield
        await pool.execute("DELETE FROM outbox WHERE topic LIKE 'contract.%'")

    async def test_charges_attempted_or_decided_together_take_one_statement(self, pool: asyncpg.Pool) -> None:
        charges = [a_charge() for _ in range(50)]
        statements: list[str] = []

        def logged(query: LoggedQuery) -> None:
            statements.append(query.query)

        async with pool.acquire() as con, con.transaction():
            payments = PostgresPaymentRepository(con)
            warm_up = a_charge()  # a connection reads the types of a statement's arguments once, the first time
            await payments.attempt_all([warm_up], "simulated")
            await payments.decide_all([(warm_up, APPROVED)])
            con.add_query_logger(logged)
            try:
                assert await payments.attempt_all(charges + charges[:5], "simulated") == [None] * 55
                await payments.decide_all([(charge, APPROVED) for charge in charges])
                assert await payments.attempt_all(charges, "simulated") == [APPROVED] * 50
            finally:
                con.remove_query_logger(logged)
        assert len(statements) == 3, [s[:60] for s in statements]


class CatalogRepositoryContract:
    async def create(self, units: CatalogUnits, spec: EventSpec, request_id: str | None = None) -> bool:
        async with (uow := units()):
            created = await uow.events.create(spec, request_id)
            await uow.commit()
        return created

    async def keep_newest(self, units: CatalogUnits, latest: dict[str, CountsAt], commit: bool = True) -> None:
        async with (uow := units()):
            await uow.availability.keep_newest(latest)
            if commit:
                await uow.commit()

    async def test_an_event_is_created_once_with_every_seat_available(self, units: CatalogUnits,
                                                                      counts: Counts) -> None:
        spec = small_event(rows=2, seats=5)
        assert await self.create(units, spec)
        assert await counts(spec.event_id) == (10, 10, 0, 0)
        bigger = small_event(spec.event_id, rows=3, seats=5)
        assert not await self.create(units, bigger)
        assert await counts(spec.event_id) == (10, 10, 0, 0)

    async def test_an_event_keeps_the_request_that_created_it(self, units: CatalogUnits,
                                                              creation_request: CreationRequest) -> None:
        spec = small_event()
        assert await self.create(units, spec, "req_first")
        assert not await self.create(units, small_event(spec.event_id, seats=3), "req_second")
        assert await creation_request(spec.event_id) == "req_first"

    async def test_an_event_not_committed_does_not_exist(self, units: CatalogUnits, counts: Counts) -> None:
        spec = small_event()
        async with (uow := units()):
            assert await uow.events.create(spec)
        assert await counts(spec.event_id) is None
        assert await self.create(units, spec)

    async def test_the_counts_of_the_newest_change_are_kept(self, units: CatalogUnits, counts: Counts) -> None:
        spec, other = small_event(seats=10), small_event(seats=4)
        await self.create(units, spec)
        await self.create(units, other)
        unknown = f"ev_{uuid.uuid4().hex[:12]}"
        await self.keep_newest(units, {spec.event_id: CountsAt(2, SeatCounts(7, 3, 0)),
                                       other.event_id: CountsAt(1, SeatCounts(3, 0, 1)),
                                       unknown: CountsAt(1, SeatCounts(0, 1, 0))})
        await self.keep_newest(units, {spec.event_id: CountsAt(1, SeatCounts(9, 1, 0))})  # older: kept as is
        await self.keep_newest(units, {spec.event_id: CountsAt(2, SeatCounts(9, 1, 0))})  # the same change again
        await self.keep_newest(units, {spec.event_id: CountsAt(3, SeatCounts(8, 1, 1))})
        await self.keep_newest(units, {spec.event_id: CountsAt(4, SeatCounts(3, 6, 1))}, commit=False)
        assert await counts(spec.event_id) == (10, 8, 1, 1)
        assert await counts(other.event_id) == (4, 3, 0, 1)
        assert await counts(unknown) is None


class TestFakeCatalog(CatalogRepositoryContract):
    @pytest.fixture
    def db(self) -> CatalogDatabase:
        return CatalogDatabase()

    @pytest.fixture
    def units(self, db: CatalogDatabase) -> CatalogUnits:
        return lambda: FakeCatalogUnitOfWork(db)

    @pytest.fixture
    def counts(self, db: CatalogDatabase) -> Counts:
        async def read(event_id: str) -> tuple[int, int, int, int] | None:
            return db.counts.get(event_id)

        return read

    @pytest.fixture
    def creation_request(self, db: CatalogDatabase) -> CreationRequest:
        async def read(event_id: str) -> str | None:
            return db.creation_requests.get(event_id)

        return read


class TestPostgresCatalog(CatalogRepositoryContract):
    @pytest.fixture
    async def units(self, pool: asyncpg.Pool) -> CatalogUnits:
        return lambda: PostgresCatalogUnitOfWork(pool)

    @pytest.fixture
    async def counts(self, pool: asyncpg.Pool) -> Counts:
        async def read(event_id: str) -> tuple[int, int, int, int] | None:
            row = await pool.fetchrow("SELECT total, available, reserved, booked FROM event_availability "
                                      "WHERE event_id = $1", event_id)
            return None if row is None else (row["total"], row["available"], row["reserved"], row["booked"])

        return read

    @pytest.fixture
    async def creation_request(self, pool: asyncpg.Pool) -> CreationRequest:
        async def read(event_id: str) -> str | None:
            value: str | None = await pool.fetchval("SELECT creation_request FROM events WHERE event_id = $1",
                                                    event_id)
            return value

        return read
