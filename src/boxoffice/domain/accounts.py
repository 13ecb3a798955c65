"""Who may do what: roles and the ownership rules of bookings and events."""

from __future__ import annotations

import contextlib
import unicodedata
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
    email_verified: bool = False

    def may_act_for(self, user_id: str) -> bool:
        """Reading, paying for or cancelling a booking: its buyer, or an admin."""
        return self.user_id == user_id or self.role is Role.ADMIN

    @property
    def may_create_events(self) -> bool:
        return self.role in (Role.ORGANISER, Role.ADMIN)

    def may_manage_event(self, organiser_id: str | None) -> bool:
        """Changing an event's on-sale, calling it off, checking its tickets at the door: the organiser who created
        it, or an admin. An event without a recorded organiser (created without an account) is every organiser's,
        as it was before events recorded theirs."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.ORGANISER and organiser_id in (None, self.user_id)

    @property
    def may_check_tickets(self) -> bool:
        """Door staff: the organisers."""
        return self.role in (Role.ORGANISER, Role.ADMIN)

    @property
    def may_grant_roles(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class AccessToken:
    """A genuine, unexpired access token: whom it speaks for, the account's token version it was issued under,
    its own id (for signing out) and when it expires (epoch seconds)."""

    principal: Principal
    version: int
    token_id: str
    expires_at: float

    def revoked(self, account_version: int | None, signed_out: bool) -> bool:
        """Revoked: the account is gone, its tokens were revoked since (a role or password change, a sign-out
        everywhere), or this one token was signed out."""
        return account_version is None or account_version != self.version or signed_out


MIN_PASSWORD_LENGTH = 8
# Control, format (zero-width) and surrogate characters: a password of them looks empty, and some keyboards and
# password managers cannot type them again.
_UNSEEN = frozenset({"Cc", "Cf", "Cs"})
MAX_PASSWORD_LENGTH = 128


def password_problem(password: str, email: str = "", common: frozenset[str] = frozenset()) -> str | None:
    """Why a new password is refused, or None. `common` holds the most used passwords, lower-cased."""
    if password.strip() == "":
        return "password: must not be blank"
    if len(password.strip()) < MIN_PASSWORD_LENGTH:  # spaces around a short one add nothing to guess
        return f"password: at least {MIN_PASSWORD_LENGTH} characters besides spaces at either end"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password: at most {MAX_PASSWORD_LENGTH} characters"
    if any(unicodedata.category(c) in _UNSEEN for c in password):
        return "password: must not contain control or invisible characters"
    if password.isdigit():
        return "password: must not be only digits"
    folded = password.strip().lower()
    if folded in common:
        return "password: too common (it is on a list of the 20,000 most used passwords); choose another"
    if email and folded in (email.strip().lower(), email.strip().lower().partition("@")[0]):
        return "password: must not be the email address"
    return None


def mailbox(email: str) -> str:
    """The mailbox an address delivers to, as far as can be told from the address: lower-cased, without a
    `+tag` after the local part (fan+1@example.com and Fan@example.com reach one person), its domain in the ASCII
    form DNS looks up (exämple.com is xn--exmple-cua.com; full-width letters are the plain ones)."""
    local, _, domain = unicodedata.normalize("NFKC", email.strip()).lower().rpartition("@")
    with contextlib.suppress(UnicodeError):  # otherwise not a host name DNS could look up: kept as written
        domain = domain.encode("idna").decode("ascii")
    return f"{local.partition('+')[0]}@{domain}"
