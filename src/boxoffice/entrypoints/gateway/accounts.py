"""Accounts: register, confirm the email address, get an access token (OAuth2 password flow), who am I, sign
out, change the password, and granting roles."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from boxoffice.adapters.accounts import (
    Account,
    EmailTaken,
    InvalidToken,
    MailboxTaken,
    hash_password,
    verify_password,
)
from boxoffice.adapters.common_passwords import common_passwords
from boxoffice.adapters.kafka import BrokerUnavailable
from boxoffice.domain.accounts import MAX_PASSWORD_LENGTH, Role, password_problem
from boxoffice.domain.text import has_control
from boxoffice.entrypoints.gateway.access import BODY_TOO_LARGE
from boxoffice.entrypoints.gateway.deps import NO_BODY, Admin, GatewayDep, SignedIn, SignedInToken
from boxoffice.entrypoints.gateway.responses import JSON, ApiError
from boxoffice.entrypoints.gateway.schemas import USER_ID, Email, ErrorBody, Strict
from boxoffice.entrypoints.gateway.state import Gateway
from boxoffice.messages import ACCOUNT_VERIFICATION_REQUESTED, Message, iso
from boxoffice.service_layer.notifications import confirmation_link_prefix

log = logging.getLogger(__name__)

router = APIRouter(tags=["accounts"], responses=BODY_TOO_LARGE)


class Registration(Strict):
    email: Email = Field(examples=["fan@example.com"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH, examples=["correct horse battery"])


class AccountBody(Strict):
    success: Literal[True] = True
    userId: str
    email: str
    role: RoleName
    emailVerified: bool


class TokenBody(Strict):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    userId: str
    role: RoleName


RoleName = Literal["buyer", "organiser", "admin"]


class RoleChange(Strict):
    role: RoleName


class PasswordChange(Strict):
    currentPassword: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    newPassword: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH, examples=["a new long passphrase"])


class EmailCheck(Strict):
    token: str = Field(min_length=1, max_length=2048, description="The token of the link sent to the address")


class VerificationSent(Strict):
    success: Literal[True] = True
    email: str
    expiresAt: str


class SignOutScope(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown query parameter is a mistake worth a 422
    everywhere: bool = Field(False, description="Revoke every token of the account, not only this one")


class SignedOut(Strict):
    success: Literal[True] = True
    message: str


def _refuse_weak(password: str, email: str) -> None:
    if problem := password_problem(password, email, common_passwords()):
        raise ApiError(422, "validation_error", problem)


def _token_answer(gw: Gateway, account: Account) -> Response:
    tokens = gw.access.tokens
    return JSON({"access_token": tokens.issue(account.principal, account.token_version), "token_type": "bearer",
                 "expires_in": tokens.lifetime, "userId": account.user_id, "role": account.role.value},
                headers={"Cache-Control": "no-store"})


def _account(user_id: str, email: str, role: Role, email_verified: bool, status: int = 200) -> Response:
    return JSON({"success": True, "userId": user_id, "email": email, "role": role.value,
                 "emailVerified": email_verified}, status_code=status)


class AccessRules(Strict):
    accountsRequired: bool
    emailVerificationRequired: bool
    rateLimits: bool
    seatsPerBuyerPerEvent: int | None


@router.get("/auth/config", response_model=AccessRules)
async def access_rules(gw: GatewayDep) -> Response:
    """Whether booking needs an account here (BOXOFFICE_AUTH) and a confirmed email address
    (BOXOFFICE_EMAIL_VERIFICATION), and the abuse limits in force."""
    s = gw.settings
    return JSON({"accountsRequired": s.auth_on, "emailVerificationRequired": s.verification_on,
                 "rateLimits": s.rate_limits_on, "seatsPerBuyerPerEvent": s.seats_per_user_limit})


async def send_email_check(gw: Gateway, user_id: str, email: str) -> str:
    """Asks the notification service to send the address a link that confirms it; when the link runs out."""
    token, expires = gw.access.tokens.issue_email_check(user_id, email)
    expires_at = iso(datetime.fromtimestamp(expires, UTC))
    # The link's host is the configured public address, never the request's Host header (which the caller
    # chooses: a link to their own site would hand them the token).
    link = confirmation_link_prefix(gw.settings.public_base_url) + token
    await gw.publisher.publish(ACCOUNT_VERIFICATION_REQUESTED, Message(
        ACCOUNT_VERIFICATION_REQUESTED, user_id,
        {"verificationId": str(uuid.uuid4()), "userId": user_id, "email": email, "link": link,
         "expiresAt": expires_at}, gw.request_ids.new()))
    return expires_at


@router.post("/auth/register", status_code=201, response_model=AccountBody,
             responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}})
async def register(body: Registration, request: Request, gw: GatewayDep) -> Response:
    """Create a buyer account. Organisers and admins are made by an admin (PUT /users/{userId}/role)."""
    access = gw.access
    access.limit_ip(request)
    _refuse_weak(body.password, body.email)
    try:
        account = await access.accounts.create(body.email, await hash_password(body.password))
    except EmailTaken:
        raise ApiError(409, "email_taken", "An account with this email already exists") from None
    if gw.settings.verification_on:
        try:
            await send_email_check(gw, account.user_id, account.email)
        except BrokerUnavailable:  # the account stands; the buyer asks for the link again once signed in
            log.warning("the confirmation link for %s could not be queued: the broker is unavailable",
                        account.user_id)
    return _account(account.user_id, account.email, account.role, account.email_verified, status=201)


@router.post("/auth/verification", dependencies=NO_BODY, status_code=202, response_model=VerificationSent,
             responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 429: {"model": ErrorBody},
                        503: {"model": ErrorBody}})
async def resend_email_check(caller: SignedIn, gw: GatewayDep) -> Response:
    """Send the caller's address a new link that confirms it (BOXOFFICE_EMAIL_VERIFICATION=on). Links already
    sent keep working until they run out (24 h)."""
    if caller.email_verified:
        raise ApiError(409, "already_verified", f"{caller.email} is confirmed already")
    gw.access.limit_email_checks(caller.email)
    try:
        expires_at = await send_email_check(gw, caller.user_id, caller.email)
    except BrokerUnavailable as exc:
        raise ApiError(503, "queue_unavailable", "The email cannot be sent right now; please try again") from exc
    return JSON({"success": True, "email": caller.email, "expiresAt": expires_at}, status_code=202)


@router.post("/auth/verify", response_model=AccountBody,
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
                        422: {"model": ErrorBody}, 429: {"model": ErrorBody}})
async def confirm_email(body: EmailCheck, request: Request, gw: GatewayDep) -> Response:
    """Confirm an address with the token of the link sent to it. Needs no sign-in: the token is the proof.
    Confirming again answers the same."""
    access = gw.access
    access.limit_ip(request)
    try:
        user_id, email = access.tokens.read_email_check(body.token)
    except InvalidToken as exc:
        raise ApiError(400, exc.code, exc.message) from None
    try:
        account = await access.accounts.confirm_email(user_id, email)
    except MailboxTaken:
        raise ApiError(409, "mailbox_taken", "Another account has confirmed an address of this mailbox "
                       "already; one mailbox confirms one account") from None
    if account is None:
        raise ApiError(404, "user_not_found", "The account of this link no longer exists")
    return _account(account.user_id, account.email, account.role, account.email_verified)


@router.post("/auth/token", response_model=TokenBody,
             responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}})
async def token(
    request: Request, gw: GatewayDep,
    username: Annotated[str, Form(max_length=320, description="The account's email")],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> Response:
    """OAuth2 password flow: form fields username (the email) and password → a bearer access token."""
    access = gw.access
    access.limit_ip(request)
    access.limit_login(username, request)
    # An email with control characters cannot belong to an account (and PostgreSQL text cannot hold NUL).
    account = None if has_control(username) else await access.accounts.by_email(username)
    if not await verify_password(account.password_hash if account else None, password) or account is None:
        raise ApiError(401, "invalid_credentials", "Wrong email or password", headers={"WWW-Authenticate": "Bearer"})
    return _token_answer(gw, account)


@router.get("/auth/me", response_model=AccountBody, responses={401: {"model": ErrorBody}})
async def me(caller: SignedIn) -> Response:
    """The account the bearer token speaks for."""
    return _account(caller.user_id, caller.email, caller.role, caller.email_verified)


@router.post("/auth/logout", dependencies=NO_BODY, response_model=SignedOut, responses={401: {"model": ErrorBody}})
async def logout(token: SignedInToken, gw: GatewayDep, scope: Annotated[SignOutScope, Query()]) -> Response:
    """Sign out: this access token stops working at once (with everywhere=true, all of the account's tokens)."""
    accounts = gw.access.accounts
    everywhere = scope.everywhere
    if everywhere:
        await accounts.revoke_all_tokens(token.principal.user_id)
    else:
        await accounts.revoke_token(token)
    return JSON({"success": True, "message": "Signed out everywhere: every token of this account was revoked"
                 if everywhere else "Signed out: this token no longer works"}, headers={"Cache-Control": "no-store"})


@router.put("/auth/password", response_model=TokenBody,
            responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody},
                       429: {"model": ErrorBody}})
