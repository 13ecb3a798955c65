from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import provision_database
from boxoffice.adapters.kafka import ensure_topics
from boxoffice.adapters.postgres import create_pool, migrate
from boxoffice.domain.catalog import EventSpec, PriceCategory, SeatRow
from tests.platforms import (  # noqa: F401 - shared fixtures
    SHARED,
    RunningPlatform,
    auth_platform,
    platform,
    proof_platform,
    short_hold_platform,
    stop_platform,
)
from tests.servers import Servers, embedded_servers

SHARED_PLATFORMS = ("platform", "short_hold_platform", "proof_platform", "auth_platform")
_last_user: dict[str, str] = {}  # shared platform fixture -> node id of the last test (in run order) using it


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end and browser modules that start only platforms of their own run last, once the shared ones
    are down; the order within each module, and of everything else, stays."""
    on_shared = {_module(item) for item in items
                 if any(name in getattr(item, "fixturenames", ()) for name in SHARED_PLATFORMS)}
    items.sort(key=lambda item: _module(item).startswith(("tests/e2e/", "tests/browser/"))
               and _module(item) not in on_shared)
    _last_user.clear()
    for item in items:
        for name in SHARED_PLATFORMS:
            if name in getattr(item, "fixturenames", ()):
                _last_user[name] = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """A shared platform goes down after the last test that uses it, not at the end of the session."""
    try:
        return (yield)
    finally:
        for name, nodeid in _last_user.items():
            if nodeid == item.nodeid and name in SHARED:
                stop_platform(SHARED[name])


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with embedded_servers(tmp_path_factory.mktemp("servers")) as running:
        yield running


async def new_database(servers: Servers, name: str) -> str:
    await provision_database(servers.postgres.host, servers.postgres.port, servers.postgres_password,
                             servers.service_password, name)
    dsn = servers.dsn(name)
    await asyncio.to_thread(migrate, dsn)
    return dsn


@pytest.fixture(scope="session")
async def database(servers: Servers) -> str:
    return await new_database(servers, "boxoffice")


@pytest.fixture(scope="session")
async def kafka(servers: Servers) -> str:
    await ensure_topics(servers.kafka_bootstrap, 4)
    return servers.kafka_bootstrap


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, size=6)
    yield pool
    await pool.close()


def small_event(event_id: str | None = None, rows: int = 1, seats: int = 10) -> EventSpec:
    """A fresh event per test, so tests never share seats."""
    return EventSpec(
        event_id or f"ev_{uuid.uuid4().hex[:12]}", "Test event", "Test hall", "Testville",
        datetime(2030, 1, 1, tzinfo=UTC), "USD",
        (PriceCategory("std", "Standard", Decimal("150.00")), PriceCategory("cheap", "Cheap", Decimal("20.00"))),
        tuple(SeatRow(chr(ord("A") + i), "Main", "std" if i == 0 else "cheap", seats) for i in range(rows)),
    )


@pytest.fixture
async def event(pool: asyncpg.Pool) -> EventSpec:
    spec = small_event(rows=2)
    async with pool.acquire() as con:
        assert await create_event(con, spec)
    return spec
