"""Who may do what: roles and the ownership rules of bookings and events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    BUYER = "buyer"
    ORGANISER = "organiser"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The account a request acts for, as its access token proves."""

    user_id: str
    email: str
    role: Role

    def may_act_for(self, user_id: str) -> bool:
        """Reading, paying for or cancelling a booking: its buyer, or an admin."""
        return self.user_id == user_id or self.role is Role.ADMIN

    @property
    def may_create_events(self) -> bool:
        return self.role in (Role.ORGANISER, Role.ADMIN)

    @property
    def may_check_tickets(self) -> bool:
        """Door staff: the organisers."""
        return self.role in (Role.ORGANISER, Role.ADMIN)

    @property
    def may_grant_roles(self) -> bool:
        return self.role is Role.ADMIN


MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password: at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password: at most {MAX_PASSWORD_LENGTH} characters"
    if password.strip() == "":
        return "password: must not be blank"
    return None
