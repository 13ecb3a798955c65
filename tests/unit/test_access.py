"""Roles, access tokens and rate-limit buckets."""

from __future__ import annotations

import time

import jwt
import pytest

from boxoffice.adapters.accounts import InvalidToken, TokenSigner
from boxoffice.adapters.common_passwords import common_passwords
from boxoffice.domain.accounts import Principal, Role, mailbox, password_problem
from boxoffice.service_layer.rate_limits import TokenBuckets

BUYER = Principal("user_a", "a@example.com", Role.BUYER)
ORGANISER = Principal("user_o", "o@example.com", Role.ORGANISER)
ADMIN = Principal("user_x", "x@example.com", Role.ADMIN)


def test_buyers_act_for_themselves_and_admins_for_anyone():
    assert BUYER.may_act_for("user_a") and not BUYER.may_act_for("user_b")
    assert not ORGANISER.may_act_for("user_a")
    assert ADMIN.may_act_for("user_a")


def test_only_organisers_and_admins_create_events_and_only_admins_grant_roles():
    assert [p.may_create_events for p in (BUYER, ORGANISER, ADMIN)] == [False, True, True]
    assert [p.may_grant_roles for p in (BUYER, ORGANISER, ADMIN)] == [False, False, True]


def test_an_organiser_manages_the_events_they_created_and_those_without_an_organiser_and_admins_every_event():
    """On-sale changes, cancelling and checking tickets at the door of an event."""
    other = Principal("user_p", "p@example.com", Role.ORGANISER)
    assert ORGANISER.may_manage_event("user_o") and not other.may_manage_event("user_o")
    assert ORGANISER.may_manage_event(None) and other.may_manage_event(None)  # created without an account
    assert ADMIN.may_manage_event("user_o") and ADMIN.may_manage_event(None)
    assert not BUYER.may_manage_event(None) and not BUYER.may_manage_event("user_a")  # a buyer's id is no event


@pytest.mark.parametrize(("password", "problem"), [
    ("short", "at least 8"), ("x" * 129, "at most 128"), ("        ", "blank"), ("long enough", None),
    ("        a", "at least 8"), (" pass  ", "at least 8"),  # found from outside: spaces made up the length
    ("12345678", "only digits"), ("20261205", "only digits"), ("password", "too common"),
    ("Password1", "too common"), ("  QWERTYUIOP ", "too common"), ("iloveyou", "too common"),
    ("fan.of.music", "the email"), ("FAN.OF.MUSIC@example.com", "the email"), ("fan.of.music2", None),
    ("\x00" * 10, "invisible"), ("\u200b" * 10, "invisible"), ("long\tenough", "invisible"),
    ("long enough \u00e9\u00e8 \U0001f3b5", None)])
def test_password_rules(password: str, problem: str | None):
    found = password_problem(password, "fan.of.music@example.com", common_passwords())
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_the_common_password_list_is_packaged_lower_cased_and_only_holds_passwords_the_length_rule_allows():
    common = common_passwords()
    assert len(common) > 8000
    assert all(p == p.lower() and 8 <= len(p) <= 128 for p in common)
    assert {"password", "12345678", "qwertyuiop"} <= common


def test_a_token_round_trips_with_its_version_and_its_own_id_and_expires():
    signer = TokenSigner("k" * 32, lifetime_seconds=60)
    token = signer.verify(signer.issue(ORGANISER, version=3))
    assert (token.principal, token.version) == (ORGANISER, 3)
    assert token.expires_at == pytest.approx(time.time() + 60, abs=2)
    assert token.token_id != signer.verify(signer.issue(ORGANISER, version=3)).token_id
    stale = signer.issue(BUYER, now=time.time() - 120)
    with pytest.raises(InvalidToken) as expired:
        signer.verify(stale)
    assert expired.value.code == "token_expired"


def test_a_token_signed_with_another_key_or_altered_is_refused():
    signer, other = TokenSigner("k" * 32, 60), TokenSigner("o" * 32, 60)
    with pytest.raises(InvalidToken) as foreign:
        signer.verify(other.issue(ADMIN))
    assert foreign.value.code == "invalid_token"
    header, claims, signature = signer.issue(BUYER).split(".")
    tampered = ".".join([header, claims[:-2] + ("A" if claims[-2] != "A" else "B") + claims[-1], signature])
    with pytest.raises(InvalidToken):
        signer.verify(tampered)


