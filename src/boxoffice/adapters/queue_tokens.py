"""The waiting room's tokens, signed with the platform's signing key (CONTRACT §8.1).

A queue token names one visitor's place: an HMAC of the event and the visitor, so joining again gives the
same token and nobody can make one for another visitor. An access token is a JWT (HS256) bound to the event,
the visitor (the buyer who may use it) and the admission's end. Both use keys derived from the signing key
for their purpose alone, so neither can pass for the other or for an account's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import jwt

NOT_ADMITTED = "not_admitted"
ADMISSION_EXPIRED = "admission_expired"
AUDIENCE = "boxoffice-queue-access"


def _derived(key: str, purpose: str) -> bytes:
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()


class QueueTokens:
    def __init__(self, signing_key: str) -> None:
        self._place_key = _derived(signing_key, "waiting room place")
        self._access_key = _derived(signing_key, "waiting room access")
        self._challenge_key = _derived(signing_key, "waiting room challenge")

    def challenge(self, event_id: str, visitor_id: str, expires_at: int) -> str:
        """A proof-of-work challenge for this visitor of this event, good until `expires_at` (epoch seconds):
        `<expires>.<nonce>.<mac>`, so the gateway keeps nothing and one solution serves one visitor only."""
        nonce = secrets.token_urlsafe(12)
        return f"{expires_at}.{nonce}.{self._challenge_mac(event_id, visitor_id, expires_at, nonce)}"

    def challenge_problem(self, challenge: str, event_id: str, visitor_id: str, now: float) -> str | None:
        """Why the challenge does not stand for this visitor now, or None."""
        expires, _, rest = challenge.partition(".")
        nonce, _, mac = rest.partition(".")
        if not challenge.isascii() or not expires.isdigit() or not nonce or not hmac.compare_digest(
                mac, self._challenge_mac(event_id, visitor_id, int(expires), nonce)):
            return "the challenge was not made for this visitor of this event"
        if now >= int(expires):
            return "the challenge has run out; ask for a new one"
        return None

    def _challenge_mac(self, event_id: str, visitor_id: str, expires_at: int, nonce: str) -> str:
        digest = hmac.new(self._challenge_key, f"{event_id}\0{visitor_id}\0{expires_at}\0{nonce}".encode(),
                          hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def queue_token(self, event_id: str, visitor_id: str) -> str:
        digest = hmac.new(self._place_key, f"{event_id}\0{visitor_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def access_token(self, event_id: str, visitor_id: str, position: int, admitted_at: datetime,
                     minutes: int) -> str:
        """The same admission always gives the same token."""
        until = admitted_at + timedelta(minutes=minutes)
        return jwt.encode({"aud": AUDIENCE, "evt": event_id, "sub": visitor_id, "pos": position,
                           "iat": int(admitted_at.timestamp()), "exp": int(until.timestamp())},
                          self._access_key, algorithm="HS256")

    def refusal(self, token: str | None, event_id: str, buyer: str, now: datetime) -> str | None:
        """Why `buyer` may not book for `event_id` with `token` at `now` (a refusal code), or None."""
        if not token:
            return NOT_ADMITTED
        try:
            claims = jwt.decode(token, self._access_key, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "sub", "evt"], "verify_exp": False, "verify_iat": False})
        except (jwt.InvalidTokenError, ValueError):
            return NOT_ADMITTED
        if claims.get("evt") != event_id or claims.get("sub") != buyer:
            return NOT_ADMITTED  # someone else's, or another event's
        # Expiry against the caller's clock (the booking service decides with the batch's moment).
        exp = claims.get("exp")
        if not isinstance(exp, int) or now.timestamp() >= exp:
            return ADMISSION_EXPIRED
        return None
