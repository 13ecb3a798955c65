"""Tickets at the door: a signed payload nobody can make from public data, and one entry per seat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Self

import pytest

from boxoffice import views
from boxoffice.domain.accounts import Principal, Role
from boxoffice.domain.tickets import BookingAtDoor, Ticket, TicketSeal, UnreadableTicket
from boxoffice.entrypoints.gateway import tickets
from boxoffice.entrypoints.gateway.responses import ApiError
from boxoffice.entrypoints.gateway.schemas import TicketCheck
from boxoffice.service_layer.door import verify_ticket

BOOKING = "6f1c1f7e-6d3a-4c59-9f39-0d3f2b8f1a11"
SEAL = TicketSeal(b"install-key-" * 4)
TICKET = Ticket("night_show", BOOKING, "A1")
T0 = datetime(2030, 1, 1, 19, 0, tzinfo=UTC)


def reason_of(payload: str) -> str:
    with pytest.raises(UnreadableTicket) as refused:
        SEAL.read(payload)
    return refused.value.reason


def test_a_ticket_reads_back_as_what_it_names() -> None:
    payload = SEAL.issue(TICKET)
    assert payload.startswith(f"boxoffice:ticket:2:night_show:{BOOKING}:A1:")
    assert SEAL.read(payload) == TICKET
    assert SEAL.read(f" {payload}\n") == TICKET  # as a scanner may hand it over


def test_tickets_cannot_be_made_or_changed_without_the_key() -> None:
    payload = SEAL.issue(TICKET)
    mac = payload.rsplit(":", 1)[1]
    assert reason_of(TicketSeal(b"another-install-" * 2).issue(TICKET)) == "forged"
    assert reason_of(payload.replace(":A1:", ":A2:")) == "forged"  # another seat of the same booking
    assert reason_of(payload.replace("night_show", "day_show")) == "forged"
    other = "0" * 8 + BOOKING[8:]
    assert reason_of(payload.replace(BOOKING, other)) == "forged"
    assert reason_of(f"{TICKET.text}:{'A' * 43}") == "forged"
    assert reason_of(f"{TICKET.text}:{mac[:-1]}") == "malformed"
    assert reason_of(f"boxoffice:ticket:{BOOKING}:A1") == "unsigned"  # the form before tickets were signed
    for garbage in ("", "hello", "boxoffice:ticket:2:", f"{payload}:extra", payload.replace(":", ";")):
        assert reason_of(garbage) == "malformed"


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TicketSeal(b"short")


class FakeDoor:
    """Bookings by id and entries by (booking, seat), committed or rolled back like a transaction."""

    def __init__(self, bookings: dict[str, BookingAtDoor]) -> None:
        self.bookings_by_id = bookings
        self.committed: dict[tuple[str, str], datetime] = {}
        self._pending: dict[tuple[str, str], datetime] = {}
        self.bookings = self
        self.entries = self

    async def get(self, booking_id: str) -> BookingAtDoor | None:
        return self.bookings_by_id.get(booking_id)

    async def enter(self, ticket: Ticket, at: datetime) -> datetime | None:
        key = (ticket.booking_id, ticket.seat_id)
        if key in self.committed:
            return self.committed[key]
        self._pending[key] = at
        return None

    async def __aenter__(self) -> Self:
        self._pending = {}
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._pending = {}

    async def commit(self) -> None:
        self.committed |= self._pending


def confirmed(status: str = "confirmed") -> dict[str, BookingAtDoor]:
    return {BOOKING: BookingAtDoor("night_show", status, frozenset({"A1", "A2"}))}


async def test_a_ticket_gets_in_once_and_then_says_when() -> None:
    door = FakeDoor(confirmed())
    first = await verify_ticket(SEAL.issue(TICKET), SEAL, door, lambda: T0)
    again = await verify_ticket(SEAL.issue(TICKET), SEAL, door, lambda: T0 + timedelta(minutes=5))
    other_seat = await verify_ticket(SEAL.issue(Ticket("night_show", BOOKING, "A2")), SEAL, door,
                                     lambda: T0 + timedelta(minutes=6))

    assert (first.status, first.ticket, first.used_at) == ("valid", TICKET, T0)
    assert (again.status, again.ticket, again.used_at, again.reason) == ("already_used", TICKET, T0, "already_used")
    assert other_seat.status == "valid"
    assert door.committed == {(BOOKING, "A1"): T0, (BOOKING, "A2"): T0 + timedelta(minutes=6)}


@pytest.mark.parametrize("status", ["refunded", "refunding", "cancelled", "expired", "pending", "payment_failed"])
async def test_only_a_confirmed_booking_gets_in(status: str) -> None:
    door = FakeDoor(confirmed(status))
    verdict = await verify_ticket(SEAL.issue(TICKET), SEAL, door, lambda: T0)
    assert (verdict.status, verdict.reason, verdict.ticket) == ("invalid", f"booking_{status}", TICKET)
    assert door.committed == {}


async def test_no_ticket_of_a_cancelled_event_gets_in() -> None:
    """Also a confirmed booking's, whose refund the provider refused: there is no show to let anyone into."""
    door = FakeDoor({BOOKING: BookingAtDoor("night_show", "confirmed", frozenset({"A1", "A2"}), event_cancelled=True)})
    verdict = await verify_ticket(SEAL.issue(TICKET), SEAL, door, lambda: T0)
    assert (verdict.status, verdict.reason, verdict.ticket) == ("invalid", "event_cancelled", TICKET)
    assert door.committed == {}


