"""Seat: AVAILABLE -> RESERVED -> BOOKED, or back to AVAILABLE; nothing else."""

from decimal import Decimal

import pytest

from boxoffice.domain import errors
from boxoffice.domain.model import Seat, SeatStatus

PRICE = Decimal("150.00")


def seat(status: SeatStatus = SeatStatus.AVAILABLE, booking_id: str | None = None) -> Seat:
    return Seat("A1", status, PRICE, booking_id)


def test_reserve_available_seat_holds_it_for_the_booking():
    s = seat()
    s.reserve("bk_1")
    assert s.status is SeatStatus.RESERVED
    assert s.booking_id == "bk_1"
    assert s.price == PRICE


def test_book_reserved_seat_by_holding_booking():
    s = seat(SeatStatus.RESERVED, "bk_1")
    s.book("bk_1")
    assert s.status is SeatStatus.BOOKED
    assert s.booking_id == "bk_1"


def test_release_reserved_seat_by_holding_booking_frees_it():
    s = seat(SeatStatus.RESERVED, "bk_1")
    s.release("bk_1")
    assert s.status is SeatStatus.AVAILABLE
    assert s.booking_id is None


def test_released_seat_can_be_reserved_again_by_another_booking():
    s = seat()
    s.reserve("bk_1")
    s.release("bk_1")
    s.reserve("bk_2")
    assert (s.status, s.booking_id) == (SeatStatus.RESERVED, "bk_2")


@pytest.mark.parametrize(
    ("status", "message"),
    [(SeatStatus.RESERVED, "Seat A1 is already reserved"), (SeatStatus.BOOKED, "Seat A1 is already booked")],
)
@pytest.mark.parametrize("booking_id", ["bk_1", "bk_other"])
def test_reserve_taken_seat_is_refused(status, message, booking_id):
    s = seat(status, "bk_1")
    with pytest.raises(errors.SeatUnavailable) as caught:
        s.reserve(booking_id)
    assert str(caught.value) == message
    assert caught.value.message == message
    assert caught.value.code == "seat_unavailable"
    assert (s.status, s.booking_id) == (status, "bk_1")


@pytest.mark.parametrize(
    ("status", "holder", "actor", "action"),
    [
        (SeatStatus.AVAILABLE, None, "bk_1", "book"),
        (SeatStatus.RESERVED, "bk_1", "bk_other", "book"),
        (SeatStatus.BOOKED, "bk_1", "bk_1", "book"),
        (SeatStatus.AVAILABLE, None, "bk_1", "release"),
        (SeatStatus.BOOKED, "bk_1", "bk_1", "release"),
        (SeatStatus.RESERVED, "bk_1", "bk_other", "release"),
    ],
    ids=["book-available", "book-other-booking", "book-booked", "release-available", "release-booked",
         "release-other-booking"],
)
def test_refused_transitions_raise_invalid_transition_and_leave_seat_unchanged(status, holder, actor, action):
    s = seat(status, holder)
    with pytest.raises(errors.InvalidTransition) as caught:
        getattr(s, action)(actor)
    assert caught.value.code == "invalid_transition"
    assert str(caught.value) == f"Seat A1 is not held by booking {actor}"
    assert (s.status, s.booking_id) == (status, holder)
