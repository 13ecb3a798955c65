"""The waiting room's optional proof of work (CONTRACT §8.1, abuse): before joining, the page finds a
solution whose SHA-256 with the visitor's challenge starts with `bits` zero bits. One join then costs about
2**bits hashes, nothing to one visitor and a lot to a script that makes thousands of visitors."""

from __future__ import annotations

import hashlib
import itertools


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def solves(challenge: str, solution: str, bits: int) -> bool:
    """Whether sha256("<challenge>:<solution>") starts with at least `bits` zero bits."""
    return leading_zero_bits(hashlib.sha256(f"{challenge}:{solution}".encode()).digest()) >= bits


def solve(challenge: str, bits: int) -> str:
    """The first solution, counting up in decimal (what the page does too)."""
    for n in itertools.count():
        if solves(challenge, str(n), bits):
            return str(n)
    raise AssertionError("unreachable")
