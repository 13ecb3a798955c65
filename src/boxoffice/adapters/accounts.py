"""Accounts in PostgreSQL, argon2 password hashes and signed access tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import asyncpg
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from boxoffice.domain.accounts import AccessToken, Principal, Role, mailbox

_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps both answers equally slow.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms): off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    role: Role
    password_hash: str
    token_version: int = 0
    email_verified: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(self.user_id, self.email, self.role, self.email_verified)


class EmailTaken(Exception):
    pass


class MailboxTaken(Exception):
    """Another account has confirmed an address of the same mailbox."""


@dataclass(frozen=True)
class TokenStanding:
    """What PostgreSQL says of a token's account now."""

    version: int | None  # None: the account is gone
    signed_out: bool
    email_verified: bool


class AccountStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, email: str, password_hash: str, role: Role = Role.BUYER) -> Account:
        user_id = "user_" + secrets.token_hex(8)
        try:
            await self._pool.execute(
                "INSERT INTO accounts (user_id, email, password_hash, role) VALUES ($1, $2, $3, $4)",
                user_id, email, password_hash, role.value)
        except asyncpg.UniqueViolationError:
            raise EmailTaken(email) from None
        return Account(user_id, email, role, password_hash)

    async def by_email(self, email: str) -> Account | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM accounts WHERE lower(email) = lower($1)", email)
        return _account(row)

    async def by_user_id(self, user_id: str) -> Account | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM accounts WHERE user_id = $1", user_id)
        return _account(row)

    async def set_role(self, user_id: str, role: Role) -> bool:
        """A new role revokes the account's tokens: the old role must not outlive the change."""
        done = await self._pool.execute(
            "UPDATE accounts SET role = $2, token_version = token_version + (role <> $2)::int WHERE user_id = $1",
            user_id, role.value)
        return done.endswith(" 1")

    async def set_password(self, user_id: str, password_hash: str) -> Account | None:
        """A new password revokes every token issued before it."""
        row = await self._pool.fetchrow(
            "UPDATE accounts SET password_hash = $2, token_version = token_version + 1 WHERE user_id = $1 "
            f"RETURNING {_COLUMNS}", user_id, password_hash)
        return _account(row)

    async def revoke_all_tokens(self, user_id: str) -> None:
        await self._pool.execute("UPDATE accounts SET token_version = token_version + 1 WHERE user_id = $1", user_id)

    async def revoke_token(self, token: AccessToken) -> None:
        """Signs one token out; the list forgets tokens that have expired anyway."""
        async with self._pool.acquire() as con, con.transaction():
            await con.execute("INSERT INTO revoked_tokens (token_id, expires_at) VALUES ($1, to_timestamp($2)) "
                              "ON CONFLICT DO NOTHING", token.token_id, token.expires_at)
            await con.execute("DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 minute'")

    async def token_standing(self, token: AccessToken) -> TokenStanding:
        """The account's token version and confirmed address now, and whether this token was signed out."""
        row = await self._pool.fetchrow(
            "SELECT a.token_version AS version, a.email_verified_at IS NOT NULL AS verified, "
            "EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = $2) AS signed_out "
            "FROM (SELECT 1) AS one LEFT JOIN accounts a ON a.user_id = $1",
            token.principal.user_id, token.token_id)
        assert row is not None
        return TokenStanding(row["version"], row["signed_out"], bool(row["verified"]))

    async def confirm_email(self, user_id: str, email: str) -> Account | None:
        """Marks the address confirmed if it is still the account's (None otherwise); MailboxTaken if another
        account confirmed the same mailbox first. Confirming again changes nothing."""
        try:
            row = await self._pool.fetchrow(
                "UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()), verified_mailbox = $3 "
                f"WHERE user_id = $1 AND lower(email) = lower($2) RETURNING {_COLUMNS}",
                user_id, email, mailbox(email))
        except asyncpg.UniqueViolationError:
            raise MailboxTaken(email) from None
        return _account(row)

    async def ensure_admin(self, email: str, password: str) -> Account:
        """The configured admin exists with this password and the admin role."""
        account = await self.by_email(email)
        if account is None:
            try:
                account = await self.create(email, await hash_password(password), Role.ADMIN)
            except EmailTaken:  # another gateway worker created it meanwhile
                account = await self.by_email(email)
                assert account is not None
        if account.role is not Role.ADMIN or not await verify_password(account.password_hash, password):
            # The configured password or role replaces another: tokens issued under the old one stop working.
            await self._pool.execute("UPDATE accounts SET role = 'admin', password_hash = $2, "
                                     "token_version = token_version + 1 WHERE user_id = $1",
                                     account.user_id, await hash_password(password))
        # The operator chose this address: it needs no link to be confirmed.
        await self._pool.execute("UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()) "
                                 "WHERE user_id = $1", account.user_id)
        return Account(account.user_id, account.email, Role.ADMIN, account.password_hash, email_verified=True)


