"""The waiting room's proof of work: the rule, and challenges that serve one visitor of one event, for a while."""

from __future__ import annotations

import hashlib
import time

import pytest

from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.domain.proof_of_work import leading_zero_bits, solve, solves

TOKENS = QueueTokens("k" * 32)


@pytest.mark.parametrize(("digest", "bits"), [
    (b"\x80" + b"\x00" * 31, 0), (b"\x01" + b"\xff" * 31, 7), (b"\x00\x10" + b"\x00" * 30, 11),
    (b"\x00\x00\x00\x01" + b"\x00" * 28, 31), (b"\x00" * 32, 256)])
def test_leading_zero_bits(digest: bytes, bits: int) -> None:
    assert leading_zero_bits(digest) == bits


@pytest.mark.parametrize("bits", [1, 8, 12])
def test_a_solution_found_gives_the_bits_asked_and_the_next_number_usually_does_not(bits: int) -> None:
    solution = solve("1800000000.nonce.mac", bits)
    digest = hashlib.sha256(f"1800000000.nonce.mac:{solution}".encode()).digest()
    assert leading_zero_bits(digest) >= bits and solves("1800000000.nonce.mac", solution, bits)
    assert not any(solves("1800000000.nonce.mac", str(n), bits) for n in range(int(solution)))


def test_a_challenge_stands_for_its_visitor_and_event_until_it_runs_out() -> None:
    now = time.time()
    challenge = TOKENS.challenge("onsale", "fan_1", int(now) + 60)
    assert TOKENS.challenge_problem(challenge, "onsale", "fan_1", now) is None
    assert challenge != TOKENS.challenge("onsale", "fan_1", int(now) + 60)  # each has its own nonce
    assert "not made for this visitor" in str(TOKENS.challenge_problem(challenge, "onsale", "fan_2", now))
    assert "not made for this visitor" in str(TOKENS.challenge_problem(challenge, "other", "fan_1", now))
    assert "run out" in str(TOKENS.challenge_problem(challenge, "onsale", "fan_1", now + 61))
    expires, nonce, mac = challenge.split(".")
    for forged in (f"{int(expires) + 3600}.{nonce}.{mac}", f"{expires}.x{nonce}.{mac}", f"{expires}.{nonce}.{mac}x",
                   f"{expires}.{nonce}", "abc", "", f"-1.{nonce}.{mac}"):
        assert TOKENS.challenge_problem(forged, "onsale", "fan_1", now) is not None, forged
    assert QueueTokens("o" * 32).challenge_problem(challenge, "onsale", "fan_1", now) is not None
