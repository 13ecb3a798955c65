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
