"""Writes that are ready at the same moment share one unit of work: with many messages in flight, one commit
(and one connection) serves many of them instead of one each.

Given `write_all`, a group is written by it at once (one statement for all its items where it can), not item by
item; a group of one is written by `write`.

Each caller waits until its write has committed, and what the unit of work wrote to the outbox goes to the
relay only then. If a shared unit of work fails, each of its writes is tried again by `write` in a unit of work
of its own, so that one bad write fails only its own caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from boxoffice.grouping import Grouped
from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.unit_of_work import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)
T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Grouped[T, R], Generic[U, T, R]):
    def __init__(self, unit_of_work: Callable[[], U], write: Callable[[U, T], Awaitable[R]], outbox: OutboxSink,
                 most: int = 100, at_once: int = 2,
                 write_all: Callable[[U, list[T]], Awaitable[list[R]]] | None = None) -> None:
        """`most` writes share a unit of work; `at_once` units of work may be open together. `write_all` writes
        a group's items together and returns their results in their order, as `write` would one by one."""
        super().__init__(self._together, most, at_once)
        self._unit_of_work, self._write, self._write_all, self._outbox = unit_of_work, write, write_all, outbox

    async def _together(self, items: list[T]) -> list[R]:
        uow = self._unit_of_work()
        try:
            async with uow:
                if self._write_all is not None and len(items) > 1:
                    results = await self._write_all(uow, items)
                    if len(results) != len(items):  # checked before it commits: the group is then tried one by one
                        raise RuntimeError(f"{len(results)} results written for {len(items)} items")
                else:
                    results = [await self._write(uow, item) for item in items]
                await uow.commit()
        finally:
            self._outbox.submit(uow.outbox.written)
        return results