def test_a_genuine_token_without_a_version_or_an_id_is_refused():
    """Tokens of the version before revocation carry neither: they cannot be revoked, so they are not taken."""
    now = int(time.time())
    claims = {"sub": "user_a", "role": "buyer", "iss": "boxoffice", "iat": now, "exp": now + 60}
    for extra in ({}, {"ver": 0}, {"jti": "x"}, {"ver": True, "jti": "x"}, {"ver": "0", "jti": "x"}):
        with pytest.raises(InvalidToken) as refused:
            TokenSigner("k" * 32, 60).verify(jwt.encode(claims | extra, "k" * 32, algorithm="HS256"))
        assert refused.value.code == "invalid_token", extra


def test_a_token_is_revoked_by_a_newer_account_version_a_sign_out_or_a_deleted_account():
    token = TokenSigner("k" * 32, 60).verify(TokenSigner("k" * 32, 60).issue(BUYER, version=2))
    assert not token.revoked(2, signed_out=False)
    assert token.revoked(3, signed_out=False)
    assert token.revoked(2, signed_out=True)
    assert token.revoked(None, signed_out=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_allow_a_burst_then_the_steady_rate():
    clock = Clock()
    buckets = TokenBuckets(per_minute=60, burst=3, clock=clock)
    assert [buckets.take("u") for _ in range(3)] == [None, None, None]
    wait = buckets.take("u")
    assert wait == pytest.approx(1.0)
    assert buckets.take("someone else") is None
    clock.now += 0.5
    assert buckets.take("u") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("u") is None
    assert buckets.take("u") == pytest.approx(1.0)


def test_buckets_forget_keys_that_have_refilled():
    clock = Clock()
    buckets = TokenBuckets(per_minute=600, burst=2, clock=clock)
    for i in range(TokenBuckets.PRUNE_EVERY - 1):
        buckets.take(f"ip{i}")
    clock.now += 1.0  # 2 tokens at 10/s: every bucket is full again
    buckets.take("last")
    assert len(buckets) == 1


@pytest.mark.parametrize(("email", "box"), [
    ("fan@example.com", "fan@example.com"), ("Fan+Tour2027@Example.COM", "fan@example.com"),
    ("a+b+c@x.io", "a@x.io"), (" odd.name@host.example ", "odd.name@host.example"),
    # Found from outside: one mailbox confirmed several accounts under spellings of one domain.
    ("fan@exämple.com", "fan@xn--exmple-cua.com"), ("fan@xn--exmple-cua.com", "fan@xn--exmple-cua.com"),
    ("fan@\uff45xample.\uff43om", "fan@example.com"), ("fan@exa\u0308mple.com", "fan@xn--exmple-cua.com"),
    ("\uff46an@Example.com", "fan@example.com")])  # full-width e, c and f
def test_the_mailbox_of_an_address_ignores_capitals_and_plus_tags(email: str, box: str):
    assert mailbox(email) == box


def test_an_address_check_token_round_trips_runs_out_and_is_never_an_access_token():
    signer = TokenSigner("k" * 32, 60)
    token, expires = signer.issue_email_check("user_a", "a@example.com")
    assert signer.read_email_check(token) == ("user_a", "a@example.com")
    assert expires == pytest.approx(time.time() + 24 * 3600, abs=5)
    with pytest.raises(InvalidToken) as as_access:
        signer.verify(token)
    assert as_access.value.code == "invalid_token"
    with pytest.raises(InvalidToken) as access_as_check:
        signer.read_email_check(signer.issue(BUYER))
    assert access_as_check.value.code == "invalid_verification"
    stale, _ = signer.issue_email_check("user_a", "a@example.com", now=time.time() - 25 * 3600)
    with pytest.raises(InvalidToken) as expired:
        signer.read_email_check(stale)
    assert expired.value.code == "verification_expired"
    with pytest.raises(InvalidToken):
        TokenSigner("o" * 32, 60).read_email_check(token)
