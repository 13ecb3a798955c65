"""Booking: pending -> paying -> confirmed | payment_failed; pending -> cancelled | expired."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from boxoffice.domain import errors, events
from boxoffice.domain.model import Booking, BookingStatus

EXPIRES = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
BEFORE = EXPIRES - timedelta(minutes=5)
AMOUNT = Decimal("300.00")


def booking(status: BookingStatus = BookingStatus.PENDING, payment_id: str | None = None) -> Booking:
    return Booking("bk_1", "taylor_swift_concert", "user_1", ["A1", "A2"], AMOUNT, "USD", status, EXPIRES,
                   payment_id)


def released(reason: str) -> events.SeatsReleased:
    return events.SeatsReleased("bk_1", "taylor_swift_concert", "user_1", ["A1", "A2"], reason)


def paying() -> Booking:
    b = booking()
    b.start_payment("pay_1", AMOUNT, BEFORE)
    b.events.clear()
    return b


# --- allowed transitions ---------------------------------------------------------------------------------

def test_start_payment_moves_pending_to_paying_and_requests_payment():
    b = booking()
    b.start_payment("pay_1", Decimal("300"), BEFORE)
    assert b.status is BookingStatus.PAYING
    assert b.payment_id == "pay_1"
    assert b.events == [events.PaymentRequested("bk_1", "taylor_swift_concert", "pay_1", AMOUNT, "USD")]


def test_confirm_moves_paying_to_confirmed():
    b = paying()
    b.confirm()
    assert b.status is BookingStatus.CONFIRMED
    assert b.events == [events.BookingConfirmed("bk_1", "taylor_swift_concert", "user_1", ["A1", "A2"], AMOUNT,
                                                "USD", "pay_1")]


def test_full_happy_path_records_both_events_in_order():
    b = booking()
    b.start_payment("pay_1", AMOUNT, BEFORE)
    b.confirm()
    assert [type(e) for e in b.events] == [events.PaymentRequested, events.BookingConfirmed]


def test_fail_payment_moves_paying_to_payment_failed_and_releases_seats():
    b = paying()
    b.fail_payment()
    assert b.status is BookingStatus.PAYMENT_FAILED
    assert b.events == [released("payment_failed")]


def test_cancel_moves_pending_to_cancelled_and_releases_seats():
    b = booking()
    b.cancel()
    assert b.status is BookingStatus.CANCELLED
    assert b.events == [released("cancelled")]


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + timedelta(seconds=1), EXPIRES + timedelta(days=1)])
def test_expire_at_or_after_expiry_releases_seats(now):
    b = booking()
    b.expire(now)
    assert b.status is BookingStatus.EXPIRED
    assert b.events == [released("timeout")]


def test_released_event_carries_a_copy_of_the_seat_list():
    b = booking()
    b.cancel()
    b.seat_ids.append("A3")
    assert b.events[0].seat_ids == ["A1", "A2"]


# --- refused transitions ---------------------------------------------------------------------------------

def test_expire_before_expiry_is_refused():
    b = booking()
    with pytest.raises(errors.InvalidTransition) as caught:
        b.expire(EXPIRES - timedelta(microseconds=1))
    assert type(caught.value) is errors.InvalidTransition
    assert b.status is BookingStatus.PENDING
    assert b.events == []


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + timedelta(hours=1)])
def test_start_payment_on_pending_booking_past_expiry_raises_booking_expired(now):
    b = booking()
    with pytest.raises(errors.BookingExpired) as caught:
        b.start_payment("pay_1", AMOUNT, now)
    assert caught.value.code == "booking_expired"
    assert caught.value.details == {"booking_id": "bk_1"}
    assert b.status is BookingStatus.PENDING
    assert b.payment_id is None
    assert b.events == []


@pytest.mark.parametrize("amount", [Decimal("299.99"), Decimal("300.01"), Decimal("0"), Decimal("600.00")])
def test_start_payment_with_wrong_amount_raises_and_booking_stays_pending(amount):
    b = booking()
    with pytest.raises(errors.AmountMismatch) as caught:
        b.start_payment("pay_1", amount, BEFORE)
    assert caught.value.code == "amount_mismatch"
    assert caught.value.details == {"expected": "300.00"}
    assert b.status is BookingStatus.PENDING
    assert b.payment_id is None
    assert b.events == []


def test_start_payment_while_paying_raises_payment_in_progress():
    b = paying()
    with pytest.raises(errors.PaymentInProgress):
        b.start_payment("pay_2", AMOUNT, BEFORE)
    assert b.status is BookingStatus.PAYING
    assert b.payment_id == "pay_1"
    assert b.events == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (BookingStatus.CONFIRMED, errors.BookingAlreadyConfirmed),
        (BookingStatus.CANCELLED, errors.BookingCancelled),
        (BookingStatus.EXPIRED, errors.BookingExpired),
        (BookingStatus.PAYMENT_FAILED, errors.BookingPaymentFailed),
    ],
)
def test_start_payment_on_ended_booking_raises_status_error(status, error):
    b = booking(status)
    with pytest.raises(error):
        b.start_payment("pay_1", AMOUNT, BEFORE)
    assert b.status is status and b.events == []


@pytest.mark.parametrize("action", ["confirm", "fail_payment"])
def test_payment_outcome_on_pending_booking_is_refused(action):
    b = booking()
    with pytest.raises(errors.BookingNotPending) as caught:
        getattr(b, action)()
    assert isinstance(caught.value, errors.InvalidTransition)
    assert str(caught.value) == "Booking bk_1 is pending"
    assert b.status is BookingStatus.PENDING
    assert b.events == []


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (BookingStatus.CONFIRMED, errors.BookingAlreadyConfirmed, "booking_already_confirmed"),
        (BookingStatus.EXPIRED, errors.BookingExpired, "booking_expired"),
        (BookingStatus.CANCELLED, errors.BookingCancelled, "booking_cancelled"),
        (BookingStatus.PAYMENT_FAILED, errors.BookingPaymentFailed, "booking_payment_failed"),
        (BookingStatus.PAYING, errors.PaymentInProgress, "payment_in_progress"),
    ],
)
def test_cancel_of_non_pending_booking_is_refused(status, error, code):
    b = booking(status)
    with pytest.raises(error) as caught:
        b.cancel()
    assert caught.value.code == code
    assert str(caught.value) == f"Booking bk_1 is {status.value}"
    assert caught.value.details == {"booking_id": "bk_1"}
    assert b.status is status
    assert b.events == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (BookingStatus.PAYING, errors.PaymentInProgress),  # a payment in flight decides the outcome
        (BookingStatus.CONFIRMED, errors.BookingAlreadyConfirmed),
        (BookingStatus.CANCELLED, errors.BookingCancelled),
        (BookingStatus.EXPIRED, errors.BookingExpired),
        (BookingStatus.PAYMENT_FAILED, errors.BookingPaymentFailed),
    ],
)
def test_expire_of_non_pending_booking_is_refused_even_after_expiry(status, error):
    b = booking(status)
    with pytest.raises(error):
        b.expire(EXPIRES + timedelta(hours=1))
    assert b.status is status
    assert b.events == []


def test_paying_booking_past_expiry_can_still_be_confirmed():
    b = paying()
    with pytest.raises(errors.PaymentInProgress):
        b.expire(EXPIRES + timedelta(hours=1))
    b.confirm()
    assert b.status is BookingStatus.CONFIRMED


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (BookingStatus.CONFIRMED, errors.BookingAlreadyConfirmed),
        (BookingStatus.CANCELLED, errors.BookingCancelled),
        (BookingStatus.EXPIRED, errors.BookingExpired),
        (BookingStatus.PAYMENT_FAILED, errors.BookingPaymentFailed),
    ],
)
@pytest.mark.parametrize("action", ["confirm", "fail_payment"])
def test_payment_outcome_on_ended_booking_is_refused(status, error, action):
    b = booking(status)
    with pytest.raises(error):
        getattr(b, action)()
    assert b.status is status
    assert b.events == []


def test_confirm_twice_is_refused_and_records_one_confirmation():
    b = paying()
    b.confirm()
    with pytest.raises(errors.BookingAlreadyConfirmed):
        b.confirm()
    assert len(b.events) == 1
