"""PostgreSQL connections (asyncpg) and schema migrations (Alembic)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from boxoffice.logs import Outage

log = logging.getLogger(__name__)

# A connection of its own or one lent by a pool: they run queries alike, but asyncpg's stubs type them apart.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError,
    asyncpg.AdminShutdownError, ConnectionError, asyncio.TimeoutError,
    # A query caught on a connection that the server's shutdown broke ("cannot switch to state ...").
    asyncpg.InternalClientError,
)


async def keep_session(con: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is, once asyncpg has rolled back a transaction left open.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release,
    a round trip (and a statement on the server) for each borrowed connection. The services set no session
    state, and the one session lock they take (the hold expiry leader's) is released by its holder.
    """


async def create_pool(dsn: str, size: int = 8, attempts: int = 100) -> asyncpg.Pool:
    """Waits for the database with a bounded retry before the service serves."""
    outage = Outage(log, "connecting to the database")
    for attempt in range(attempts):
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size, command_timeout=30,
                                             reset=keep_session)
        except asyncpg.ClientConfigurationError:  # a URL that can never work (an InterfaceError too): not retried
            raise
        except TRANSIENT_ERRORS as exc:
            if attempt == attempts - 1:
                raise
            outage.failed(exc)
            await asyncio.sleep(min(0.1 * (attempt + 1), 2.0))
        else:
            outage.recovered()
            return pool
    raise AssertionError("unreachable")


def alembic_url(dsn: str) -> str:
    scheme, rest = dsn.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgresql", "postgres") else dsn


def migrate(dsn: str) -> None:
    """Brings the schema to the newest revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    config.set_main_option("sqlalchemy.url", alembic_url(dsn).replace("%", "%%"))
    command.upgrade(config, "head")
