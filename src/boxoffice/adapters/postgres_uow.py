"""A unit of work on one pooled PostgreSQL connection: the transaction, and an outbox written inside it.

A service's unit of work subclasses one of these and binds its repositories to the connection in `_bind`.
It may be entered again once it has ended: each `async with` is a new transaction on a connection of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Self, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from boxoffice.adapters.outbox import insert_outbox
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.unit_of_work import Outbox, Outgoing


class PostgresTransaction:
    """One transaction per `async with`; leaving it without `commit()` rolls back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._proxy: PoolConnectionProxy[asyncpg.Record] | None = None
        self._con: asyncpg.Connection | None = None
        self._transaction: Transaction | None = None

    async def __aenter__(self) -> Self:
        if self._proxy is not None:
            raise RuntimeError("the unit of work is in a transaction already")
        proxy = await self._pool.acquire()
        con = cast(asyncpg.Connection, proxy)  # the pool's proxy passes every call on to its connection
        try:
            transaction = con.transaction()
            await transaction.start()
        except BaseException:
            await self._pool.release(proxy)
            raise
        self._proxy, self._con, self._transaction = proxy, con, transaction
        self._bind(con)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._transaction is not None:
                await self.rollback()
        finally:
            proxy, self._proxy, self._con = self._proxy, None, None
            if proxy is not None:
                await self._pool.release(proxy)

    async def commit(self) -> None:
        transaction = self._take_transaction()
        committed = False
        try:
            await transaction.commit()
            committed = True
        finally:
            self._ended(committed)

    async def rollback(self) -> None:
        transaction = self._take_transaction()
        try:
            await transaction.rollback()
        finally:
            self._ended(False)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        if self._con is None or self._transaction is None:
            raise RuntimeError("a savepoint needs an open transaction")
        mark = self._mark()
        try:
            async with self._con.transaction():  # nested in the open one: a savepoint
                yield
        except BaseException:
            self._undo_to(mark)
            raise

    def _take_transaction(self) -> Transaction:
        if self._transaction is None:
            raise RuntimeError("no open transaction: it was committed or rolled back already")
        transaction, self._transaction = self._transaction, None
        return transaction

    # What subclasses add to the transaction's life.
    def _bind(self, con: asyncpg.Connection) -> None:
        """Binds the repositories to the new transaction's connection."""

    def _ended(self, committed: bool) -> None: ...

    def _mark(self) -> int:
        return 0

    def _undo_to(self, mark: int) -> None: ...


class PostgresOutbox:
    """Rows written in the open transaction are pending; they join `written` once it commits."""

    def __init__(self, producer: str) -> None:
        self.producer = producer
        self.connection: asyncpg.Connection | None = None
        self.pending: list[OutboxRow] = []
        self.written: list[OutboxRow] = []

    async def add(self, messages: list[Outgoing]) -> None:
        if self.connection is None:
            raise RuntimeError("the outbox is used outside its unit of work")
        self.pending += await insert_outbox(self.connection, [(m.topic, m.key, m.payload) for m in messages],
                                            producer=self.producer)


class PostgresUnitOfWork(PostgresTransaction):
    """A transaction with an outbox: what a decision publishes is written in the transaction of its state."""

    def __init__(self, pool: asyncpg.Pool, producer: str) -> None:
        super().__init__(pool)
        self._outbox = PostgresOutbox(producer)
        self.outbox: Outbox = self._outbox  # typed as the port: Protocol attributes match exactly

    def _bind(self, con: asyncpg.Connection) -> None:
        self._outbox.connection = con

    def _ended(self, committed: bool) -> None:
        if committed:
            self._outbox.written += self._outbox.pending
        self._outbox.pending = []
        self._outbox.connection = None

    def _mark(self) -> int:
        return len(self._outbox.pending)

    def _undo_to(self, mark: int) -> None:
        del self._outbox.pending[mark:]
