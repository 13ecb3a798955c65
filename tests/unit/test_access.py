"""Roles, access tokens and rate-limit buckets."""

from __future__ import annotations

import time

import pytest

from boxoffice.adapters.accounts import InvalidToken, TokenSigner
from boxoffice.domain.accounts import Principal, Role, password_problem
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


@pytest.mark.parametrize(("password", "problem"), [
    ("short", "at least 8"), ("x" * 129, "at most 128"), ("        ", "blank"), ("long enough", None)])
def test_password_rules(password: str, problem: str | None):
    found = password_problem(password)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_token_round_trips_and_expires():
    signer = TokenSigner("k" * 32, lifetime_seconds=60)
    assert signer.verify(signer.issue(ORGANISER)) == ORGANISER
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
