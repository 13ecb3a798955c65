"""The FastAPI dependencies of the gateway's routes: the gateway itself and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import orjson
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from boxoffice.domain.accounts import AccessToken, Principal
from boxoffice.entrypoints.gateway.responses import ApiError
from boxoffice.entrypoints.gateway.state import Gateway


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

bearer = HTTPBearer(auto_error=False, description="An access token from POST /auth/token (when BOXOFFICE_AUTH=on)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def optional_caller(gw: GatewayDep, credentials: Credentials) -> Principal | None:
    """The caller when accounts are on (401 without a valid token); None in the open demo mode."""
    if not gw.settings.auth_on:
        return None
    return (await gw.access.token(credentials)).principal


async def limited_caller(request: Request, gw: GatewayDep, credentials: Credentials) -> Principal | None:
    """For booking and payment calls: the address's rate limit, then the caller, then the account's limit."""
    access = gw.access
    access.limit_ip(request)
    principal = await optional_caller(gw, credentials)
    if principal is not None:
        access.limit_user(principal.user_id)
    return principal


async def buying_caller(request: Request, gw: GatewayDep, credentials: Credentials) -> Principal | None:
    """For the calls that take seats or a place in line: a limited caller whose address is confirmed when
    BOXOFFICE_EMAIL_VERIFICATION is on (403 otherwise)."""
    principal = await limited_caller(request, gw, credentials)
    if principal is not None:
        gw.access.require_confirmed_email(principal)
    return principal


async def joining_caller(gw: GatewayDep, credentials: Credentials) -> Principal | None:
    """Joining a waiting room: the caller, with a confirmed address when verification is on."""
    principal = await optional_caller(gw, credentials)
    if principal is not None:
        gw.access.require_confirmed_email(principal)
    return principal


async def signed_in(gw: GatewayDep, credentials: Credentials) -> Principal:
    """A valid token, whether or not accounts are required for booking."""
    return (await gw.access.token(credentials)).principal


async def signed_in_token(gw: GatewayDep, credentials: Credentials) -> AccessToken:
    """The valid token itself (signing out revokes it)."""
    return await gw.access.token(credentials)


def with_role(may: Callable[[Principal], bool],
              refusal: str) -> Callable[[Gateway, HTTPAuthorizationCredentials | None], Awaitable[Principal | None]]:
    """For the organisers' calls: with accounts on, a caller whom `may` lets make the call (401 without a valid
    token, 403 `refusal` otherwise); None in the open demo. Being a dependency, it refuses before the body is
    validated (FastAPI raises a dependency's error before the body's): a caller who may not make the call is
    refused whatever the body, and learns nothing of what the call takes."""

    async def caller(gw: GatewayDep, credentials: Credentials) -> Principal | None:
        principal = await optional_caller(gw, credentials)
        if principal is not None and not may(principal):
            raise ApiError(403, "forbidden", refusal)
        return principal

    return caller


async def admin(gw: GatewayDep, credentials: Credentials) -> Principal:
    """A signed-in admin (401 without a valid token, 403 for anyone else), before the body is validated."""
    principal = await signed_in(gw, credentials)
    if not principal.may_grant_roles:
        raise ApiError(403, "forbidden", "Only an admin can change roles")
    return principal


creates_events = with_role(lambda p: p.may_create_events, "Creating events needs the organiser role")
changes_on_sales = with_role(lambda p: p.may_create_events, "Changing an on-sale needs the organiser role")
cancels_events = with_role(lambda p: p.may_create_events, "Cancelling events needs the organiser role")
checks_tickets = with_role(lambda p: p.may_check_tickets, "Checking tickets needs the organiser role")

Caller = Annotated[Principal | None, Depends(optional_caller)]
EventCreator = Annotated[Principal | None, Depends(creates_events)]
OnSaleChanger = Annotated[Principal | None, Depends(changes_on_sales)]
EventCanceller = Annotated[Principal | None, Depends(cancels_events)]
DoorStaff = Annotated[Principal | None, Depends(checks_tickets)]
Admin = Annotated[Principal, Depends(admin)]
LimitedCaller = Annotated[Principal | None, Depends(limited_caller)]
BuyingCaller = Annotated[Principal | None, Depends(buying_caller)]
JoiningCaller = Annotated[Principal | None, Depends(joining_caller)]
SignedIn = Annotated[Principal, Depends(signed_in)]
SignedInToken = Annotated[AccessToken, Depends(signed_in_token)]


async def no_body(request: Request) -> None:
    """For the calls that take no body: none, or an empty JSON object, is taken; anything else is refused 422
    before the call acts, as any malformed body is, instead of being ignored."""
    body = (await request.body()).strip()
    if not body:
        return
    try:
        if orjson.loads(body) == {}:
            return
    except orjson.JSONDecodeError:
        pass
    raise ApiError(422, "validation_error", "This call takes no body: send none, or {}")


NO_BODY = [Depends(no_body)]
