"""Writes ready together share a unit of work; a write that fails fails only its own caller, and the outbox
rows of what committed reach the relay."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from boxoffice.service_layer.group_commit import GroupCommit
from boxoffice.service_layer.payment_ports import ChargeRequest, ChargeResult
from boxoffice.service_layer.payments import record_decision
from boxoffice.service_layer.ports import OutboxRow
from tests.fakes import FakePaymentUnitOfWork, PaymentDatabase


class Relay:
    def __init__(self, db: PaymentDatabase) -> None:
        self._db = db
        self.rows: list[OutboxRow] = []

    def submit(self, rows: list[OutboxRow]) -> None:
        assert all(row in self._db.outbox for row in rows), "submitted before its transaction committed"
        self.rows += rows


class CountingUnits:
    def __init__(self, db: PaymentDatabase) -> None:
        self._db = db
        self.opened = 0

    def __call__(self) -> FakePaymentUnitOfWork:
        self.opened += 1
        return FakePaymentUnitOfWork(self._db)


async def attempted(db: PaymentDatabase, n: int) -> list[ChargeRequest]:
    charges = [ChargeRequest(str(uuid.uuid4()), "p", "ev", Decimal("20.00"), "USD", "tok_1", "4242", None)
               for _ in range(n)]
    for charge in charges:
        async with (uow := FakePaymentUnitOfWork(db)):
            await uow.payments.attempt(charge, "fake")
            await uow.commit()
    return charges


async def test_decisions_ready_together_share_units_of_work_and_all_commit() -> None:
    db = PaymentDatabase()
    charges = await attempted(db, 50)
    units, relay = CountingUnits(db), Relay(db)
    decide = GroupCommit(units, record_decision, relay, most=100, at_once=2)

    await asyncio.gather(*(decide((charge, ChargeResult(True, f"ref_{i}"))) for i, charge in enumerate(charges)))

    assert all(db.payments[(c.booking_id, "p")].result == ChargeResult(True, f"ref_{i}")
               for i, c in enumerate(charges))
    assert len(relay.rows) == 50 and units.opened <= 3


async def test_a_failing_write_fails_only_its_caller() -> None:
    db = PaymentDatabase()
    good, bad = await attempted(db, 2)
    relay = Relay(db)

    async def write(uow: FakePaymentUnitOfWork, decision: tuple[ChargeRequest, ChargeResult]) -> None:
        if decision[0] is bad:
            raise ValueError("this decision cannot be written")
        await record_decision(uow, decision)

    decide: GroupCommit[FakePaymentUnitOfWork, tuple[ChargeRequest, ChargeResult], None] = GroupCommit(
        lambda: FakePaymentUnitOfWork(db), write, relay, at_once=1)
    outcomes = await asyncio.gather(decide((good, ChargeResult(True, "ok"))), decide((bad, ChargeResult(True, "x"))),
                                    return_exceptions=True)

    assert outcomes[0] is None and isinstance(outcomes[1], ValueError)
    assert db.payments[(good.booking_id, "p")].result == ChargeResult(True, "ok")
    assert db.payments[(bad.booking_id, "p")].result is None
    assert len(relay.rows) == 1


async def test_a_caller_that_goes_away_leaves_the_others_served() -> None:
    db = PaymentDatabase()
    first, second = await attempted(db, 2)
    decide = GroupCommit(lambda: FakePaymentUnitOfWork(db), record_decision, Relay(db), at_once=1)

    gone = asyncio.create_task(decide((first, ChargeResult(True, "a"))))
    stays = asyncio.create_task(decide((second, ChargeResult(True, "b"))))
    await asyncio.sleep(0)  # both wait for the same unit of work
    gone.cancel()
    await stays

    with pytest.raises(asyncio.CancelledError):
        await gone
    assert db.payments[(second.booking_id, "p")].result == ChargeResult(True, "b")


async def decide_each(uow: FakePaymentUnitOfWork, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> list[None]:
    return [await record_decision(uow, decision) for decision in decisions]


async def test_a_group_written_at_once_answers_each_caller_with_its_own_result() -> None:
    db = PaymentDatabase()
    charges = await attempted(db, 30)
    units, relay = CountingUnits(db), Relay(db)
    group_sizes: list[int] = []

    async def write_all(uow: FakePaymentUnitOfWork, items: list[ChargeRequest]) -> list[str]:
        group_sizes.append(len(items))
        await decide_each(uow, [(charge, ChargeResult(True, f"ref_{charge.booking_id}")) for charge in items])
        return [charge.booking_id for charge in items]

    async def write(uow: FakePaymentUnitOfWork, charge: ChargeRequest) -> str:
        [result] = await write_all(uow, [charge])
        return result

    group = GroupCommit(units, write, relay, at_once=1, write_all=write_all)
    results = await asyncio.gather(*(group(charge) for charge in charges))

    assert results == [charge.booking_id for charge in charges]
    assert all(db.payments[(c.booking_id, "p")].result == ChargeResult(True, f"ref_{c.booking_id}")
               for c in charges)
    assert len(relay.rows) == 30 and max(group_sizes) > 1 and units.opened < 30


async def test_a_group_written_at_once_that_fails_is_written_one_by_one_and_fails_only_the_bad_caller() -> None:
    db = PaymentDatabase()
    charges = await attempted(db, 5)
    bad = charges[2]
    relay = Relay(db)

    async def write_all(uow: FakePaymentUnitOfWork, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> list[None]:
        results = await decide_each(uow, decisions)  # written, then undone with the whole unit of work
        if any(charge is bad for charge, _ in decisions):
            raise ValueError("the statement fails as a whole")
        return results

    async def write(uow: FakePaymentUnitOfWork, decision: tuple[ChargeRequest, ChargeResult]) -> None:
        if decision[0] is bad:
            raise LookupError("this decision cannot be written")
        await record_decision(uow, decision)

    decide = GroupCommit(lambda: FakePaymentUnitOfWork(db), write, relay, at_once=1, write_all=write_all)
    outcomes = await asyncio.gather(*(decide((c, ChargeResult(True, f"ref_{i}"))) for i, c in enumerate(charges)),
                                    return_exceptions=True)

    assert [type(o) for o in outcomes] == [type(None)] * 2 + [LookupError] + [type(None)] * 2
    assert [db.payments[(c.booking_id, "p")].result for c in charges] == [
        None if c is bad else ChargeResult(True, f"ref_{i}") for i, c in enumerate(charges)]
    assert len(relay.rows) == 4 and len(db.outbox) == 4


async def test_a_group_written_at_once_with_results_missing_is_written_one_by_one() -> None:
    db = PaymentDatabase()
    charges = await attempted(db, 3)
    relay = Relay(db)

    async def write_all(uow: FakePaymentUnitOfWork, decisions: list[tuple[ChargeRequest, ChargeResult]]) -> list[None]:
        return (await decide_each(uow, decisions))[1:]

    decide = GroupCommit(lambda: FakePaymentUnitOfWork(db), record_decision, relay, at_once=1, write_all=write_all)
    outcomes = await asyncio.gather(*(decide((c, ChargeResult(True, f"ref_{i}"))) for i, c in enumerate(charges)))

    assert outcomes == [None, None, None]
    assert [db.payments[(c.booking_id, "p")].result for c in charges] == [
        ChargeResult(True, f"ref_{i}") for i in range(3)]
    assert len(relay.rows) == 3 and len(db.outbox) == 3
