"""What the booking service's handlers decide with, and what they report once it has committed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from boxoffice.domain import events
from boxoffice.service_layer.seatings import Seatings

Decision = tuple[events.Event, str | None]  # what was decided, and the request it answers


@dataclass(frozen=True)
class BookingRules:
    """The booking service's settings that decisions depend on."""

    hold: timedelta
    max_seats_per_booking: int
    seats_per_user: int | None = None  # None: no cap per buyer and event


@dataclass(frozen=True)
class Decide:
    """What one run of messages is decided with: the rules, the moment, and where booking ids come from."""

    rules: BookingRules
    now: datetime
    new_booking_id: Callable[[], str]
    seatings: Seatings = field(default_factory=Seatings)  # the service's, kept between runs
