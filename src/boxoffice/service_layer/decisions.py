"""What the booking service's handlers decide with, and what they report once it has committed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from boxoffice.domain import errors, events
from boxoffice.service_layer.payment_ports import CardTokeniser
from boxoffice.service_layer.seatings import Seatings

Decision = tuple[events.Event, str | None]  # what was decided, and the request it answers


@dataclass(frozen=True)
class BookingRules:
    """The booking service's settings that decisions depend on."""

    hold: timedelta
    max_seats_per_booking: int
    seats_per_user: int | None = None  # None: no cap per buyer and event


class AdmissionCheck(Protocol):
    """The waiting room's access tokens (CONTRACT §8.1), checked again before a hold."""

    def refusal(self, token: str | None, event_id: str, buyer: str, now: datetime) -> str | None:
        """Why `buyer` may not hold seats of `event_id` with `token` at `now` (a refusal code), or None."""
        ...


@dataclass(frozen=True)
class Decide:
    """What one run of messages is decided with: the rules, the moment, and where booking ids come from."""

    rules: BookingRules
    now: datetime
    new_booking_id: Callable[[], str]
    seatings: Seatings = field(default_factory=Seatings)  # the service's, kept between runs
    admissions: AdmissionCheck | None = None  # None: no event is behind a waiting room
    # Tokenises the number of a confirmation sent before cards were tokenised; None: passed on as it came.
    cards: CardTokeniser | None = None


def admission_refusal(decide: Decide, access: object, event_id: str, user_id: str) -> tuple[str, str] | None:
    """(code, sentence) when `access` is not the buyer's live admission to the event's waiting room, else None.
    For an event whose waiting room is active, and a service that checks admissions."""
    assert decide.admissions is not None
    code = decide.admissions.refusal(access if isinstance(access, str) else None, event_id, user_id, decide.now)
    if code is None:
        return None
    if code == errors.AdmissionExpired.code:
        return code, "Your admission from the waiting room has expired"
    return code, f"Event {event_id} is selling through its waiting room: no admission of yours was sent"
