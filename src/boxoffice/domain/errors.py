"""Domain errors. Each carries a machine code; entrypoints map them to HTTP in one place."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SeatUnavailable(DomainError):
    code = "seat_unavailable"


class SeatLimitReached(DomainError):
    """A buyer asked for more seats of one event than one buyer may hold or own."""

    code = "seat_limit_reached"


class EventCancelled(DomainError):
    """The organiser called the event off: it takes no new holds."""

    code = "event_cancelled"


class SaleNotOpen(DomainError):
    """The event's sale opens at a set time (its on-sale, without a waiting room) that has not come yet."""

    code = "sale_not_open"


class SaleOpen(DomainError):
    """A new opening time for a sale that has opened (its waiting room opened, or without one its opening time
    came): holds were taken, and the sale cannot be closed again after the fact."""

    code = "sale_open"


class SoldOut(DomainError):
    """Fewer seats are left (in the category or section asked) than a best-available request wants."""

    code = "sold_out"


class NotEnoughAdjacent(DomainError):
    """Enough seats are left for a best-available request, but not together in one row."""

    code = "not_enough_adjacent"


class CategoryNotFound(DomainError):
    """A best-available request names a category the event has no seats in (or none in the section asked)."""

    code = "category_not_found"


class SectionNotFound(DomainError):
    """A best-available request names a section the event does not have."""

    code = "section_not_found"


class TooManySeats(DomainError):
    """More seats than can ever be had at once: more than one booking may take, or, on the waiting list, more
    than the event has together in one row (offers are seats together, so such an entry would wait for ever)."""

    code = "too_many_seats"


class WaitlistEntryNotFound(DomainError):
    code = "waitlist_not_found"


class WaitlistEntryEnded(DomainError):
    """A waiting list entry whose offer ran out, or whose offer was paid: it cannot leave any more."""

    code = "waitlist_ended"


class InvalidRequest(DomainError):
    code = "invalid_request"


class SeatNotFound(DomainError):
    code = "seat_not_found"


class EventNotFound(DomainError):
    code = "event_not_found"


class BookingNotFound(DomainError):
    code = "booking_not_found"


class InvalidTransition(DomainError):
    """A state change that the state machine does not allow."""

    code = "invalid_transition"


class BookingNotPending(InvalidTransition):
    code = "booking_not_pending"


class BookingExpired(BookingNotPending):
    code = "booking_expired"


class BookingCancelled(BookingNotPending):
    code = "booking_cancelled"


class BookingAlreadyConfirmed(BookingNotPending):
    code = "booking_already_confirmed"


class BookingPaymentFailed(BookingNotPending):
    code = "booking_payment_failed"


class PaymentInProgress(BookingNotPending):
    code = "payment_in_progress"


class RefundInProgress(BookingNotPending):
    code = "refund_in_progress"


class BookingRefunded(BookingNotPending):
    code = "booking_refunded"


class TicketsUsed(DomainError):
    """A paid booking whose tickets let someone in at the door: the buyer cannot give it back for a refund."""

    code = "tickets_used"


class RefundFailed(DomainError):
    """The payment provider would not refund a booking: it stays confirmed."""

    code = "refund_failed"


class AmountMismatch(DomainError):
    code = "amount_mismatch"


class NotAdmitted(DomainError):
    """A hold for an event behind an active waiting room without the buyer's own access token."""

    code = "not_admitted"


class AdmissionExpired(DomainError):
    """A hold with an access token whose admission has ended."""

    code = "admission_expired"


class NoWaitingRoom(DomainError):
    code = "no_waiting_room"


class ProofOfWorkRequired(DomainError):
    """A join without the proof of work the waiting room asks for."""

    code = "proof_of_work_required"


class ProofOfWorkInvalid(DomainError):
    """A join whose proof of work is forged, another visitor's, run out, or short of the bits asked."""

    code = "proof_of_work_invalid"