_COLUMNS = "user_id, email, role, password_hash, token_version, email_verified_at IS NOT NULL AS email_verified"


def _account(row: asyncpg.Record | None) -> Account | None:
    if row is None:
        return None
    return Account(row["user_id"], row["email"], Role(row["role"]), row["password_hash"], row["token_version"],
                   row["email_verified"])


class InvalidToken(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class TokenSigner:
    ISSUER = "boxoffice"
    EMAIL_CHECK = "confirm_email"  # the purpose of a link that confirms an address
    EMAIL_CHECK_SECONDS = 24 * 3600

    def __init__(self, key: str, lifetime_seconds: int) -> None:
        self._key, self.lifetime = key, lifetime_seconds

    def issue(self, principal: Principal, version: int = 0, now: float | None = None) -> str:
        """A token for this account under its current token version, with an id of its own."""
        issued = int(now if now is not None else time.time())
        return jwt.encode({"sub": principal.user_id, "email": principal.email, "role": principal.role.value,
                           "ver": version, "jti": secrets.token_urlsafe(16),
                           "iss": self.ISSUER, "iat": issued, "exp": issued + self.lifetime},
                          self._key, algorithm="HS256")

    def verify(self, token: str) -> AccessToken:
        """The token's claims if its signature is genuine and it has not expired (revocation is the store's)."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], issuer=self.ISSUER,
                                options={"require": ["sub", "exp", "iat", "role", "ver", "jti"]})
            version = claims["ver"]
            if type(version) is not int:
                raise ValueError("ver")
            principal = Principal(str(claims["sub"]), str(claims.get("email", "")), Role(claims["role"]))
            return AccessToken(principal, version, str(claims["jti"]), float(claims["exp"]))
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token_expired", "The access token has expired; get a new one at POST /auth/token") \
                from None
        except (jwt.InvalidTokenError, ValueError):
            raise InvalidToken("invalid_token", "The access token is not valid") from None

    def issue_email_check(self, user_id: str, email: str, now: float | None = None) -> tuple[str, float]:
        """The token of a link that confirms this account's address, and when it runs out (epoch seconds). It
        carries no role or version: it is never taken as an access token."""
        issued = int(now if now is not None else time.time())
        expires = issued + self.EMAIL_CHECK_SECONDS
        token = jwt.encode({"sub": user_id, "email": email, "purpose": self.EMAIL_CHECK, "iss": self.ISSUER,
                            "jti": secrets.token_urlsafe(12), "iat": issued, "exp": expires},
                           self._key, algorithm="HS256")
        return token, float(expires)

    def read_email_check(self, token: str) -> tuple[str, str]:
        """(userId, email) of a genuine, unexpired link token; InvalidToken otherwise."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], issuer=self.ISSUER,
                                options={"require": ["sub", "exp", "email", "purpose"]})
            if claims["purpose"] != self.EMAIL_CHECK:
                raise ValueError("purpose")
            return str(claims["sub"]), str(claims["email"])
        except jwt.ExpiredSignatureError:
            raise InvalidToken("verification_expired", "This confirmation link has run out; sign in and ask for "
                               "a new one at POST /auth/verification") from None
        except (jwt.InvalidTokenError, ValueError):
            raise InvalidToken("invalid_verification", "This is not a valid confirmation link") from None
