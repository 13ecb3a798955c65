"""The demo events that `boxoffice up` creates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from boxoffice.domain.catalog import EventSpec, PriceCategory, SeatRow, row_labels
from boxoffice.domain.waiting_room import OnSale

DEMO_EVENT_ID = "taylor_swift_concert"
# The on-sale demo (CONTRACT §8.1): a waiting room that opens a minute after `up` and admits 600 a minute.
ONSALE_EVENT_ID = "eras_tour_onsale"
ONSALE_OPENS_AFTER = timedelta(minutes=1)
# The demo's hold that runs out (CONTRACT §6.3, "shortened for the demo"): an event whose holds last 20 s, so that
# `boxoffice demo` shows a release by timeout while the platform keeps BOXOFFICE_HOLD_SECONDS for the others.
QUICK_HOLD_EVENT_ID = "open_mic_night"
QUICK_HOLD_SECONDS = 20


def demo_events(now: datetime | None = None) -> list[EventSpec]:
    opens_at = (now or datetime.now(UTC)) + ONSALE_OPENS_AFTER
    labels = row_labels(20)
    concert_rows = tuple(
        SeatRow(label, section, category, 30)
        for i, label in enumerate(labels)
        for section, category in [("Floor", "floor") if i < 5 else ("Lower Bowl", "lower") if i < 12
                                  else ("Upper Bowl", "upper")]
    )
    return [
        EventSpec(
            DEMO_EVENT_ID, "Taylor Swift | The Eras Tour", "Wembley Stadium", "London",
            datetime(2027, 6, 21, 19, 0, tzinfo=UTC), "USD",
            (PriceCategory("floor", "Floor", Decimal("150.00")),
             PriceCategory("lower", "Lower Bowl", Decimal("95.00")),
             PriceCategory("upper", "Upper Bowl", Decimal("55.00"))),
            concert_rows,
        ),
        EventSpec(
            ONSALE_EVENT_ID, "Taylor Swift | The Eras Tour: on-sale day", "Wembley Stadium", "London",
            datetime(2027, 6, 22, 19, 0, tzinfo=UTC), "USD",
            (PriceCategory("floor", "Floor", Decimal("150.00")),
             PriceCategory("lower", "Lower Bowl", Decimal("95.00")),
             PriceCategory("upper", "Upper Bowl", Decimal("55.00"))),
            concert_rows,
            on_sale=OnSale(opens_at, waiting_room=True, admit_per_minute=600, admission_minutes=10),
        ),
        EventSpec(
            "coldplay_world_tour", "Coldplay | Music of the Spheres", "Madison Square Garden", "New York",
            datetime(2027, 7, 4, 20, 0, tzinfo=UTC), "USD",
            (PriceCategory("standard", "Standard", Decimal("89.00")),
             PriceCategory("premium", "Premium", Decimal("199.00"))),
            tuple(SeatRow(label, "Main", "premium" if i < 4 else "standard", 25)
                  for i, label in enumerate(row_labels(16))),
        ),
        EventSpec(
            "jazz_night", "Late Night Jazz", "Blue Note", "New York",
            datetime(2027, 5, 2, 21, 30, tzinfo=UTC), "USD",
            (PriceCategory("table", "Table", Decimal("45.00")), PriceCategory("bar", "Bar", Decimal("25.00"))),
            tuple(SeatRow(label, "Room", "table" if i < 6 else "bar", 12) for i, label in enumerate(row_labels(8))),
        ),
        EventSpec(
            QUICK_HOLD_EVENT_ID, f"Open Mic Night (holds last {QUICK_HOLD_SECONDS} s)", "The Back Room", "Bristol",
            datetime(2027, 5, 9, 20, 0, tzinfo=UTC), "USD",
            (PriceCategory("seat", "Seat", Decimal("10.00")),),
            tuple(SeatRow(label, "Room", "seat", 10) for label in row_labels(4)),
            hold_seconds=QUICK_HOLD_SECONDS,
        ),
    ]
