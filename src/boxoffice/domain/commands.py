"""What users ask for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReserveSeats:
    request_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]
    body_hash: str = ""
    email: str = ""