@pytest.mark.parametrize(("ticket", "reason"), [
    (Ticket("night_show", BOOKING, "B9"), "seat_not_in_booking"),
    (Ticket("day_show", BOOKING, "A1"), "unknown_booking"),
    (Ticket("night_show", "0" * 8 + BOOKING[8:], "A1"), "unknown_booking"),
])
async def test_a_genuine_ticket_that_matches_no_booking_is_invalid(ticket: Ticket, reason: str) -> None:
    door = FakeDoor(confirmed())
    verdict = await verify_ticket(SEAL.issue(ticket), SEAL, door, lambda: T0)
    assert (verdict.status, verdict.reason) == ("invalid", reason)
    assert door.committed == {}


async def test_a_forged_ticket_names_nothing_and_records_nothing() -> None:
    door = FakeDoor(confirmed())
    verdict = await verify_ticket(f"boxoffice:ticket:{BOOKING}:A1", SEAL, door, lambda: T0)
    assert (verdict.status, verdict.reason, verdict.ticket, verdict.used_at) == ("invalid", "unsigned", None, None)
    assert door.committed == {}


class _DoorGateway:
    """What POST /tickets/verify uses of the gateway: the seal, the read models' pool and the door."""

    def __init__(self, door: FakeDoor) -> None:
        self.tickets, self.pool, self._door = SEAL, object(), door

    def door(self) -> FakeDoor:
        return self._door


@pytest.mark.parametrize(("caller", "status"), [
    (Principal("user_o", "o@x.test", Role.ORGANISER), 200), (Principal("user_p", "p@x.test", Role.ORGANISER), 403),
    (Principal("user_x", "x@x.test", Role.ADMIN), 200)])
async def test_only_the_events_organiser_or_an_admin_checks_its_tickets(
        monkeypatch: pytest.MonkeyPatch, caller: Principal, status: int) -> None:
    """Another organiser's scan is refused before it uses the ticket up; a forged ticket is not theirs to refuse."""
    async def event_organiser(pool: object, event_id: str) -> str | None:
        return "user_o" if event_id == "night_show" else None
    monkeypatch.setattr(views, "event_organiser", event_organiser)
    door = FakeDoor(confirmed())
    gateway = _DoorGateway(door)
    if status == 403:
        with pytest.raises(ApiError) as refused:
            await tickets.verify(TicketCheck(ticket=SEAL.issue(TICKET)), gateway, caller)  # type: ignore[arg-type]
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        assert "night_show belongs to another organiser" in refused.value.message
        assert door.committed == {}
        forged = await tickets.verify(TicketCheck(ticket="nonsense"), gateway, caller)  # type: ignore[arg-type]
        assert forged.status_code == 200 and b'"malformed"' in forged.body
    else:
        answer = await tickets.verify(TicketCheck(ticket=SEAL.issue(TICKET)), gateway, caller)  # type: ignore[arg-type]
        assert answer.status_code == 200 and b'"valid"' in answer.body and set(door.committed) == {(BOOKING, "A1")}
