"""The unit-of-work port every writing service works through: one transaction, its repositories, its outbox.

A handler takes a unit of work, reads and writes through its repositories, adds the messages its decision
publishes to `outbox`, and commits. The rows the outbox wrote become visible in `outbox.written` and are
handed to the relay once the commit has succeeded. Adapters implement these Protocols (PostgreSQL in
`adapters/`, in-memory fakes in the unit tests); they decide nothing.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, Self

from boxoffice.messages import Message
from boxoffice.service_layer.ports import OutboxRow


@dataclass(frozen=True)
class Outgoing:
    """A message for the outbox, already encoded: topic, key (the event id) and the envelope's bytes."""

    topic: str
    key: bytes
    payload: bytes

    @classmethod
    def of(cls, message: Message) -> Outgoing:
        return cls(message.type, message.key, message.encode())


class Outbox(Protocol):
    written: list[OutboxRow]

    async def add(self, messages: list[Outgoing]) -> None: ...


class UnitOfWork(Protocol):
    """`async with uow:` begins the transaction; leaving it without `commit()` rolls back."""

    @property
    def outbox(self) -> Outbox: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: an exception inside undoes its writes (outbox rows included) only."""
        ...

