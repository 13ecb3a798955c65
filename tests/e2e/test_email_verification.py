"""Accounts with confirmed addresses (BOXOFFICE_AUTH=on, BOXOFFICE_EMAIL_VERIFICATION=on): an account holds seats
only once the link mailed to it was opened, a link is not forged or moved, and one mailbox confirms one account,
so the per-buyer seat cap counts per confirmed mailbox."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.api_client import seat_statuses, wait_for
from tests.e2e.test_accounts import login
from tests.platforms import ADMIN, RunningPlatform, start_platform

EVENT = "taylor_swift_concert"
PASSWORD = "a long enough password"
PUBLIC_URL = "https://tickets.example.com"


@pytest.fixture(scope="module")
def verifying_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("verify"), BOXOFFICE_AUTH="on",
                              BOXOFFICE_EMAIL_VERIFICATION="on", BOXOFFICE_PUBLIC_URL=PUBLIC_URL,
                              BOXOFFICE_ADMIN_EMAIL=ADMIN[0], BOXOFFICE_ADMIN_PASSWORD=ADMIN[1],
                              BOXOFFICE_MAX_SEATS_PER_USER="2")


@pytest.fixture
async def client(verifying_platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=verifying_platform.base_url, timeout=30) as c:
        yield c


async def links_sent_to(platform: RunningPlatform, email: str, count: int = 1) -> list[str]:
    """The confirmation links in the mailbox for this address, once `count` of them have arrived."""
    url = f"{platform.runtime['mailbox_url']}/messages"
    async with httpx.AsyncClient(timeout=10) as mailbox:
        async def found() -> list[str] | None:
            mails = [m for m in (await mailbox.get(url, params={"to": email})).json()
                     if m["subject"] == "Confirm your email address for boxoffice"]
            links = [re.search(r"https?://\S+#verify=\S+", m["text"] or "") for m in mails]
            return [m.group(0) for m in links if m] if len(mails) >= count else None

        links = await wait_for(found, timeout=20)
    assert links and len(links) >= count, f"no confirmation email reached {email}"
    return links


def token_of(link: str) -> str:
    return urlsplit(link).fragment.removeprefix("verify=")


async def register(client: httpx.AsyncClient, email: str, **headers: str) -> tuple[str, dict[str, str]]:
    registered = await client.post("/auth/register", json={"email": email, "password": PASSWORD}, headers=headers)
    assert registered.status_code == 201, registered.text
    assert registered.json()["emailVerified"] is False
    return registered.json()["userId"], await login(client, email, PASSWORD)


async def test_an_account_holds_seats_only_after_opening_the_link_mailed_to_it(
        client: httpx.AsyncClient, verifying_platform: RunningPlatform) -> None:
    assert (await client.get("/auth/config")).json()["emailVerificationRequired"] is True
    email = f"fan-{uuid.uuid4().hex[:10]}@example.com"
    user_id, auth = await register(client, email, Host="attacker.example", **{"X-Forwarded-Host": "attacker.example"})

    early = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["T1"]}, headers=auth)
    assert early.status_code == 403 and early.json()["code"] == "email_not_verified", early.text
    waitlist = await client.post(f"/events/{EVENT}/waitlist", json={"quantity": 1}, headers=auth)
    assert waitlist.status_code == 403 and waitlist.json()["code"] == "email_not_verified", waitlist.text
    assert (await seat_statuses(client, EVENT))["T1"] == "AVAILABLE"

    (link,) = await links_sent_to(verifying_platform, email)
    # The link points at the configured public address, not at the Host the registration came with.
    assert link.startswith(f"{PUBLIC_URL}/#verify="), link
    confirmed = await client.post("/auth/verify", json={"token": token_of(link)})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["userId"], confirmed.json()["emailVerified"]) == (user_id, True)
    again = await client.post("/auth/verify", json={"token": token_of(link)})
    assert again.status_code == 200 and again.json()["emailVerified"] is True

    # The same token works at once: the confirmation is read on every call, not carried in the token.
    me = await client.get("/auth/me", headers=auth)
    assert me.json()["emailVerified"] is True
    held = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["T1"]}, headers=auth)
    assert held.status_code == 201, held.text
    assert (await seat_statuses(client, EVENT))["T1"] == "RESERVED"
    resend = await client.post("/auth/verification", headers=auth)
    assert resend.status_code == 409 and resend.json()["code"] == "already_verified"


async def test_a_forged_altered_or_misused_token_confirms_nothing(client: httpx.AsyncClient) -> None:
    email = f"forger-{uuid.uuid4().hex[:10]}@example.com"
    _, auth = await register(client, email)
    access_token = auth["Authorization"].removeprefix("Bearer ")
    for token, code in (("not-a-token", "invalid_verification"), (access_token, "invalid_verification")):
        refused = await client.post("/auth/verify", json={"token": token})
        assert refused.status_code == 400 and refused.json()["code"] == code, refused.text
    for body in ({}, {"token": ""}, {"token": 5}, {"token": "x" * 5000}):
        assert (await client.post("/auth/verify", json=body)).status_code == 422, body
    assert (await client.get("/auth/me", headers=auth)).json()["emailVerified"] is False


async def test_a_new_link_on_request_and_one_mailbox_confirms_one_account(
        client: httpx.AsyncClient, verifying_platform: RunningPlatform) -> None:
    name = f"twin-{uuid.uuid4().hex[:10]}"
    first_email, second_email = f"{name}@example.com", f"{name}+again@Example.com"
    first_id, first = await register(client, first_email)
    second_id, second = await register(client, second_email)

    sent = await client.post("/auth/verification", headers=first)
    assert sent.status_code == 202 and sent.json()["email"] == first_email, sent.text
    links = await links_sent_to(verifying_platform, first_email, count=2)
    assert len({token_of(link) for link in links}) == 2
    assert (await client.post("/auth/verify", json={"token": token_of(links[-1])})).status_code == 200

    # A second account at the same mailbox (a +tag, other capitals) cannot be confirmed: throwaway
    # addresses of one mailbox do not multiply the seat cap.
    (second_link,) = await links_sent_to(verifying_platform, second_email.lower())
    taken = await client.post("/auth/verify", json={"token": token_of(second_link)})
    assert taken.status_code == 409 and taken.json()["code"] == "mailbox_taken", taken.text
    refused = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["T5"]}, headers=second)
    assert refused.status_code == 403 and refused.json()["code"] == "email_not_verified"
    assert (await client.get("/auth/me", headers=second)).json()["emailVerified"] is False

    # The confirmed account has the cap (2 here), and no more.
    both = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["T6", "T7"]}, headers=first)
    assert both.status_code == 201, both.text
    over = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["T8"]}, headers=first)
    assert over.status_code == 409 and over.json()["code"] == "seat_limit_reached", over.text
    seats = await seat_statuses(client, EVENT)
    assert [seats[s] for s in ("T5", "T6", "T7", "T8")] == ["AVAILABLE", "RESERVED", "RESERVED", "AVAILABLE"]
    assert first_id != second_id


async def test_the_configured_admin_needs_no_link(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    assert (await client.get("/auth/me", headers=admin)).json()["emailVerified"] is True
