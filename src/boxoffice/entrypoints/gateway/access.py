"""Who is calling (bearer tokens when BOXOFFICE_AUTH=on) and how often they may call (rate limits)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials

from boxoffice import views
from boxoffice.adapters.accounts import AccountStore, InvalidToken, TokenSigner
from boxoffice.config import Settings
from boxoffice.domain.accounts import AccessToken, Principal
from boxoffice.entrypoints.gateway.responses import ApiError
from boxoffice.entrypoints.gateway.schemas import ErrorBody
from boxoffice.service_layer.rate_limits import TokenBuckets

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# Sign-in attempts at one account from all addresses together, as a multiple of those from one address.
LOGIN_EVERYWHERE = 10


@dataclass
class Access:
    settings: Settings
    accounts: AccountStore
    tokens: TokenSigner
    per_user: TokenBuckets = field(init=False)
    per_ip: TokenBuckets = field(init=False)
    per_login: TokenBuckets = field(init=False)
    per_login_everywhere: TokenBuckets = field(init=False)
    email_checks: TokenBuckets = field(init=False)
    joins_per_ip: TokenBuckets = field(init=False)
    joins_per_account: TokenBuckets = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.per_user = TokenBuckets(s.rate_limit_user_per_minute, s.rate_limit_user_burst)
        self.per_ip = TokenBuckets(s.rate_limit_ip_per_minute, s.rate_limit_ip_burst)
        self.per_login = TokenBuckets(s.login_attempts_per_minute, s.login_attempts_burst)
        self.per_login_everywhere = TokenBuckets(LOGIN_EVERYWHERE * s.login_attempts_per_minute,
                                                 LOGIN_EVERYWHERE * s.login_attempts_burst)
        self.email_checks = TokenBuckets(s.login_attempts_per_minute, s.login_attempts_burst)
        self.joins_per_ip = TokenBuckets(s.queue_joins_per_minute, s.queue_joins_burst)
        self.joins_per_account = TokenBuckets(s.queue_joins_per_minute, s.queue_joins_burst)

    async def token(self, credentials: HTTPAuthorizationCredentials | None) -> AccessToken:
        """The caller's token: genuine, unexpired, and not revoked since it was issued (read from PostgreSQL on
        every call, so that a sign-out or a role change counts at once on every gateway process)."""
        if credentials is None:
            raise ApiError(401, "not_authenticated",
                           "Log in first: send Authorization: Bearer <token> (get one at POST /auth/token)",
                           headers=_CHALLENGE)
        try:
            token = self.tokens.verify(credentials.credentials)
        except InvalidToken as exc:
            raise ApiError(401, exc.code, exc.message, headers=_CHALLENGE) from None
        standing = await self.accounts.token_standing(token)
        if token.revoked(standing.version, standing.signed_out):
            raise ApiError(401, "token_revoked", "This access token was revoked (signed out, or the account's role "
                           "or password changed); get a new one at POST /auth/token", headers=_CHALLENGE)
        return dataclasses.replace(
            token, principal=dataclasses.replace(token.principal, email_verified=standing.email_verified))

    def require_confirmed_email(self, caller: Principal) -> None:
        """With BOXOFFICE_EMAIL_VERIFICATION=on, seats go only to accounts that confirmed their address."""
        if self.settings.verification_on and not caller.email_verified:
            raise ApiError(403, "email_not_verified", "Confirm your email address first: open the link sent to "
                           f"{caller.email} (a new one: POST /auth/verification)")

    def limit_ip(self, request: Request) -> None:
        if self.settings.rate_limits_on:
            client = request.client.host if request.client else "unknown"
            _refuse_if_late(self.per_ip.take(client), "from your address")

    def limit_login(self, email: str, request: Request) -> None:
        """Attempts at one account's password: a few a minute from one address, and LOGIN_EVERYWHERE times that
        from all addresses together. Guessing from one address is slow, guessing from many no faster than the
        second limit, and failed guesses from one address do not keep the account's owner out elsewhere."""
        if self.settings.rate_limits_on:
            account = email.strip().lower()
            client = request.client.host if request.client else "unknown"
            _refuse_if_late(self.per_login.take(f"{account} {client}"), "to sign in to this account from your address")
            _refuse_if_late(self.per_login_everywhere.take(account), "to sign in to this account")

    def limit_email_checks(self, email: str) -> None:
        """A few confirmation emails a minute to one address, not a flood."""
        if self.settings.rate_limits_on:
            _refuse_if_late(self.email_checks.take(email.strip().lower()), "to send this account another email")

    def limit_join(self, request: Request, account: str | None) -> None:
        """Joining a waiting room: a few times a minute from one address, and per account (with accounts on),
        so that one buyer cannot buy many draws in the opening's shuffle."""
        if self.settings.rate_limits_on:
            client = request.client.host if request.client else "unknown"
            _refuse_if_late(self.joins_per_ip.take(client), "to join from your address")
            if account is not None:
                _refuse_if_late(self.joins_per_account.take(account), "to join for your account")

    def limit_user(self, user_id: str) -> None:
        if self.settings.rate_limits_on:
            _refuse_if_late(self.per_user.take(user_id), "for your account")


def _refuse_if_late(wait: float | None, whose: str) -> None:
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited", f"Too many requests {whose}; retry in {seconds} s",
                       headers={"Retry-After": str(seconds)}, retryAfterSeconds=seconds)


def require_owner(caller: Principal | None, owner_id: str, what: str) -> None:
    if caller is not None and not caller.may_act_for(owner_id):
        raise ApiError(403, "forbidden", f"This {what} belongs to another user")


async def require_event_organiser(pool: asyncpg.Pool, caller: Principal | None, event_id: str) -> None:
    """With accounts on, an organiser manages only the events they created (and those created without an
    account); admins manage every event."""
    if caller is not None and not caller.may_manage_event(await views.event_organiser(pool, event_id)):
        raise ApiError(403, "forbidden", f"Event {event_id} belongs to another organiser")


def _documented(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorBody} for status in statuses}


# OpenAPI `responses` of the calls that need a caller (401/403) and of those that are rate limited (429).
OWNED = _documented(401, 403)
LIMITED = _documented(401, 403, 429)
# Every call with a body may be refused for its size.
BODY_TOO_LARGE = _documented(413)


def document_bearer(app: FastAPI, settings: Settings) -> None:
    """In the open demo a bearer token is optional: the schema says so, so that clients need not send one."""
    if settings.auth_on:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if isinstance(operation, dict) and operation.get("security") and {} not in operation["security"]:
                        operation["security"].append({})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
