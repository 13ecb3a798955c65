"""What users ask for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReserveSeats:
    request_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]  # empty for best available
    body_hash: str = ""
    email: str = ""
    # Best available (CONTRACT §8.2): this many seats together, of a category and section if given.
    quantity: int = 0
    category_id: str | None = None
    section: str | None = None
    # The waiting room's access token sent with the request, for an event behind one (CONTRACT §8.1).
    queue_access: str | None = None
