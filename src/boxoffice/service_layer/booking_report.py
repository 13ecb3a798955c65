"""Counts and logs what the booking service decided, once it has committed: a batch rolled back and retried
counts once. Hold decisions are DEBUG lines, so the hot path writes none; a booking that changed is one line."""

from __future__ import annotations

import logging

from boxoffice import metrics
from boxoffice.domain import events
from boxoffice.service_layer.decisions import Decision

log = logging.getLogger("boxoffice.service_layer.booking")

_RELEASED = {
    "cancelled": (metrics.BOOKINGS_CANCELLED, "booking %s cancelled; its seats are available"),
    "payment_failed": (None, "booking %s: payment declined; its seats are available"),
}


def report(decisions: list[Decision]) -> None:
    debug = log.isEnabledFor(logging.DEBUG)
    expired: list[str] = []
    for event, request_id in decisions:
        extra = {"requestId": request_id} if request_id else None
        if isinstance(event, events.SeatsReserved):
            metrics.HOLDS_GRANTED.inc()
            if debug:
                log.debug("hold granted: booking %s, seats %s", event.booking_id, ",".join(event.seat_ids),
                          extra=extra)
        elif isinstance(event, events.ReservationFailed):
            metrics.HOLDS_REFUSED.inc(event.code)
            if debug:
                log.debug("hold refused (%s): %s", event.code, event.reason, extra=extra)
        elif isinstance(event, events.CommandRejected):
            metrics.BOOKING_COMMANDS_REJECTED.inc(event.command, event.code)
            log.info("%s of booking %s refused: %s", event.command, event.booking_id, event.code, extra=extra)
        elif isinstance(event, events.BookingConfirmed):
            metrics.BOOKINGS_CONFIRMED.inc()
            log.info("booking %s confirmed; its seats are booked", event.booking_id, extra=extra)
        elif isinstance(event, events.SeatsReleased) and event.reason == "timeout":
            expired.append(event.booking_id)
        elif isinstance(event, events.SeatsReleased):
            counter, line = _RELEASED.get(event.reason, (None, "booking %s released; its seats are available"))
            if counter is not None:
                counter.inc()
            log.info(line, event.booking_id, extra=extra)
        elif debug and isinstance(event, events.PaymentRequested):
            log.debug("booking %s is paying (payment %s)", event.booking_id, event.payment_id, extra=extra)
    if expired:
        metrics.HOLDS_EXPIRED.inc(by=len(expired))
        log.info("%d holds expired; their seats are available again", len(expired))
        if debug:
            log.debug("expired bookings: %s", ", ".join(expired))