async def change_password(request: Request, body: PasswordChange, caller: SignedIn, gw: GatewayDep) -> Response:
    """Change the caller's password. Every token issued before is revoked; the answer carries a new one."""
    access = gw.access
    access.limit_login(caller.email, request)  # the current password is guessed no faster here than at POST /auth/token
    account = await access.accounts.by_user_id(caller.user_id)
    if account is None or not await verify_password(account.password_hash, body.currentPassword):
        raise ApiError(403, "wrong_password", "The current password is not right")
    _refuse_weak(body.newPassword, account.email)
    changed = await access.accounts.set_password(account.user_id, await hash_password(body.newPassword))
    if changed is None:
        raise ApiError(401, "token_revoked", "This account no longer exists", headers={"WWW-Authenticate": "Bearer"})
    return _token_answer(gw, changed)


@router.put("/users/{user_id}/role", response_model=AccountBody,
            responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody},
                       422: {"model": ErrorBody}})
async def set_role(user_id: Annotated[str, Path(max_length=128, pattern=USER_ID)], body: RoleChange,
                   caller: Admin, gw: GatewayDep) -> Response:
    """Admins only: make an account a buyer, an organiser or an admin. A change revokes the account's tokens: the
    new role counts from its next sign-in."""
    accounts = gw.access.accounts
    if not await accounts.set_role(user_id, Role(body.role)):
        raise ApiError(404, "user_not_found", f"User {user_id} does not exist")
    account = await accounts.by_user_id(user_id)
    assert account is not None
    return _account(account.user_id, account.email, account.role, account.email_verified)
