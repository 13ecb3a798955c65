"""Reservation request ids that the gateway can recognise as its own without storing them.

An id is a random (or Idempotency-Key-derived) part plus a keyed tag; an id with a wrong tag was never
issued, so its status URL answers 404 instead of "queued" forever.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PATTERN = re.compile(r"^req_[0-9a-f]{48}$")


class RequestIds:
    def __init__(self, key: str) -> None:
        # The key's HMAC state, copied for each tag: half the cost of keying it again (a tag per hold).
        self._keyed = hmac.new(bytes.fromhex(key), digestmod=hashlib.sha256)

    def _tag(self, base: str) -> str:
        tag = self._keyed.copy()
        tag.update(base.encode())
        return tag.hexdigest()[:16]

    def new(self) -> str:
        base = secrets.token_hex(16)
        return f"req_{base}{self._tag(base)}"

    def for_idempotency_key(self, user_id: str, key: str) -> str:
        base = hashlib.sha256(f"{user_id}\0{key}".encode()).hexdigest()[:32]
        return f"req_{base}{self._tag(base)}"

    def issued_here(self, request_id: str) -> bool:
        if not PATTERN.fullmatch(request_id):
            return False
        base, tag = request_id[4:36], request_id[36:]
        return hmac.compare_digest(tag, self._tag(base))
