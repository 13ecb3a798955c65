"""Accounts on (BOXOFFICE_AUTH=on): tokens, ownership, roles, rate limits and the per-buyer seat cap."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.e2e.api_client import seat_statuses, wait_for
from tests.platforms import ADMIN, RunningPlatform

EVENT = "taylor_swift_concert"


@pytest.fixture
async def client(auth_platform: RunningPlatform):
    async with httpx.AsyncClient(base_url=auth_platform.base_url, timeout=30) as c:
        yield c


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    answer = await client.post("/auth/token", data={"username": email, "password": password})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


async def new_buyer(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    email, password = f"fan-{uuid.uuid4().hex[:10]}@example.com", "a long enough password"
    registered = await client.post("/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    assert registered.json()["role"] == "buyer"
    return registered.json()["userId"], await login(client, email, password)


async def test_register_and_log_in(client: httpx.AsyncClient) -> None:
    user_id, auth = await new_buyer(client)
    me = await client.get("/auth/me", headers=auth)
    assert me.status_code == 200 and me.json()["userId"] == user_id

    email = me.json()["email"]
    again = await client.post("/auth/register", json={"email": email.upper(), "password": "another password"})
    assert again.status_code == 409 and again.json()["code"] == "email_taken"
    wrong = await client.post("/auth/token", data={"username": email, "password": "not the password"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    unknown = await client.post("/auth/token", data={"username": "nobody@example.com", "password": "whatever1"})
    assert unknown.status_code == 401
    short = await client.post("/auth/register", json={"email": "short@example.com", "password": "short"})
    assert short.status_code == 422 and short.json()["code"] == "validation_error"
    nul = await client.post("/auth/register", json={"email": "n\u0000l@example.com", "password": "long enough"})
    assert nul.status_code == 422
    nul_login = await client.post("/auth/token", data={"username": "n\u0000l@example.com", "password": "whatever1"})
    assert nul_login.status_code == 401 and nul_login.json()["code"] == "invalid_credentials"


async def test_booking_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    body = {"eventId": EVENT, "seatIds": ["Q1"]}
    anonymous = await client.post("/bookings", json=body)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    forged = await client.post("/bookings", json=body, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401 and forged.json()["code"] == "invalid_token"
    assert (await seat_statuses(client, EVENT))["Q1"] == "AVAILABLE"
    assert (await client.get("/users/someone/bookings")).status_code == 401


async def test_the_booking_belongs_to_the_tokens_user(client: httpx.AsyncClient) -> None:
    owner_id, owner = await new_buyer(client)
    _, stranger = await new_buyer(client)

    other_user = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["Q2"], "userId": "someone_else"},
                                   headers=owner)
    assert other_user.status_code == 403 and other_user.json()["code"] == "user_mismatch"
    held = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["Q2"]}, headers=owner)
    assert held.status_code == 201, held.text
    booking = held.json()
    assert booking["userId"] == owner_id
    path = f"/bookings/{booking['bookingId']}"

    assert (await client.get(path, headers=stranger)).status_code == 403
    assert (await client.get(f"/users/{owner_id}/bookings", headers=stranger)).status_code == 403
    assert (await client.get(f"/booking-requests/{booking['requestId']}", headers=stranger)).status_code == 403
    pay = {"paymentId": "stolen", "amount": booking["amount"]}
    assert (await client.put(f"{path}/confirm", json=pay, headers=stranger)).status_code == 403
    assert (await client.delete(path, headers=stranger)).status_code == 403
    assert (await client.post(f"{path}/cancel", headers=stranger)).status_code == 403
    # Nothing the stranger tried changed the booking.
    mine = await client.get(path, headers=owner)
    assert mine.status_code == 200 and mine.json()["status"] == "pending"
    assert (await seat_statuses(client, EVENT))["Q2"] == "RESERVED"

    listed = await client.get(f"/users/{owner_id}/bookings", headers=owner)
    assert [b["bookingId"] for b in listed.json()["bookings"]] == [booking["bookingId"]]

    # A refused request is the buyer's too: its outcome is not shown to anyone else.
    refused = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["Q2"]}, headers=stranger)
    assert refused.status_code == 409, refused.text
    refused_at = f"/booking-requests/{refused.json()['requestId']}"
    assert (await client.get(refused_at, headers=owner)).status_code == 403
    mine_refused = await client.get(refused_at, headers=stranger)
    assert mine_refused.status_code == 200 and mine_refused.json()["httpStatus"] == 409
    cancelled = await client.delete(path, headers=owner)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    admin = await login(client, *ADMIN)
    assert (await client.get(path, headers=admin)).json()["status"] == "cancelled"


async def test_only_organisers_create_events(client: httpx.AsyncClient) -> None:
    buyer_id, buyer = await new_buyer(client)
    event_id = f"gala_{uuid.uuid4().hex[:8]}"
    event = {"eventId": event_id, "name": "Gala", "venue": {"name": "Hall", "city": "Oslo"},
             "startsAt": "2027-05-01T19:00:00Z", "currency": "EUR",
             "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 20}],
             "rows": [{"row": "A", "section": "Floor", "categoryId": "std", "seats": 4}]}
    refused = await client.post("/events", json=event, headers=buyer)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert (await client.get(f"/events/{event_id}")).status_code == 404

    admin = await login(client, *ADMIN)
    promote = {"role": "organiser"}
    assert (await client.put(f"/users/{buyer_id}/role", json=promote, headers=buyer)).status_code == 403
    granted = await client.put(f"/users/{buyer_id}/role", json=promote, headers=admin)
    assert granted.status_code == 200 and granted.json()["role"] == "organiser"

    # The buyer's token was revoked with the change; a new sign-in carries the organiser role.
    email = granted.json()["email"]
    revoked = await client.get("/auth/me", headers=buyer)
    assert revoked.status_code == 401 and revoked.json()["code"] == "token_revoked", revoked.text
    organiser = await login(client, email, "a long enough password")
    created = await client.post("/events", json=event, headers=organiser)
    assert created.status_code == 201, created.text
    assert (await client.get(f"/events/{event_id}")).status_code == 200

    # Demoted, the organiser's token stops at once: it cannot create another event with the old role.
    demoted = await client.put(f"/users/{buyer_id}/role", json={"role": "buyer"}, headers=admin)
    assert demoted.status_code == 200 and demoted.json()["role"] == "buyer"
    second = event | {"eventId": f"{event_id}_2"}
    late = await client.post("/events", json=second, headers=organiser)
    assert late.status_code == 401 and late.json()["code"] == "token_revoked", late.text
    assert (await client.get(f"/events/{event_id}_2")).status_code == 404
    # Granting the role an account already has revokes nothing.
    buyer_again = await login(client, email, "a long enough password")
    assert (await client.put(f"/users/{buyer_id}/role", json={"role": "buyer"}, headers=admin)).status_code == 200
    assert (await client.get("/auth/me", headers=buyer_again)).status_code == 200


async def test_signing_out_revokes_the_token_at_once_and_everywhere_revokes_them_all(
        client: httpx.AsyncClient) -> None:
    email, password = f"leaver-{uuid.uuid4().hex[:10]}@example.com", "a long enough password"
    assert (await client.post("/auth/register", json={"email": email, "password": password})).status_code == 201
    laptop, phone = await login(client, email, password), await login(client, email, password)

    out = await client.post("/auth/logout", headers=laptop)
    assert out.status_code == 200 and out.json()["success"] is True, out.text
    for call in (client.get("/auth/me", headers=laptop),
                 client.post("/bookings", json={"eventId": EVENT, "seatIds": ["S1"]}, headers=laptop),
                 client.post("/auth/logout", headers=laptop)):
        refused = await call
        assert refused.status_code == 401 and refused.json()["code"] == "token_revoked", refused.text
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert (await seat_statuses(client, EVENT))["S1"] == "AVAILABLE"
    assert (await client.get("/auth/me", headers=phone)).status_code == 200

    everywhere = await client.post("/auth/logout", params={"everywhere": "true"}, headers=phone)
    assert everywhere.status_code == 200, everywhere.text
    assert (await client.get("/auth/me", headers=phone)).json()["code"] == "token_revoked"
    tablet = await login(client, email, password)
    assert (await client.get("/auth/me", headers=tablet)).status_code == 200
    assert (await client.post("/auth/logout")).status_code == 401


async def test_a_new_password_revokes_the_old_tokens_and_the_old_password(client: httpx.AsyncClient) -> None:
    # Five sign-in attempts a minute per account: a sign-in and three password changes fit, with one to spare.
    email, password = f"mover-{uuid.uuid4().hex[:10]}@example.com", "a long enough password"
    assert (await client.post("/auth/register", json={"email": email, "password": password})).status_code == 201
    old = await login(client, email, password)

    wrong = await client.put("/auth/password", json={"currentPassword": "not it at all",
                                                     "newPassword": "the new passphrase"}, headers=old)
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_password", wrong.text
    weak = await client.put("/auth/password", json={"currentPassword": password, "newPassword": "password123"},
                            headers=old)
    assert weak.status_code == 422 and "too common" in weak.json()["error"], weak.text
    assert (await client.get("/auth/me", headers=old)).status_code == 200  # refused changes revoke nothing

    changed = await client.put("/auth/password", json={"currentPassword": password,
                                                       "newPassword": "the new passphrase"}, headers=old)
    assert changed.status_code == 200, changed.text
    new = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert (await client.get("/auth/me", headers=new)).json()["email"] == email
    assert (await client.get("/auth/me", headers=old)).json()["code"] == "token_revoked"
    stale = await client.post("/auth/token", data={"username": email, "password": password})
    assert stale.status_code == 401 and stale.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize(("password", "why"), [
    ("password123", "too common"), ("qwertyuiop", "too common"), ("87654321", "only digits"),
    ("common-sense", "the email")])
async def test_common_passwords_digits_only_and_the_email_are_refused_at_registration(
        client: httpx.AsyncClient, password: str, why: str) -> None:
    email = f"common-sense@{uuid.uuid4().hex[:10]}.example.com"
    refused = await client.post("/auth/register", json={"email": email, "password": password})
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error", refused.text
    assert why in refused.json()["error"]
    attempt = await client.post("/auth/token", data={"username": email, "password": password})
    assert attempt.status_code == 401  # no account was made


async def test_rate_limit_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    _, buyer = await new_buyer(client)
    bogus = {"eventId": EVENT, "seatIds": ["NOPE1"]}  # 404s: counted, and nothing is held
    statuses = [(await client.post("/bookings", json=bogus, headers=buyer)).status_code for _ in range(8)]
    assert statuses[:6] == [404] * 6
    assert statuses[6:] == [429, 429]
    limited = await client.post("/bookings", json=bogus, headers=buyer)
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    # Another account is not slowed down by this one.
    _, other = await new_buyer(client)
    assert (await client.post("/bookings", json=bogus, headers=other)).status_code == 404


async def test_guessing_one_accounts_password_is_throttled(client: httpx.AsyncClient) -> None:
    email, password = f"target-{uuid.uuid4().hex[:10]}@example.com", "a long enough password"
    assert (await client.post("/auth/register", json={"email": email, "password": password})).status_code == 201
    guesses = [(await client.post("/auth/token", data={"username": email, "password": f"guess {i}"})).status_code
               for i in range(5)]
    assert guesses == [401] * 5
    # The sixth attempt waits, even with the right password and the email written otherwise.
    throttled = await client.post("/auth/token", data={"username": email.upper(), "password": password})
    assert throttled.status_code == 429 and throttled.json()["code"] == "rate_limited"
    assert int(throttled.headers["Retry-After"]) >= 1
    # Other accounts sign in as usual.
    await new_buyer(client)
    # And so does this account's owner from another address: guesses from one cannot lock the account.
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=str(client.base_url), transport=elsewhere, timeout=30) as owner:
        signed_in = await owner.post("/auth/token", data={"username": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text


async def test_a_buyer_holds_at_most_the_seat_cap_per_event(client: httpx.AsyncClient) -> None:
    _, buyer = await new_buyer(client)
    first = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["R1", "R2", "R3"]}, headers=buyer)
    assert first.status_code == 201, first.text
    over = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["R4", "R5"]}, headers=buyer)
    assert over.status_code == 409 and over.json()["code"] == "seat_limit_reached", over.text
    fits = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["R4"]}, headers=buyer)
    assert fits.status_code == 201
    seats = await seat_statuses(client, EVENT)
    assert [seats[s] for s in ("R1", "R2", "R3", "R4", "R5")] == ["RESERVED"] * 4 + ["AVAILABLE"]
    # Nor past it through the waiting list: seats offered there are held like any hold.
    waiting = await client.post(f"/events/{EVENT}/waitlist", json={"quantity": 1}, headers=buyer)
    assert waiting.status_code == 409 and waiting.json()["code"] == "seat_limit_reached", waiting.text

    # Cancelling gives the allowance back.
    assert (await client.delete(f"/bookings/{first.json()['bookingId']}", headers=buyer)).status_code == 200
    again = await client.post("/bookings", json={"eventId": EVENT, "seatIds": ["R5", "R6"]}, headers=buyer)
    assert again.status_code == 201, again.text


async def test_an_organiser_manages_only_the_events_they_created(
        client: httpx.AsyncClient, auth_platform: RunningPlatform) -> None:
    """Another organiser can neither change the on-sale of an organiser's event, nor call it off (refunding its
    buyers), nor use up its tickets at the door; the event's organiser and admins can."""
    admin = await login(client, *ADMIN)
    organisers = []
    for _ in range(2):
        user_id, _ = await new_buyer(client)
        granted = await client.put(f"/users/{user_id}/role", json={"role": "organiser"}, headers=admin)
        assert granted.status_code == 200, granted.text
        organisers.append(await login(client, granted.json()["email"], "a long enough password"))
    mine, other = organisers
    event_id = f"owned_{uuid.uuid4().hex[:8]}"
    created = await client.post("/events", headers=mine, json={
        "eventId": event_id, "name": "Owned show", "venue": {"name": "Hall"}, "startsAt": "2027-09-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Std", "price": 25.0}],
        "rows": [{"row": "A", "seats": 4, "categoryId": "std"}]})
    assert created.status_code == 201, created.text
    _, buyer = await new_buyer(client)
    held = await client.post("/bookings", json={"eventId": event_id, "seatIds": ["A1", "A2"]}, headers=buyer)
    assert held.status_code == 201, held.text
    booking_id = held.json()["bookingId"]
    paid = await client.put(f"/bookings/{booking_id}/confirm", headers=buyer, json={
        "paymentId": f"pay_{uuid.uuid4().hex[:6]}", "amount": held.json()["amount"], "card": "4242424242424242"})
    assert paid.status_code == 200, paid.text

    on_sale = {"opensAt": "2027-01-01T00:00:00Z", "waitingRoom": False}
    for refused in (await client.put(f"/events/{event_id}/onsale", json=on_sale, headers=other),
                    await client.post(f"/events/{event_id}/cancel", headers=other)):
        assert refused.status_code == 403, refused.text
        assert refused.json() == {"success": False, "code": "forbidden",
                                  "error": f"Event {event_id} belongs to another organiser"}
    event = (await client.get(f"/events/{event_id}")).json()
    assert (event["status"], event["onSale"]) == ("on_sale", None)
    assert (await client.get(f"/bookings/{booking_id}", headers=buyer)).json()["status"] == "confirmed"
    # An event that does not exist is nobody's: it is not found, whoever asks.
    assert (await client.post("/events/no_such_owned_event/cancel", headers=other)).status_code == 404

    async def confirmation() -> list[dict]:
        messages = (await client.get(f"{auth_platform.runtime['mailbox_url']}/messages")).json()
        return [m for m in messages if m["subject"].startswith("Your tickets") and booking_id in (m["text"] or "")]
    [mail] = await wait_for(confirmation)
    tickets = dict(re.findall(r"^ +(\S+): (boxoffice:ticket:2:\S+)", mail["text"], re.MULTILINE))
    scanned = await client.post("/tickets/verify", json={"ticket": tickets["A1"]}, headers=other)
    assert scanned.status_code == 403 and scanned.json()["code"] == "forbidden", scanned.text
    # The refused scan used nothing up: at the event's own door the ticket is still valid, once.
    for door, seat in ((mine, "A1"), (admin, "A2")):
        entered = await client.post("/tickets/verify", json={"ticket": tickets[seat]}, headers=door)
        assert entered.status_code == 200 and entered.json()["status"] == "valid", entered.text

    # Its own organiser gets past the ownership check: an opening later than now would close the sale its buyer
    # bought in (409 sale_open), one already come is taken.
    closing = await client.put(f"/events/{event_id}/onsale", json=on_sale, headers=mine)
    assert closing.status_code == 409 and closing.json()["code"] == "sale_open", closing.text
    changed = await client.put(f"/events/{event_id}/onsale", json={**on_sale, "opensAt": "2026-01-01T00:00:00Z"},
                               headers=mine)
    assert changed.status_code == 200 and changed.json()["opensAt"] == "2026-01-01T00:00:00.000Z", changed.text
    called_off = await client.post(f"/events/{event_id}/cancel", headers=admin)
    assert called_off.status_code == 200 and called_off.json()["status"] == "cancelled", called_off.text
